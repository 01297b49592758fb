import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx.data import PackedSpikes
from snnx.events import SpikeEvents, project


@pytest.fixture(autouse=True)
def _exact_matmuls():
    # The dense references below are matmuls; on GPU, JAX's default float32 matmul precision
    # (TF32) is ~1e-3 off, while the event path sums exactly: compare in full precision.
    with jax.default_matmul_precision("highest"):
        yield


def _raster(seed, shape, density=0.1):
    return (np.random.default_rng(seed).random(shape) < density).astype(np.float32)


def test_table_matches_nonzero_and_round_trips():
    x = _raster(0, (3, 7, 20), 0.2)
    x[0, 0] = 1.0  # a step with every input active
    x[0, 1] = 0.0  # and one with none
    ev = SpikeEvents.from_dense(x)
    assert ev.shape == x.shape and len(ev) == 3
    assert ev.max_events == 20
    idx = np.asarray(ev.index)
    for b in range(3):
        for t in range(7):
            active = np.flatnonzero(x[b, t])
            np.testing.assert_array_equal(idx[b, t, : active.size], active)
            assert np.all(idx[b, t, active.size:] == 20)
    np.testing.assert_array_equal(np.asarray(ev.count()), x.sum(-1))
    np.testing.assert_array_equal(np.asarray(ev.to_dense()), x)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda e: e.to_dense())(ev)), x)
    # bool input, a wider padded table, and PackedSpikes give the same events
    wide = SpikeEvents.from_dense(x.astype(bool), max_events=25)
    assert wide.max_events == 25
    np.testing.assert_array_equal(np.asarray(wide.to_dense()), x)
    packed = SpikeEvents.from_dense(PackedSpikes(x))
    np.testing.assert_array_equal(np.asarray(packed.index), idx)
    # indexing along the sample axis
    np.testing.assert_array_equal(np.asarray(ev[1].to_dense()), x[1])
    np.testing.assert_array_equal(np.asarray(ev[jnp.array([2, 0])].to_dense()), x[[2, 0]])


