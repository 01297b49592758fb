"""The fused Pallas neuron scan (`snnx.engine.PallasScan`) against the XLA scan.

The kernels run in Pallas' interpret mode here (no GPU in CI). The reference is the XLA
path, `snnx.run` with the default `XLAScan`, which other tests hold against closed forms
and finite differences: spikes must be identical, membranes, traces and every gradient
(inputs, initial state, learnable tau / threshold / reset) equal to float rounding.
Shapes are tiny: interpreted kernels are slow to trace.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import snnx
from snnx.engine import PallasScan, XLAScan

FUSED = PallasScan(block=4, interpret=True)  # 4 neurons per program: 6 neurons -> 2 programs


def _compare(neuron, dtype, key, *, shape=(6,), T=9, gain=6.0):
    """Forward (outputs, final state, trace) and the gradient of a loss touching all of
    them, through an input Linear, batched by `run_batch` (2 samples)."""
    kx, kl = jax.random.split(key)
    n_in = 5
    lin = eqx.nn.Linear(n_in, int(jnp.prod(jnp.asarray(shape))), key=kl, dtype=dtype)
    lin = eqx.tree_at(lambda m: m.weight, lin, lin.weight * gain)
    xs = jax.random.uniform(kx, (2, T, n_in), dtype=dtype, minval=-0.5, maxval=1.5)

    def go(params, xs, scan):
        lin_, neuron_ = params

        def one(x):
            h = jax.vmap(lin_)(x).reshape((T,) + shape)
            return snnx.run(neuron_, h, record=True, neuron_scan=scan)

        ys, state, recs = jax.vmap(one)(xs)
        return ys, state, recs[0].state

    def loss(params_xs, scan):
        out = go(*params_xs, scan)
        ys, state, trace = out
        w = jnp.linspace(0.5, 1.5, T, dtype=ys.dtype).reshape((1, T) + (1,) * len(shape))
        value = (jnp.sum(ys * w) + sum(jnp.sum(a ** 2) for a in jax.tree.leaves(state))
                 + 0.1 * sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves(trace)))
        return value, out

    out = []
    for scan in (XLAScan(), FUSED):
        # one compiled forward + backward per path: outputs, parameter and input gradients
        vg = eqx.filter_jit(eqx.filter_value_and_grad(lambda px, s=scan: loss(px, s),
                                                      has_aux=True))
        (_, fwd), (g, gx) = vg(((lin, neuron), xs))
        out.append((fwd, g, gx))
    (ref, g_ref, gx_ref), (got, g_got, gx_got) = out
    return ref, got, (g_ref, g_got), (gx_ref, gx_got)


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == jnp.float32 else dict(rtol=1e-11, atol=1e-11)


def _check(ref, got, grads, gxs, dtype, spiking=True):
    tol = _tol(dtype)
    if spiking:
        assert jnp.array_equal(ref[0], got[0]), "spikes differ"
        assert 0 < float(jnp.mean(ref[0])) < 1, "the test network must spike, and not always"
    assert got[0].dtype == ref[0].dtype
    assert eqx.tree_equal(ref[1], got[1], **tol), "final state differs"
    assert eqx.tree_equal(ref[2], got[2], **tol), "trace differs"
    g_ref, g_got = grads
    assert jax.tree.structure(g_ref) == jax.tree.structure(g_got)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_got)):
        scale = max(1.0, float(jnp.max(jnp.abs(a))))
        assert jnp.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale), (a, b)
    assert any(float(jnp.max(jnp.abs(a))) > 0 for a in jax.tree.leaves(g_ref))
    scale = max(1.0, float(jnp.max(jnp.abs(gxs[0]))))
    assert jnp.allclose(gxs[0], gxs[1], rtol=tol["rtol"], atol=tol["atol"] * scale)


def test_lif_subtract_learnable_tau_threshold(getkey, dtype):
    tau = jnp.linspace(4.0, 12.0, 6, dtype=dtype)
    lif = snnx.LIF(tau, v_threshold=0.4, trainable=("tau", "v_threshold"))
    ref, got, grads, gxs = _compare(lif, dtype, getkey())
    _check(ref, got, grads, gxs, dtype)
    # the learnable parameters really got gradients (the reset detached, tau and threshold
    # through the surrogate)
    g = grads[1][1]
    assert float(jnp.max(jnp.abs(g.log_tau))) > 0 and float(jnp.max(jnp.abs(g.v_threshold))) > 0


def test_lif_to_value_attached_reset_all_trainable(getkey):
    lif = snnx.LIF(6.0, v_threshold=0.4, v_reset=-0.1, reset_mode="to_value",
                   detach_reset=False, surrogate=snnx.spikes.Sigmoid(5.0), trainable=True)
    _check(*_compare(lif, jnp.float32, getkey()), jnp.float32)


def test_lif_reset_delay_euler_multidim_layer(getkey):
    # snnTorch's delayed reset and the Euler step; a (2, 3) layer flattened into the kernel
    lif = snnx.LIF.from_beta(0.8, v_threshold=0.3, reset_delay=True, method="euler",
                             trainable=("v_threshold",))
    _check(*_compare(lif, jnp.float32, getkey(), shape=(2, 3)), jnp.float32)


def test_readouts_li_and_cubali(getkey):
    li = snnx.LI(jnp.linspace(3.0, 9.0, 6), v_leak=0.1, trainable=True)
    _check(*_compare(li, jnp.float32, getkey()), jnp.float32, spiking=False)
    cubali = snnx.CuBaLI(2.0, 6.0, trainable=True)
    _check(*_compare(cubali, jnp.float32, getkey()), jnp.float32, spiking=False)


def test_cubalif_exact_learnable_time_constants(getkey):
    # float64 of the same kernel: the LIF test (interpreted kernels are slow to trace)
    cuba = snnx.CuBaLIF(3.0, jnp.linspace(5.0, 9.0, 6), v_threshold=0.2,
                        trainable=("tau_syn", "tau_mem", "v_threshold"))
    _check(*_compare(cuba, jnp.float32, getkey(), gain=12.0), jnp.float32)


def test_cubalif_from_beta_no_reset(getkey):
    cuba = snnx.CuBaLIF.from_beta(0.7, 0.85, v_threshold=0.5, reset_mode="none",
                                  trainable=("v_threshold",))
    _check(*_compare(cuba, jnp.float32, getkey(), gain=12.0), jnp.float32)


def test_make_step_with_fused_scan_equals_xla(getkey):
    """The training step of a small Sequential, opted in through `run_kwargs`."""
    import optax

    k1, k2, kx = jax.random.split(getkey(), 3)
    model = snnx.Sequential([eqx.nn.Linear(5, 6, key=k1),
                             snnx.LIF(5.0, v_threshold=0.3, trainable=("tau",)),
                             eqx.nn.Linear(6, 3, key=k2), snnx.LI(5.0)])
    xb = jax.random.bernoulli(kx, 0.4, (2, 7, 5)).astype(jnp.float32) * 2.0
    yb = jnp.array([0, 2])
    opt = optax.sgd(0.1)
    o = opt.init(eqx.filter(model, snnx.trainable_spec(model)))
    outs = []
    for scan in (XLAScan(), FUSED):
        step = snnx.make_step(snnx.losses.ce_max_membrane, opt,
                              run_kwargs={"neuron_scan": scan})
        outs.append(step(model, o, xb, yb))
    (m_ref, _, i_ref), (m_got, _, i_got) = outs
    assert jnp.allclose(i_ref["loss"], i_got["loss"], rtol=1e-6)
    assert i_ref["rates"][0] > 0
    assert eqx.tree_equal(m_ref, m_got, rtol=1e-5, atol=1e-6)


def test_stochastic_surrogate_falls_back_to_the_xla_scan(getkey):
    lif = snnx.LIF(5.0, surrogate=snnx.spikes.EscapeNoise(), v_threshold=0.3)
    assert not lif.fused_supported() and snnx.LIF(5.0).fused_supported()
    xs = jax.random.uniform(getkey(), (6, 4))
    key = getkey()
    a = snnx.run(lif, xs, key=key)
    b = snnx.run(lif, xs, key=key, neuron_scan=FUSED)
    assert eqx.tree_equal(a, b)


def test_bad_strategy_arguments():
    with pytest.raises(ValueError, match="`block`"):
        PallasScan(block=0)
    with pytest.raises(TypeError, match="`interpret`"):
        PallasScan(interpret="yes")
    if jax.default_backend() == "cpu":  # compiled kernels need a GPU
        with pytest.raises(ValueError, match="`PallasScan\\(interpret=False\\)`"):
            snnx.run(snnx.LIF(5.0), jnp.ones((3, 2)), neuron_scan=PallasScan())
    with pytest.raises(TypeError, match="`neuron_scan`"):
        snnx.run(snnx.LIF(5.0), jnp.ones((3, 2)), neuron_scan="pallas")


def test_default_is_the_xla_scan():
    assert isinstance(snnx.engine.default_neuron_scan(), XLAScan)
    assert isinstance(snnx.LIF(5.0), snnx.kernels.AbstractFusedNeuron)
