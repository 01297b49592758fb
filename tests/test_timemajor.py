"""`snnx.engine.run_batch`: a batch in either layout gives `jax.vmap(snnx.run)`'s numbers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import snnx
from snnx.engine import run_batch


def _model(key, dtype):
    k1, k2 = jax.random.split(key)
    return snnx.Sequential([
        eqx.nn.Linear(4, 5, key=k1, dtype=dtype), snnx.LIF(4.0, v_threshold=0.3),
        eqx.nn.Linear(5, 3, key=k2, dtype=dtype), snnx.LI(4.0),
    ])


def _batch(key, dtype, B=3, T=7):
    return jax.random.bernoulli(key, 0.5, (B, T, 4)).astype(dtype) * 3.0


def test_both_layouts_equal_vmap_of_run_with_gradients(getkey, dtype):
    model = _model(getkey(), dtype)
    xb = _batch(getkey(), dtype)

    @eqx.filter_jit
    def ref(m, xb):  # the plain per-sample pattern, batch-major
        return jax.vmap(lambda x: snnx.run(m, x, record=True))(xb)

    @eqx.filter_jit
    def major(m, xb):
        return run_batch(m, xb, record=True)

    @eqx.filter_jit
    def minor(m, xb):  # time-major in, time-major out: moved back for the comparison
        ys, st, recs = run_batch(m, jnp.moveaxis(xb, 0, 1), batch_axis=1, record=True)
        return jax.tree.map(lambda a: jnp.moveaxis(a, 1, 0), (ys, recs)), st

    ys, st, recs = ref(model, xb)
    assert float(jnp.mean(recs[1].output)) > 0  # the LIF layer spikes
    assert eqx.tree_equal((ys, st, recs), major(model, xb))
    (ys2, recs2), st2 = minor(model, xb)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == jnp.float32 else dict(rtol=1e-12, atol=1e-12)
    assert eqx.tree_equal(ys, ys2, **tol) and eqx.tree_equal(st, st2, **tol)
    assert eqx.tree_equal(recs, recs2, **tol)
    assert jnp.array_equal(recs[1].output, recs2[1].output)  # spikes identical

    def loss(f):
        return lambda m, xb: jnp.sum(jnp.max(f(m, xb)[0], axis=1) ** 2)

    g_ref = eqx.filter_jit(eqx.filter_grad(loss(ref)))(model, xb)
    g_tm = eqx.filter_jit(eqx.filter_grad(loss(lambda m, x: minor(m, x)[0])))(model, xb)
    assert eqx.tree_equal(g_ref, g_tm, **tol)


def test_keys_and_batched_state(getkey):
    """One key per sample (`split(key, B)`), as `snnx.make_step` has always split them,
    and a batched initial state; time-major input gives the same per sample."""
    model = snnx.Sequential([eqx.nn.Linear(4, 5, key=getkey()), eqx.nn.Dropout(0.5),
                             snnx.LIF(4.0, v_threshold=0.3)])
    xb = _batch(getkey(), jnp.float32)
    state = jax.vmap(lambda _: model.init_state((4,)))(jnp.arange(3))
    state = jax.tree.map(lambda a: a + 0.2, state)
    key = getkey()
    ks = jax.random.split(key, 3)
    want = jax.jit(jax.vmap(lambda x, s, k: snnx.run(model, x, s, key=k)))(xb, state, ks)
    got = eqx.filter_jit(run_batch)(model, xb, state, key=key)
    assert jnp.array_equal(want[0], got[0])  # spikes identical: the same dropout masks
    assert float(jnp.mean(want[0])) > 0
    assert eqx.tree_equal(want[1], got[1], rtol=1e-6, atol=1e-6)
    ys, st = eqx.filter_jit(run_batch)(model, jnp.moveaxis(xb, 0, 1), state, key=key,
                                       batch_axis=1)
    assert jnp.array_equal(jnp.moveaxis(ys, 1, 0), want[0])
    assert eqx.tree_equal(st, want[1], rtol=1e-6, atol=1e-6)


def test_events_batch_and_run_options(getkey):
    model = _model(getkey(), jnp.float32)
    xb = jax.random.bernoulli(getkey(), 0.2, (2, 6, 4)).astype(jnp.float32)
    ev = snnx.SpikeEvents.from_dense(xb)
    want = jax.jit(jax.vmap(lambda x: snnx.run(model, x, remat=2)))(xb)
    got = eqx.filter_jit(lambda m, e: run_batch(m, e, remat=2))(model, ev)
    assert eqx.tree_equal(want, got, rtol=1e-6, atol=1e-6)


def test_bad_inputs():
    model = _model(jax.random.key(0), jnp.float32)
    with pytest.raises(ValueError, match="`batch_axis`"):
        run_batch(model, jnp.ones((2, 3, 4)), batch_axis=2)
    with pytest.raises(ValueError, match="`xs`"):
        run_batch(model, jnp.ones((4,)))
    ev = snnx.SpikeEvents.from_dense(jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="`batch_axis`"):
        run_batch(model, ev, batch_axis=1)
    with pytest.raises(TypeError, match="`key`"):
        run_batch(model, jnp.ones((2, 3, 4)), key=3)
