import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import snnx
from snnx import init

N_IN, N_OUT, NU, T, BURN = 200, 200, 0.05, 300, 50


def _poisson(rate, shape, seed=0):
    """Poisson spike counts per step (NumPy: no compile of JAX's Poisson sampler)."""
    return np.random.default_rng(seed).poisson(rate, shape)


def _free(neuron):
    """The same neuron without a threshold in reach: its membrane is the free PSP sum."""
    return eqx.tree_at(lambda m: m.v_threshold, neuron, jnp.full_like(neuron.v_threshold, 1e9))


@pytest.mark.parametrize("make", [lambda: snnx.LIF(tau=10.0),
                                  lambda: snnx.CuBaLIF(tau_syn=5.0, tau_mem=10.0)],
                         ids=["LIF", "CuBaLIF"])
def test_membrane_moments_and_rate_on_poisson_inputs(make, getkey, dtype):
    neuron = make()
    xi, mu_u = 1.5, 0.25
    lin = eqx.nn.Linear(N_IN, N_OUT, key=getkey(), dtype=dtype)
    model = init.fluctuation_driven(snnx.Sequential([lin, neuron]), getkey(), rate=NU, xi=xi,
                                    mu_u=mu_u)
    w = model.layers[0].weight
    assert w.dtype == dtype and not np.any(np.asarray(model.layers[0].bias))
    xs = jnp.asarray(_poisson(NU, (T, N_IN)), dtype)
    free = snnx.Sequential([model.layers[0], _free(neuron)])
    _, _, recs = snnx.run(free, xs, record=True)
    v = np.asarray(recs[1].state.v, np.float64)[BURN:]
    sigma_u = (1.0 - mu_u) / xi
    # Campbell: each neuron's fluctuation over time; the mean over neurons and time, whose
    # sampling error is the neuron-to-neuron spread of fixed weights, sqrt(n) sigma_w nu eps_bar
    np.testing.assert_allclose(np.sqrt(np.mean(v.var(axis=0))), sigma_u, rtol=0.1)
    eps_bar, _ = init.psp_integrals(neuron)
    spread = np.sqrt(N_IN) * float(np.std(np.asarray(w))) * NU * float(eps_bar)
    assert abs(v.mean() - mu_u) < 4 * spread / np.sqrt(N_OUT)
    # the chosen xi: time above threshold of the free membrane, Gaussian prediction
    expected = norm.sf((1.0 - mu_u) / np.sqrt(sigma_u**2 + spread**2))
    np.testing.assert_allclose(np.mean(v > 1.0), expected, rtol=0.3)
    # and the real neuron fires
    _, _, recs = snnx.run(model, xs, record=True)
    rate = float(np.mean(np.asarray(recs[1].output)))
    assert 0.005 < rate < 0.5


def test_psp_integrals_closed_form(dtype):
    lif = snnx.LIF(tau=np.asarray([5.0, 20.0], dtype), r=2.0, dt=0.5)
    eb, eh = init.psp_integrals(lif)
    beta = np.exp(-0.5 / np.array([5.0, 20.0]))
    np.testing.assert_allclose(eb, 0.5 * 2.0 * np.ones(2), rtol=1e-5)  # exact step: dt * r
    np.testing.assert_allclose(eh, 0.5 * (2 * (1 - beta))**2 / (1 - beta**2), rtol=1e-5)
    # CuBaLIF: brute-force impulse response by running the neuron itself
    cuba = snnx.CuBaLIF(tau_syn=3.0, tau_mem=7.0, v_threshold=1e9)
    xs = jnp.zeros((400, 1), dtype).at[0].set(1.0)
    _, _, recs = snnx.run(snnx.Sequential([cuba]), xs, record=True)
    k = np.asarray(recs[0].state.v, np.float64)[:, 0]
    eb, eh = init.psp_integrals(cuba)
    np.testing.assert_allclose([eb, eh], [k.sum(), (k**2).sum()], rtol=1e-4)


def test_deep_network_silent_by_default_spikes_with_fluctuation_init(getkey):
    width, depth = 40, 4
    layers = []
    for _ in range(depth):
        layers += [eqx.nn.Linear(width, width, key=getkey()), snnx.LIF(tau=10.0)]
    model = snnx.Sequential(layers)
    xs = jnp.asarray(_poisson(0.05, (100, width)), jnp.float32)

    def layer_rates(m):
        _, _, recs = snnx.run(m, xs, record=True)
        return [float(np.mean(np.asarray(recs[2 * i + 1].output))) for i in range(depth)]

    default = layer_rates(model)
    assert default[1:] == [0.0] * (depth - 1)  # LeCun init: silent from layer 2 on
    # rates measured layer by layer on sample inputs (a fixed assumed rate lets them decay)
    sample = jnp.asarray(_poisson(0.05, (4, 100, width), seed=1), jnp.float32)
    rates = layer_rates(init.fluctuation_driven(model, getkey(), xs=sample, xi=1.5))
    assert all(r > 0.005 for r in rates), rates


