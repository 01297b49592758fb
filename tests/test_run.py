"""The run engine: layer-major == step-major, remat, unroll, records, errors."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx


def _mlp(key, n_in=12, n_hidden=10, n_out=4):
    k1, k2, k3 = jax.random.split(key, 3)
    return snnx.Sequential(
        [
            eqx.nn.Linear(n_in, n_hidden, key=k1),
            snnx.LIF(tau=5.0, r=4.0),
            eqx.nn.Dropout(0.3),
            snnx.Recurrent(snnx.CuBaLIF(2.0, 5.0, r=8.0), n_hidden, key=k2),
            eqx.nn.Linear(n_hidden, n_out, key=k3),
            snnx.LI(tau=8.0),
        ]
    )


def _inputs(key, T=30, n=12):
    return (jax.random.uniform(key, (T, n)) < 0.4).astype(jnp.float32) * 6.0


def _assert_mlp_spikes(model, xs):
    # both spiking layers of `_mlp` (LIF, recurrent CuBaLIF) must spike for an equality of
    # runs or gradients to compare more than smooth surrogate derivatives
    rec = snnx.run(eqx.nn.inference_mode(model), xs, record=True)[2]
    for i in (1, 3):
        assert 0.02 < float(rec[i].output.mean()) < 0.5, i


def test_layer_major_equals_step_major_with_keys(getkey):
    model, xs, key = _mlp(getkey()), _inputs(getkey()), getkey()
    a, sa, ra = snnx.run(model, xs, key=key, mode="layer", record=True)
    assert float(ra[1].output.sum()) > 10  # the hidden layer spikes, so dropout matters
    b, sb, rb = snnx.run(model, xs, key=key, mode="step", record=True)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(sa, sb, rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(ra, rb, rtol=1e-5, atol=1e-6)
    # Dropout was active: a different key gives a different output.
    c, _ = snnx.run(model, xs, key=getkey())
    assert not np.allclose(a, c)


def test_layer_major_equals_step_major_gradients(getkey):
    model, xs = _mlp(getkey()), _inputs(getkey())
    model = eqx.nn.inference_mode(model)
    _assert_mlp_spikes(model, xs)

    def loss(m, mode):
        return jnp.sum(snnx.run(m, xs, mode=mode)[0] ** 2)

    ga = eqx.filter_grad(loss)(model, "layer")
    gb = eqx.filter_grad(loss)(model, "step")
    assert eqx.tree_equal(ga, gb, rtol=1e-4, atol=1e-5)


def test_step_major_is_manual_loop(getkey):
    model, xs = eqx.nn.inference_mode(_mlp(getkey())), _inputs(getkey(), T=8)
    _assert_mlp_spikes(model, xs)
    state = model.init_state((12,))
    outs = []
    for x in xs:
        y, state = model(x, state)
        outs.append(y)
    ys, final = snnx.run(model, xs)
    np.testing.assert_allclose(ys, jnp.stack(outs), rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(final, state, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("remat", [True, 4, 7])
def test_remat_and_unroll_change_nothing(remat, getkey):
    model, xs = eqx.nn.inference_mode(_mlp(getkey())), _inputs(getkey(), T=30)
    _assert_mlp_spikes(model, xs)

    def loss(m, **kw):
        return jnp.sum(snnx.run(m, xs, **kw)[0] ** 2)

    ref_val, ref_grad = eqx.filter_value_and_grad(loss)(model)
    val, grad = eqx.filter_value_and_grad(lambda m: loss(m, remat=remat, unroll=3))(model)
    assert float(val) == pytest.approx(float(ref_val), rel=1e-5)
    assert eqx.tree_equal(grad, ref_grad, rtol=1e-4, atol=1e-5)


def test_remat_reduces_saved_residuals(getkey):
    model = eqx.nn.inference_mode(_mlp(getkey()))
    xs = _inputs(getkey(), T=200)

    params, static = eqx.partition(model, eqx.is_array)

    def temp_bytes(remat):
        def loss(p):
            return jnp.sum(snnx.run(eqx.combine(p, static), xs, remat=remat)[0])

        compiled = jax.jit(jax.grad(loss)).lower(params).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(20) < temp_bytes(False)


@pytest.mark.parametrize("remat", [True, 20])
def test_chunked_remat_halves_memory(remat, getkey):
    model = eqx.nn.inference_mode(_mlp(getkey()))
    xs = _inputs(getkey(), T=400)
    params, static = eqx.partition(model, eqx.is_array)

    def mem(remat):
        def f(p):
            return jnp.sum(snnx.run(eqx.combine(p, static), xs, remat=remat)[0])

        return jax.jit(jax.grad(f)).lower(params).compile().memory_analysis().temp_size_in_bytes

    assert mem(remat) < 0.5 * mem(False)


def test_record_shapes_and_nested_sequential(getkey):
    inner = snnx.Sequential([eqx.nn.Linear(12, 6, key=getkey()), snnx.LIF(tau=3.0)])
    model = snnx.Sequential([inner, eqx.nn.Linear(6, 2, key=getkey()), snnx.LI(tau=4.0)])
    xs = _inputs(getkey(), T=9)
    ys, state, rec = snnx.run(model, xs, record=True)
    assert ys.shape == (9, 2)
    assert 0.05 < float(rec[0].output.mean()) < 0.6  # the nested LIF spikes
    assert [r.output.shape for r in rec] == [(9, 6), (9, 2), (9, 2)]
    assert rec[0].state[1].v.shape == (9, 6)  # the nested LIF's membrane over time
    assert rec[1].state is None
    ys2, _, rec2 = snnx.run(model, xs, record=True, mode="step")
    assert eqx.tree_equal(rec, rec2, rtol=1e-5, atol=1e-6)


def test_conv_stack_layer_major_equals_step_major(getkey):
    # the gains make both LIF layers spike: with r=1 the output layer is silent
    model = snnx.Sequential(
        [
            eqx.nn.Conv2d(2, 4, 3, padding=1, key=getkey()),
            snnx.LIF(tau=4.0, r=4.0),
            eqx.nn.AvgPool2d(2, 2),
            jnp.ravel,
            eqx.nn.Linear(4 * 4 * 4, 3, key=getkey()),
            snnx.LIF(tau=4.0, r=25.0),
        ]
    )
    xs = (jax.random.uniform(getkey(), (6, 2, 8, 8)) < 0.3).astype(jnp.float32) * 3
    assert model.output_shape((2, 8, 8)) == (3,)
    rec = snnx.run(model, xs, record=True)[2]
    assert 0.05 < float(rec[1].output.mean()) < 0.5
    assert 0.05 < float(rec[5].output.mean()) < 0.5
    a, _ = snnx.run(model, xs, mode="layer")
    b, _ = snnx.run(model, xs, mode="step")
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batched_run_with_vmap_matches_loop(getkey):
    model = eqx.nn.inference_mode(_mlp(getkey()))
    xb = jnp.stack([_inputs(getkey(), T=10) for _ in range(3)])
    _assert_mlp_spikes(model, xb[0])
    batched = jax.vmap(lambda x: snnx.run(model, x)[0])(xb)
    for i in range(3):
        np.testing.assert_allclose(batched[i], snnx.run(model, xb[i])[0], rtol=1e-5, atol=1e-6)


def test_boolean_spike_input_is_accepted(getkey):
    model = eqx.nn.inference_mode(_mlp(getkey()))
    xs = jax.random.uniform(getkey(), (5, 12)) < 0.5
    a, _ = snnx.run(model, xs)
    b, _ = snnx.run(model, xs.astype(jnp.float32))
    np.testing.assert_array_equal(a, b)


def test_shape_mismatch_names_the_layer(getkey):
    model = snnx.Sequential(
        [eqx.nn.Linear(12, 10, key=getkey()), snnx.LIF(tau=2.0), eqx.nn.Linear(9, 3, key=getkey())]
    )
    msg = r"layer 2 \(Linear\) expects input of shape \(9,\).*\(10,\)"
    with pytest.raises(ValueError, match=msg):
        snnx.run(model, jnp.zeros((4, 12)))
    msg = r"layer 0 \(Linear\) expects input of shape \(12,\).*\(7,\)"
    with pytest.raises(ValueError, match=msg):
        _mlp(getkey()).init_state((7,))
    conv = snnx.Sequential([eqx.nn.Conv2d(2, 4, 3, key=getkey())])
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\).*channels=2.*\(3, 8, 8\)"):
        conv.init_state((3, 8, 8))
    neuron_too_small = snnx.Sequential([eqx.nn.Linear(3, 4, key=getkey()), snnx.LIF(jnp.ones(5))])
    with pytest.raises(ValueError, match=r"layer 1 \(LIF\).*does not broadcast"):
        neuron_too_small.init_state(3)


def test_run_input_errors(getkey):
    model = _mlp(getkey())
    with pytest.raises(ValueError, match="leading time axis"):
        snnx.run(model, jnp.zeros((0, 12)))
    with pytest.raises(ValueError, match="`mode`"):
        snnx.run(model, jnp.zeros((3, 12)), mode="fast")
    with pytest.raises(TypeError, match="`model` must be stateful"):
        snnx.run(eqx.nn.Linear(3, 3, key=getkey()), jnp.zeros((2, 3)))
    batched_state = jax.vmap(lambda _: model.init_state((12,)))(jnp.arange(2))
    with pytest.raises(ValueError, match="Batched states are not accepted"):
        snnx.run(model, jnp.zeros((3, 12)), batched_state)
    with pytest.raises(ValueError, match="does not have the structure"):
        snnx.run(model, jnp.zeros((3, 12)), model.init_state((12,))[:2])
    with pytest.raises(ValueError, match="Recurrent layer of `size=4`"):
        snnx.Recurrent(snnx.LIF(2.0), 4, key=getkey()).init_state((5,))
    with pytest.raises(TypeError, match="list of layers"):
        snnx.Sequential(snnx.LIF(2.0))


def test_recurrent_weight_is_used(getkey):
    rec = snnx.Recurrent(snnx.LIF(tau=3.0), 5, key=getkey(), zero_diagonal=True)
    xs = jnp.ones((20, 5)) * 1.5
    out, _ = snnx.run(rec, xs)
    no_rec = eqx.tree_at(lambda r: r.weight, rec, jnp.zeros((5, 5)))
    out0, _ = snnx.run(no_rec, xs)
    assert not np.array_equal(out, out0)
    # Manual reference: input + W @ previous spikes.
    lif, w = rec.neuron, rec.weight * (1 - jnp.eye(5))
    s, prev, ref = lif.init_state(5), jnp.zeros(5), []
    for x in xs:
        prev, s = lif(x + w @ prev, s)
        ref.append(prev)
    np.testing.assert_allclose(out, jnp.stack(ref), atol=1e-6)


# --------------------------------------------------------------------- a user's own neuron


class QIFState(NamedTuple):
    v: jax.Array


class QIF(snnx.AbstractNeuron):  # quadratic integrate-and-fire, written by a "user"
    tau: jax.Array
    surrogate: snnx.spikes.AbstractSurrogate = snnx.spikes.Sigmoid(5.0)

    def init_state(self, shape):
        return QIFState(jnp.zeros(shape))

    def __call__(self, x, state, *, key=None):
        v = state.v + (state.v**2 + x) / self.tau
        s = self.surrogate(v - 1.0)
        return s, QIFState(v * (1 - jax.lax.stop_gradient(s)))

    def vector_field(self, t, state, x):
        return QIFState((state.v**2 + x) / self.tau)

    def spike_condition(self, state):
        return state.v - 1.0

    def reset(self, state, spiked):
        return QIFState(jnp.where(spiked, 0.0, state.v))


def test_custom_neuron_runs_and_trains_one_step(getkey):
    model = snnx.Sequential(
        [eqx.nn.Linear(4, 6, key=getkey()), QIF(jnp.array(4.0)), eqx.nn.Linear(6, 2, key=getkey())]
    )
    xb = (jax.random.uniform(getkey(), (8, 25, 4)) < 0.5).astype(jnp.float32)
    target = jnp.ones((8, 2)) * 2.0

    def loss(m):
        counts = jax.vmap(lambda x: snnx.run(m, x)[0].sum(0))(xb)
        return jnp.mean((counts - target) ** 2)

    a, b = snnx.run(model, xb[0], mode="layer")[0], snnx.run(model, xb[0], mode="step")[0]
    assert 0.02 < float(snnx.run(model, xb[0], record=True)[2][1].output.mean()) < 0.5
    np.testing.assert_allclose(a, b, atol=1e-6)
    opt = optax.sgd(1e-3)
    params = eqx.filter(model, eqx.is_inexact_array)
    opt_state = opt.init(params)
    l0, grads = eqx.filter_value_and_grad(loss)(model)
    assert float(jnp.abs(grads.layers[0].weight).sum()) > 0
    updates, _ = opt.update(grads, opt_state, params)
    l1 = loss(eqx.apply_updates(model, updates))
    assert float(l1) < float(l0)


def test_compiler_options_compile_and_agree(getkey):
    opts = snnx.compiler_options()
    assert isinstance(opts, dict)
    if jax.default_backend() == "cpu":
        assert opts, "the CPU convolution option should be accepted by this jaxlib"
    model = snnx.Sequential([eqx.nn.Conv2d(2, 3, 3, key=getkey()), snnx.LIF(4.0, r=8.0),
                             jnp.ravel, eqx.nn.Linear(3 * 6 * 6, 2, key=getkey()), snnx.LI(4.0)])
    xs = jax.random.bernoulli(getkey(), 0.3, (5, 2, 8, 8)).astype(jnp.float32)
    assert 0.05 < float(snnx.run(model, xs, record=True)[2][1].output.mean()) < 0.5

    def loss(m):
        return jnp.sum(snnx.run(m, xs)[0] ** 2)

    plain = eqx.filter_jit(eqx.filter_value_and_grad(loss))(model)
    tuned = eqx.filter_jit(eqx.filter_value_and_grad(loss), compiler_options=opts)(model)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(tuned)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
