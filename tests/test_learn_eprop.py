"""e-prop against jax.grad of BPTT through snnx.run (exact cases) and through a detached-
recurrence reference (recurrent case)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx.learn import RandomFeedback, eprop_grad


def _loss(y, target):
    return -jax.nn.log_softmax(y)[target]


def _cast(model, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)


def _model(key, neuron, *, recurrent=False, n_in=6, n=8, n_out=3):
    k1, k2, k3 = jax.random.split(key, 3)
    hidden = snnx.Recurrent(neuron, n, key=k3, init_scale=2.0, use_bias=True) if recurrent \
        else neuron
    model = snnx.Sequential([eqx.nn.Linear(n_in, n, key=k1), hidden,
                             eqx.nn.Linear(n, n_out, key=k2), snnx.LI(tau=5.0)])
    # strong enough input that the hidden neurons spike
    return eqx.tree_at(lambda m: m.layers[0].weight, model, model.layers[0].weight * 6.0)


def _bptt(model, xs, target, dtype):
    def loss(m):
        ys, _ = snnx.run(m, xs, m.init_state(xs.shape[1:], dtype))
        return jnp.mean(jax.vmap(_loss, (0, None))(ys, target))

    return eqx.filter_value_and_grad(loss)(model)


@eqx.filter_jit
def _both(model, xs, target, dtype):
    """BPTT (jax.grad through snnx.run) and e-prop, compiled as one program."""
    return _bptt(model, xs, target, dtype), eprop_grad(model, xs, target, _loss)


def _max_err(a, b):
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a),
                                                            jax.tree.leaves(b)))


NEURONS = {
    "lif_detached_reset": lambda: snnx.LIF(tau=4.0, detach_reset=True),
    "lif_reset_with_gradient": lambda: snnx.LIF(tau=4.0, detach_reset=False),
    "alif": lambda: snnx.ALIF(tau=4.0, tau_adapt=10.0, adapt_strength=0.5),
    "cuba": lambda: snnx.CuBaLIF(tau_syn=2.0, tau_mem=4.0, detach_reset=False),
}


_eprop = eqx.filter_jit(eprop_grad)


@pytest.mark.parametrize("name", ["lif_detached_reset", "alif"])
def test_eprop_equals_bptt_without_recurrence(name, dtype, getkey):
    _check_exact(name, dtype, getkey)


@pytest.mark.parametrize("name", ["lif_reset_with_gradient", "cuba"])
def test_eprop_equals_bptt_other_neurons(name, getkey):
    """The eligibility comes from the neuron's own jvp: a reset that carries gradient (LIF)
    and a two-variable neuron with a gradient-carrying reset (CuBaLIF) are exact too."""
    _check_exact(name, jnp.float32, getkey)


def _check_exact(name, dtype, getkey):
    """A non-recurrent layer, symmetric feedback, leaky readout: e-prop is BPTT exactly."""
    model = _cast(_model(getkey(), NEURONS[name]()), dtype)
    xs = (jax.random.uniform(getkey(), (30, 6)) < 0.3).astype(dtype)
    (loss_ref, grad_ref), (loss, grad) = _both(model, xs, 1, dtype)
    assert grad.layers[0].weight.dtype == dtype
    hidden_scale = float(jnp.abs(grad_ref.layers[0].weight).max())
    assert hidden_scale > 1e-4  # the hidden layer really gets a gradient
    rtol = 2e-4 if dtype == jnp.float32 else 1e-10
    assert abs(float(loss) - float(loss_ref)) < rtol * abs(float(loss_ref))
    for i in (0, 2):
        for leaf in ("weight", "bias"):
            a = getattr(grad_ref.layers[i], leaf)
            b = getattr(grad.layers[i], leaf)
            scale = float(jnp.abs(a).max())
            np.testing.assert_allclose(b, a, atol=rtol * scale, rtol=0)


def _detached_recurrence_bptt(model, xs, target, dtype):
    """BPTT through a hand-written loop whose recurrent input is `stop_gradient`-ed."""
    lin_in, rec, lin_out, readout = model.layers

    def loss(m):
        lin_in, rec, lin_out, readout = m.layers

        def step(carry, x):
            s_n, z, s_r = carry
            current = lin_in(x) + rec.weight @ jax.lax.stop_gradient(z) + rec.bias
            z, s_n = rec.neuron(current, s_n)
            y, s_r = readout(lin_out(z), s_r)
            return (s_n, z, s_r), _loss(y, target)

        n = rec.size
        init = (rec.neuron.init_state((n,), dtype), jnp.zeros((n,), dtype),
                readout.init_state((lin_out.out_features,), dtype))
        _, losses = jax.lax.scan(step, init, xs)
        return jnp.mean(losses)

    return eqx.filter_value_and_grad(loss)(model)


@pytest.mark.parametrize("name", ["alif"])
def test_recurrent_eprop_equals_bptt_with_detached_recurrence(name, dtype, getkey):
    model = _cast(_model(getkey(), NEURONS[name](), recurrent=True), dtype)
    xs = (jax.random.uniform(getkey(), (30, 6)) < 0.3).astype(dtype)
    @eqx.filter_jit
    def three(model, xs):
        return (_detached_recurrence_bptt(model, xs, 2, dtype)[1],
                eprop_grad(model, xs, 2, _loss)[1],
                _bptt(model, xs, 2, dtype)[1])

    grad_ref, grad, grad_full = three(model, xs)
    rtol = 2e-4 if dtype == jnp.float32 else 1e-10
    for path in (lambda g: g.layers[0].weight, lambda g: g.layers[1].weight,
                 lambda g: g.layers[1].bias, lambda g: g.layers[2].weight):
        a, b = path(grad_ref), path(grad)
        assert float(jnp.abs(a).max()) > 0
        np.testing.assert_allclose(b, a, atol=rtol * float(jnp.abs(a).max()), rtol=0)
    # and it is an approximation of full BPTT (which also follows the recurrent spikes)
    w_full, w_ep = grad_full.layers[1].weight.ravel(), grad.layers[1].weight.ravel()
    assert float(jnp.abs(w_full - w_ep).max()) > 1e-3 * float(jnp.abs(w_full).max())


def test_random_feedback_given_w_out_transposed_is_symmetric(getkey):
    model = _model(getkey(), snnx.LIF(tau=4.0))
    xs = (jax.random.uniform(getkey(), (20, 6)) < 0.3).astype(jnp.float32)
    _, g_sym = _eprop(model, xs, 0, _loss)
    fb = RandomFeedback(matrix=model.layers[2].weight.T)
    _, g_fb = _eprop(model, xs, 0, _loss, feedback=fb)
    assert _max_err(g_sym, g_fb) == 0.0
    _, g_rand = _eprop(model, xs, 0, _loss, feedback=RandomFeedback(8, 3, key=getkey()))
    assert float(jnp.abs(g_rand.layers[0].weight - g_sym.layers[0].weight).max()) > 0
    # the readout's own gradient does not depend on the feedback
    np.testing.assert_array_equal(g_rand.layers[2].weight, g_sym.layers[2].weight)


def test_eprop_composes_with_optax(getkey):
    """Adam on e-prop gradients learns a two-class rate task (batched with vmap)."""
    model = _model(getkey(), snnx.LIF(tau=4.0), n_in=4, n=16, n_out=2)
    rates = jnp.array([[0.6, 0.6, 0.05, 0.05], [0.05, 0.05, 0.6, 0.6]])
    labels = jnp.arange(32) % 2
    xs = (jax.random.uniform(getkey(), (32, 20, 4)) < rates[labels][:, None]).astype(
        jnp.float32)
    opt = optax.adam(5e-2)
    opt_state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, opt_state):
        loss, grads = jax.vmap(lambda x, t: eprop_grad(model, x, t, _loss))(xs, labels)
        grads = jax.tree.map(lambda g: g.mean(0), grads)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, loss.mean()

    losses = []
    for _ in range(15):
        model, opt_state, loss = train_step(model, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0]
    ys = jax.vmap(lambda x: snnx.run(model, x)[0])(xs)
    assert float(jnp.mean(jnp.argmax(ys.mean(1), -1) == labels)) > 0.9


def test_eprop_bad_inputs(getkey):
    good = _model(getkey(), snnx.LIF(tau=4.0))
    xs = jnp.zeros((5, 6))
    k1, k2 = jax.random.split(getkey())
    with pytest.raises(TypeError, match="`model`"):
        eprop_grad(snnx.Sequential([eqx.nn.Linear(6, 3, key=k1), snnx.LIF(tau=2.0)]), xs, 0,
                   _loss)
    with pytest.raises(TypeError, match="`model`"):
        bad = snnx.Sequential([eqx.nn.Linear(6, 8, key=k1), snnx.LIF(tau=4.0),
                               eqx.nn.Linear(8, 3, key=k2), snnx.LIF(tau=5.0)])
        eprop_grad(bad, xs, 0, _loss)
    with pytest.raises(ValueError, match="`tau`"):
        bad = snnx.Sequential([eqx.nn.Linear(6, 8, key=k1), snnx.LIF(tau=4.0),
                               eqx.nn.Linear(8, 3, key=k2), snnx.LI(tau=jnp.ones(3) * 5.0)])
        eprop_grad(bad, xs, 0, _loss)
    with pytest.raises(ValueError, match="`xs`"):
        eprop_grad(good, jnp.zeros((5, 6), jnp.int32), 0, _loss)
    with pytest.raises(ValueError, match="`input_shape`"):
        eprop_grad(good, jnp.zeros((5, 7)), 0, _loss)
    with pytest.raises(TypeError, match="`feedback`"):
        eprop_grad(good, xs, 0, _loss, feedback="random")
    with pytest.raises(ValueError, match="`matrix`"):
        eprop_grad(good, xs, 0, _loss, feedback=RandomFeedback(matrix=jnp.ones((3, 8))))
    with pytest.raises(ValueError, match="`key`"):
        RandomFeedback(8, 3)