def test_recurrent_split_and_sparse(getkey):
    rec = snnx.Recurrent(snnx.LIF(tau=10.0), 50, key=getkey(), zero_diagonal=True)
    model = snnx.Sequential([eqx.nn.Linear(100, 50, key=getkey()), rec, eqx.nn.Linear(
        50, 3, key=getkey()), snnx.LI(tau=5.0)])
    out = init.fluctuation_driven(model, getkey(), rate=0.05, xi=2.0, alpha=0.8)
    neuron = rec.neuron
    _, sd_ff = init.fluctuation_moments(neuron, 100, 0.05, xi=2.0, alpha=0.8)
    _, sd_rec = init.fluctuation_moments(neuron, 49, 0.05, xi=2.0, alpha=0.2)
    np.testing.assert_allclose(np.std(np.asarray(out.layers[0].weight)), sd_ff, rtol=0.1)
    np.testing.assert_allclose(np.std(np.asarray(out.layers[1].weight)), sd_rec, rtol=0.1)
    # the two shares of the variance add up to the whole budget
    _, sd_all = init.fluctuation_moments(neuron, 100, 0.05, xi=2.0)
    np.testing.assert_allclose(sd_ff**2 * 100 + sd_rec**2 * 49, sd_all**2 * 100)
    assert out.layers[2] is model.layers[2]  # the LI readout's input keeps its weights
    # sparse: each weight exists with probability p, moments drawn for the mean fan-in
    sp = init.fluctuation_driven(model, getkey(), rate=0.05, xi=2.0, alpha=0.8, p=0.25)
    w = np.asarray(sp.layers[0].weight)
    assert abs(np.mean(w != 0) - 0.25) < 0.03
    _, sd_sp = init.fluctuation_moments(neuron, 25, 0.05, xi=2.0, alpha=0.8)
    np.testing.assert_allclose(np.std(w[w != 0]), sd_sp, rtol=0.1)


def test_fixed_probability_keeps_drive(getkey):
    lin = eqx.nn.Linear(400, 300, key=getkey())
    lin = eqx.tree_at(lambda m: m.weight, lin, lin.weight + 0.01)  # a nonzero mean
    sp = init.fixed_probability(lin, getkey(), 0.3)
    w0, w1 = np.asarray(lin.weight), np.asarray(sp.weight)
    assert abs(np.mean(w1 != 0) - 0.3) < 0.02
    # the summed input's mean (sum w) and Poisson variance (sum w^2) per neuron
    np.testing.assert_allclose(w1.sum(1).mean(), w0.sum(1).mean(), rtol=0.1)
    np.testing.assert_allclose((w1**2).sum(1).mean(), (w0**2).sum(1).mean(), rtol=0.05)


def test_weight_moments_closed_form():
    mu_w, sd_w = init.weight_moments(100, 0.02, 2.0, 0.1, sigma_u=0.5, mu_u=0.2)
    assert mu_w == pytest.approx(0.2 / (100 * 0.02 * 2.0))
    assert sd_w == pytest.approx(np.sqrt(0.25 / (100 * 0.02 * 0.1) - mu_w**2))


def test_bad_inputs(getkey):
    lif = snnx.LIF(tau=10.0)
    model = snnx.Sequential([eqx.nn.Linear(4, 3, key=getkey()), lif])
    with pytest.raises(TypeError, match="`neuron`"):
        init.psp_integrals(snnx.LI(tau=5.0))
    with pytest.raises(ValueError, match="`fan_in`"):
        init.fluctuation_moments(lif, 0, 0.1)
    with pytest.raises(ValueError, match="`rate`"):
        init.fluctuation_moments(lif, 10, -0.1)
    with pytest.raises(TypeError, match="`rate`"):
        init.fluctuation_moments(lif, 10, "fast")
    with pytest.raises(ValueError, match="`xi`"):
        init.fluctuation_moments(lif, 10, 0.1, xi=0.0)
    with pytest.raises(ValueError, match="`mu_u`"):
        init.fluctuation_moments(lif, 10, 0.1, mu_u=1.5)
    with pytest.raises(ValueError, match="`mu_u`"):
        init.weight_moments(10, 0.1, 1.0, 1.0, sigma_u=0.1, mu_u=0.9)
    with pytest.raises(ValueError, match="`alpha`"):
        init.fluctuation_moments(lif, 10, 0.1, alpha=1.5)
    with pytest.raises(TypeError, match="`model`"):
        init.fluctuation_driven(lif, getkey(), rate=0.1)
    with pytest.raises(ValueError, match="`model`"):
        init.fluctuation_driven(snnx.Sequential([eqx.nn.Linear(4, 4, key=getkey()),
                                                 eqx.nn.Linear(4, 3, key=getkey()), lif]),
                                getkey(), rate=0.1)
    with pytest.raises(ValueError, match="`rate`"):
        init.fluctuation_driven(model, getkey(), rate=[0.1, 0.2])
    with pytest.raises(ValueError, match="`rate`"):
        init.fluctuation_driven(model, getkey())
    with pytest.raises(ValueError, match="`xs`"):
        init.fluctuation_driven(model, getkey(), xs=jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="`xs`"):
        init.fluctuation_driven(model, getkey(), xs=jnp.zeros((1, 5, 4)))
    with pytest.raises(ValueError, match="`p`"):
        init.fluctuation_driven(model, getkey(), rate=0.1, p=0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        rec = snnx.Recurrent(lif, 3, key=getkey())
        init.fluctuation_driven(snnx.Sequential([eqx.nn.Linear(4, 3, key=getkey()), rec]),
                                getkey(), rate=0.1, alpha=1.0)
    with pytest.raises(TypeError, match="`layer`"):
        init.fixed_probability(lif, getkey(), 0.5)
    with pytest.raises(ValueError, match="`layer`"):
        lin = eqx.nn.Linear(4, 3, key=getkey())
        init.fixed_probability(eqx.tree_at(lambda m: m.weight, lin, lin.weight + 5.0),
                               getkey(), 0.5)