def test_project_equals_dense_matmul(getkey):
    x = _raster(1, (4, 9, 30), 0.15)
    x[0, 0] = 1.0
    x[0, 1] = 0.0
    lin = eqx.nn.Linear(30, 6, key=getkey())
    ev = SpikeEvents.from_dense(x)
    want = x @ np.asarray(lin.weight).T + np.asarray(lin.bias)
    np.testing.assert_allclose(project(ev, lin.weight, lin.bias), want, rtol=1e-5, atol=1e-5)
    got = jax.jit(jax.vmap(lambda e: project(e, lin.weight)))(ev)
    np.testing.assert_allclose(got, want - np.asarray(lin.bias), rtol=1e-5, atol=1e-5)
    # many events per step: the non-unrolled gather loop
    x = _raster(2, (2, 3, 200), 0.6)
    ev = SpikeEvents.from_dense(x)
    assert ev.max_events > 64
    w = jax.random.normal(getkey(), (5, 200))
    np.testing.assert_allclose(project(ev, w), x @ np.asarray(w).T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grad_path", ["scatter", "dense"])
@pytest.mark.parametrize("density", [0.1, 0.6])
def test_project_gradients_equal_dense(getkey, density, grad_path, monkeypatch):
    # weights above `_SCATTER_GRAD_MAX` entries take their gradient from a dense matmul
    limit = 1 << 40 if grad_path == "scatter" else 0
    monkeypatch.setattr(snnx.events, "_SCATTER_GRAD_MAX", limit)
    x = _raster(3, (5, 8, 40), density)
    ev = SpikeEvents.from_dense(x)
    w = jax.random.normal(getkey(), (7, 40))
    c = jax.random.normal(getkey(), (5, 8, 7))

    def loss_events(w):
        return jnp.sum(jnp.tanh(jax.vmap(lambda e: project(e, w))(ev)) * c)

    def loss_dense(w):
        return jnp.sum(jnp.tanh(jnp.asarray(x) @ w.T) * c)

    np.testing.assert_allclose(jax.jit(jax.grad(loss_events))(w), jax.grad(loss_dense)(w),
                               rtol=1e-4, atol=1e-5)
    # forward mode agrees with the dense directional derivative
    v = jax.random.normal(getkey(), w.shape)
    _, t_ev = jax.jvp(loss_events, (w,), (v,))
    _, t_de = jax.jvp(loss_dense, (w,), (v,))
    np.testing.assert_allclose(t_ev, t_de, rtol=1e-4)
    # and central finite differences (float64-free: a coarse but independent check)
    eps = 1e-2
    fd = (loss_events(w + eps * v) - loss_events(w - eps * v)) / (2 * eps)
    np.testing.assert_allclose(t_ev, fd, rtol=2e-2)


def _model(key, n_in=30, r=20.0):
    # r lifts the hidden LIF over threshold (with r=1 it never spikes and the equalities
    # below would compare only smooth surrogate derivatives)
    k1, k2 = jax.random.split(key)
    return snnx.Sequential([eqx.nn.Linear(n_in, 12, key=k1), snnx.LIF(5.0, r=r),
                            eqx.nn.Linear(12, 3, key=k2), snnx.LI(5.0)])


def _hidden_rate(model, x):
    rec = jax.vmap(lambda xi: snnx.run(model, xi, record=True)[2])(jnp.asarray(x))
    return float(rec[1].output.mean())


def test_run_with_events_equals_dense_run(getkey):
    model = _model(getkey())
    x = _raster(4, (3, 16, 30), 0.2)
    ev = SpikeEvents.from_dense(x)
    assert 0.05 < _hidden_rate(model, x) < 0.5

    def loss(m, data, **kw):
        out, _ = jax.vmap(lambda xi: snnx.run(m, xi, **kw))(data)
        return jnp.sum(out.max(axis=1) ** 2)

    for kw in ({}, {"remat": 4}, {"remat": 5}):
        l_d, g_d = eqx.filter_value_and_grad(loss)(model, jnp.asarray(x), **kw)
        l_e, g_e = eqx.filter_jit(eqx.filter_value_and_grad(loss))(model, ev, **kw)
        np.testing.assert_allclose(l_e, l_d, rtol=1e-5)
        for a, b in zip(jax.tree.leaves(g_e), jax.tree.leaves(g_d)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the event path really gathers (no dense projection of the input)
    jaxpr = str(jax.make_jaxpr(lambda e: snnx.run(model, e)[0])(ev[0]))
    assert "gather" in jaxpr and jaxpr.count("dot_general") == 1
    # step-major, SparseLinear, and a first layer that needs the dense raster
    out_d, _ = snnx.run(model, x[0])
    np.testing.assert_allclose(snnx.run(model, ev[0], mode="step")[0], out_d, rtol=1e-5,
                               atol=1e-6)
    sparse = eqx.tree_at(lambda m: m.layers[0], model,
                         snnx.SparseLinear.from_linear(model.layers[0]))
    np.testing.assert_allclose(snnx.run(sparse, ev[0])[0], out_d, rtol=1e-5, atol=1e-6)
    first_neuron = snnx.Sequential([snnx.IF(), eqx.nn.Linear(30, 2, key=getkey()),
                                    snnx.LI(4.0)])
    np.testing.assert_allclose(snnx.run(first_neuron, ev[0])[0],
                               snnx.run(first_neuron, x[0])[0], rtol=1e-5, atol=1e-6)


def test_fit_on_events_equals_fit_on_dense(getkey):
    model = _model(getkey(), n_in=20)
    x = _raster(5, (24, 10, 20), 0.2)
    y = np.random.default_rng(5).integers(0, 3, 24)
    assert 0.05 < _hidden_rate(model, x) < 0.5
    key = jax.random.key(3)
    kw = dict(loss=snnx.losses.ce_max_membrane, optimizer=optax.adam(1e-2), epochs=2, batch_size=8,
              key=key, progress=False)
    m_d, _ = snnx.fit(model, train_data=(x, y), **kw)
    m_e, _ = snnx.fit(model, train_data=(SpikeEvents.from_dense(x), y), **kw)
    for a, b in zip(jax.tree.leaves(eqx.filter(m_e, eqx.is_inexact_array)),
                    jax.tree.leaves(eqx.filter(m_d, eqx.is_inexact_array))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert (snnx.evaluate(m_e, (SpikeEvents.from_dense(x), y), batch_size=10)
            == snnx.evaluate(m_e, (x, y), batch_size=10))
    moved = jax.tree.leaves(eqx.filter(m_e, eqx.is_inexact_array))[0]
    assert not np.allclose(moved, jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))[0])


def test_bad_inputs(getkey):
    x = _raster(6, (2, 5, 10), 0.3)
    with pytest.raises(ValueError, match="`max_events`=1 is too small"):
        SpikeEvents.from_dense(x, max_events=1)
    with pytest.raises(ValueError, match="must be binary"):
        SpikeEvents.from_dense(x * 0.5)
    with pytest.raises(ValueError, match="shape \\(..., T, n_in\\)"):
        SpikeEvents.from_dense(np.zeros(5))
    with pytest.raises(ValueError, match="must lie in \\[0, n_in=10\\]"):
        SpikeEvents(np.full((5, 2), 11), 10)
    with pytest.raises(TypeError, match="`index` must hold integers"):
        SpikeEvents(np.zeros((5, 2)), 10)
    ev = SpikeEvents.from_dense(x)
    with pytest.raises(IndexError, match="leading \\(sample\\) axes"):
        ev[0, 1]
    with pytest.raises(ValueError, match="`weight` must have shape \\(out, n_in=10\\)"):
        project(ev, jnp.zeros((3, 11)))
    with pytest.raises(ValueError, match="in_features=4"):
        snnx.SparseLinear(4, 2, key=getkey())(ev)
    with pytest.raises(ValueError, match="must be one sample"):
        snnx.run(_model(getkey(), n_in=10), ev)


def test_fit_chooses_events_automatically(getkey):
    model = _model(getkey(), n_in=60, r=40.0)  # a sparse input needs more gain to spike
    rng = np.random.default_rng(7)
    x = (rng.random((16, 10, 60)) < 0.02).astype(np.float32)
    y = rng.integers(0, 3, 16)
    assert 0.05 < _hidden_rate(model, x) < 0.5
    kw = dict(loss=snnx.losses.ce_max_membrane, optimizer=optax.adam(1e-2), epochs=1,
              batch_size=8, key=jax.random.key(0), progress=False)
    m_a, h_a = snnx.fit(model, train_data=(x, y), **kw)
    m_d, h_d = snnx.fit(model, train_data=(x, y), events=False, **kw)
    # "auto" converts on CPU only (on GPU the dense matmul measured faster: bench/README.md)
    auto = "events" if jax.default_backend() == "cpu" else "dense"
    assert (h_a["input"], h_d["input"]) == (auto, "dense")
    for a, b in zip(jax.tree.leaves(eqx.filter(m_a, eqx.is_inexact_array)),
                    jax.tree.leaves(eqx.filter(m_d, eqx.is_inexact_array))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # busy steps, packed inputs and graded inputs stay as they are
    busy = (rng.random((16, 10, 60)) < 0.3).astype(np.float32)
    assert snnx.fit(model, train_data=(busy, y), **kw)[1]["input"] == "dense"
    assert snnx.fit(model, train_data=(PackedSpikes(x), y), **kw)[1]["input"] == "packed"
    assert snnx.fit(model, train_data=(PackedSpikes(x), y), events=True,
                    **kw)[1]["input"] == "events"
    assert snnx.fit(model, train_data=(x * 0.5, y), **kw)[1]["input"] == "dense"
    with pytest.raises(ValueError, match="needs `train_data` inputs that are binary"):
        snnx.fit(model, train_data=(x * 0.5, y), events=True, **kw)
    neuron_first = snnx.Sequential([snnx.IF(), eqx.nn.Linear(60, 3, key=getkey()),
                                    snnx.LI(4.0)])
    with pytest.raises(ValueError, match="does not start with an `eqx.nn.Linear`"):
        snnx.fit(neuron_first, train_data=(x, y), events=True, **kw)
    with pytest.raises(ValueError, match="`events` must be True, False or 'auto'"):
        snnx.evaluate(model, (x, y), events="yes")
