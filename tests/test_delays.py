"""Per-synapse delays (`DelayedLinear` on every queue) against a naive dense convolution."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers import (
    FIFO,
    DelayedLinear,
    DropNewest,
    DropOldest,
    RingBuffer,
    SortedQueue,
    check_dropped,
)

QUEUES = [RingBuffer(), FIFO(), SortedQueue()]
QUEUE_IDS = ["ring", "fifo", "sorted"]


def naive(W, D, xs):
    """y[t, o] = sum_i W[o, i] x[t - D[o, i], i], by loops (zero before step 0)."""
    W, D, xs = np.asarray(W, np.float64), np.asarray(D), np.asarray(xs, np.float64)
    T, (m, n) = xs.shape[0], W.shape
    y = np.zeros((T, m))
    for t in range(T):
        for o in range(m):
            for i in range(n):
                if t - D[o, i] >= 0:
                    y[t, o] += W[o, i] * xs[t - D[o, i], i]
    return y


def _modes(queue):
    """Both execution orders where they differ; an event queue's all-steps form *is* the
    scan of its step (`AbstractQueue.all_steps`), so one run covers both."""
    return ("layer", "step") if isinstance(queue, RingBuffer) else ("layer",)


def _problem(key, dtype, n=5, m=3, M=4, T=13, p=0.4):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    W = jax.random.normal(k1, (m, n), dtype)
    D = np.array(jax.random.randint(k2, (m, n), 0, M + 1))
    D[0, 0], D[-1, -1] = 0, M  # both ends of the range
    spikes = jax.random.bernoulli(k3, p, (T, n))
    xs = jnp.where(spikes, jax.random.normal(k4, (T, n), dtype), 0).astype(dtype)  # graded
    return W, D, xs, M


@pytest.mark.parametrize("queue", QUEUES, ids=QUEUE_IDS)
def test_every_queue_equals_dense_convolution_in_both_modes(queue, dtype, getkey):
    W, D, xs, M = _problem(getkey(), dtype)
    layer = DelayedLinear(5, 3, M, delay=D, weight=W, queue=queue)
    ref = naive(W, D, xs)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    run = eqx.filter_jit(snnx.run)
    for mode in _modes(queue):
        ys, state = run(layer, xs, mode=mode)
        assert ys.dtype == dtype
        np.testing.assert_allclose(np.asarray(ys), ref, rtol=tol, atol=tol)
        assert int(state.dropped) == 0
    if not isinstance(queue, RingBuffer):
        return  # the event queues' all-steps form is their scanned step
    # The state hands over exactly: a run split in two, switching modes, equals one run.
    a, s = run(layer, xs[:2], mode="layer")   # shorter than the delay range
    b, _ = run(layer, xs[2:], s, mode="layer")
    np.testing.assert_allclose(np.asarray(jnp.concatenate([a, b])), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("queue", QUEUES, ids=QUEUE_IDS)
def test_weight_gradients_match_finite_differences(queue, dtype, getkey):
    W, D, xs, M = _problem(getkey(), dtype, T=9)
    c = jax.random.normal(getkey(), (9, 3), dtype)

    def loss(w, mode):
        layer = DelayedLinear(5, 3, M, delay=D, weight=w, queue=queue)
        return jnp.sum(jnp.sin(snnx.run(layer, xs, mode=mode)[0]) * c)

    eps = 1e-3 if dtype == jnp.float32 else 1e-6
    idx = [(0, 0), (1, 2), (2, 4)]
    es = jnp.stack([jnp.zeros_like(W).at[o, i].set(eps) for o, i in idx])

    @jax.jit
    def grads_and_differences(w):  # one compilation for both modes
        out = []
        for mode in _modes(queue):
            f = jax.vmap(lambda v: loss(v, mode))
            out.append((jax.grad(loss)(w, mode),
                        (f(w[None] + es) - f(w[None] - es)) / (2 * eps)))
        return out

    tol = 2e-2 if dtype == jnp.float32 else 1e-6
    for g, fds in grads_and_differences(W):
        assert g.dtype == dtype
        for (o, i), fd in zip(idx, fds):
            np.testing.assert_allclose(float(g[o, i]), float(fd), rtol=tol, atol=tol)


def test_in_sequential_with_lif_jit_vmap_layer_equals_step(getkey):
    D = jax.random.randint(getkey(), (6, 4), 0, 6)
    model = snnx.Sequential([
        DelayedLinear(4, 6, 5, delay=D, weight=2.0 * jax.random.normal(getkey(), (6, 4))),
        snnx.LIF(tau=3.0, r=3.0),
    ])
    xb = jax.random.bernoulli(getkey(), 0.5, (2, 15, 4)).astype(jnp.float32)
    run = eqx.filter_jit(jax.vmap(lambda x, mode: snnx.run(model, x, mode=mode)[0],
                                  in_axes=(0, None)), )
    a = run(xb, "layer")
    b = run(xb, "step")
    assert 0.02 < float(a.mean()) < 0.8
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _naive_fifo(W, D, xs, capacity, drop_oldest):
    """A Python FIFO of (emitted, source, value) with the same policy: outputs and drops."""
    M = int(np.max(D)) if D.size else 0
    queue, dropped, ys = [], 0, []
    for t, x in enumerate(np.asarray(xs, np.float64)):
        queue = [e for e in queue if e[0] >= t - M]
        new = [(t, i, x[i]) for i in np.flatnonzero(x)]
        if drop_oldest:
            if len(new) > capacity:
                dropped += len(new) - capacity
                new = new[len(new) - capacity:]
            over = max(len(queue) + len(new) - capacity, 0)
            dropped += over
            queue = queue[over:] + new
        else:
            free = capacity - len(queue)
            dropped += max(len(new) - free, 0)
            queue = queue + new[:free]
        y = np.zeros(W.shape[0])
        for (s, i, v) in queue:
            y += np.where(D[:, i] == t - s, np.asarray(W)[:, i] * v, 0.0)
        ys.append(y)
    return np.stack(ys), dropped


@pytest.mark.parametrize("policy", [DropNewest(), DropOldest()], ids=["newest", "oldest"])
def test_fifo_overflow_drops_by_policy_and_counts(policy, getkey):
    W, D, xs, M = _problem(getkey(), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32,
                           p=0.6)
    layer = DelayedLinear(5, 3, M, delay=D, weight=W, queue=FIFO(4, policy=policy))
    ref, n_dropped = _naive_fifo(np.asarray(W), D, xs, 4, isinstance(policy, DropOldest))
    assert n_dropped > 0
    for mode in _modes(layer.queue):
        ys, state = snnx.run(layer, xs, mode=mode)
        np.testing.assert_allclose(np.asarray(ys), ref, rtol=1e-5, atol=1e-5)
        assert int(state.dropped) == n_dropped
        with pytest.warns(UserWarning, match=f"dropped {n_dropped} events"):
            assert check_dropped(state) == n_dropped


def _naive_sorted(W, D, xs, capacity, drop_oldest):
    """A Python list of synapse events (arrival, target, value), kept by emission order."""
    W, queue, dropped, ys = np.asarray(W, np.float64), [], 0, []
    m, n = W.shape
    for t, x in enumerate(np.asarray(xs, np.float64)):
        new = [(t + D[o, i], o, W[o, i] * x[i]) for o in range(m) for i in range(n) if x[i]]
        queue = new + queue if drop_oldest else queue + new
        dropped += max(len(queue) - capacity, 0)
        queue = queue[:capacity]
        y = np.zeros(m)
        for (a, o, v) in queue:
            if a == t:
                y[o] += v
        queue = [e for e in queue if e[0] != t]
        ys.append(y)
    return np.stack(ys), dropped


@pytest.mark.parametrize("policy", [DropNewest(), DropOldest()], ids=["newest", "oldest"])
def test_sorted_queue_overflow_drops_by_policy_and_counts(policy, getkey):
    W, D, xs, M = _problem(getkey(), jnp.float32, p=0.6)
    layer = DelayedLinear(5, 3, M, delay=D, weight=W, queue=SortedQueue(12, policy=policy))
    ref, n_dropped = _naive_sorted(W, D, xs, 12, isinstance(policy, DropOldest))
    assert n_dropped > 0
    for mode in _modes(layer.queue):
        ys, state = snnx.run(layer, xs, mode=mode)
        np.testing.assert_allclose(np.asarray(ys), ref, rtol=1e-5, atol=1e-5)
        assert int(state.dropped) == n_dropped
    with pytest.warns(UserWarning, match="raise the queue's `capacity`"):
        check_dropped({"layer": state}, what="layer state")


def test_no_drops_no_warning_and_default_queue(getkey):
    layer = DelayedLinear(3, 2, 2, key=getkey())
    assert isinstance(layer.queue, snnx.layers.AbstractQueue)
    _, state = snnx.run(layer, jnp.ones((4, 3)))
    assert check_dropped(state) == 0  # no warning (warnings are errors here)
    assert np.asarray(layer.delay).min() >= 0 and np.asarray(layer.delay).max() <= 2
    assert layer.delay.dtype == jnp.int32
    # Integer delays are not trained: an optimiser sees the weights only.
    leaves = jax.tree.leaves(eqx.filter(layer, snnx.trainable_spec(layer)))
    assert [leaf.shape for leaf in leaves] == [(2, 3)]


def test_bad_inputs_are_named(getkey):
    key = getkey()
    with pytest.raises(ValueError, match=r"`delay` must lie in \[0, max_delay=3\]"):
        DelayedLinear(2, 2, 3, delay=jnp.array([[0, 4], [1, 1]]), key=key)
    with pytest.raises(ValueError, match=r"`delay` must lie in \[0, max_delay=3\]"):
        DelayedLinear(2, 2, 3, delay=-jnp.ones((2, 2), int), key=key)
    with pytest.raises(ValueError, match="`delay` must have shape"):
        DelayedLinear(2, 2, 3, delay=jnp.zeros((3, 2), int), key=key)
    with pytest.raises(ValueError, match="`delay` must hold whole steps"):
        DelayedLinear(2, 2, 3, delay=jnp.full((2, 2), 1.5), key=key)
    with pytest.raises(ValueError, match="`weight` must have shape"):
        DelayedLinear(2, 2, 3, weight=jnp.zeros((2, 3)), key=key)
    with pytest.raises(ValueError, match="`max_delay` must be an int >= 0"):
        DelayedLinear(2, 2, -1, key=key)
    with pytest.raises(ValueError, match="`in_features` must be an int >= 1"):
        DelayedLinear(0, 2, 3, key=key)
    with pytest.raises(ValueError, match="`key` is needed"):
        DelayedLinear(2, 2, 3)
    with pytest.raises(TypeError, match="`queue` must be an `snnx.layers.AbstractQueue`"):
        DelayedLinear(2, 2, 3, queue="ring", key=key)
    with pytest.raises(ValueError, match="`capacity` must be an int >= 1"):
        FIFO(0)
    with pytest.raises(ValueError, match="`capacity` must be an int >= 1"):
        SortedQueue(2.5)
    with pytest.raises(TypeError, match="`policy` must be"):
        FIFO(3, policy="drop")
    with pytest.raises(ValueError, match=r"input `shape` must be \(in_features,\)"):
        DelayedLinear(2, 2, 3, key=key).init_state((3,))


# --- learnable delays (DCLS) ---------------------------------------------------------------


def _gaussian_kernel(W, P, sigma, M):
    """The normalised Gaussian over bins 0..M times the weight, in numpy (float64)."""
    d = np.arange(M + 1)[:, None, None]
    g = np.exp(-((d - np.asarray(P, np.float64)[None]) ** 2) / (2 * sigma**2))
    return g / g.sum(axis=0, keepdims=True) * np.asarray(W, np.float64)[None]


def test_dcls_equals_dense_gaussian_convolution_in_both_modes(dtype, getkey):
    M, T = 4, 11
    W = jax.random.normal(getkey(), (3, 5), dtype)
    P = jax.random.uniform(getkey(), (3, 5), dtype, maxval=M)
    xs = jax.random.normal(getkey(), (T, 5), dtype)
    layer = snnx.layers.DCLSLinear(5, 3, M, sigma=1.3, centre=P, weight=W)
    K = _gaussian_kernel(W, P, 1.3, M)
    x = np.asarray(xs, np.float64)
    ref = np.stack([sum(K[d] @ x[t - d] for d in range(M + 1) if t >= d) for t in range(T)])
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    run = eqx.filter_jit(snnx.run)
    for mode in ("layer", "step"):
        ys, _ = run(layer, xs, mode=mode)
        assert ys.dtype == dtype
        np.testing.assert_allclose(np.asarray(ys), ref, rtol=tol, atol=tol)
    a, s = run(layer, xs[:3], mode="layer")
    b, _ = run(layer, xs[3:], s, mode="step")
    np.testing.assert_allclose(np.asarray(jnp.concatenate([a, b])), ref, rtol=tol, atol=tol)


def test_dcls_centre_gradients_match_finite_differences(dtype, getkey):
    M, T = 5, 10
    W = jax.random.normal(getkey(), (2, 3), dtype)
    P = jax.random.uniform(getkey(), (2, 3), dtype, minval=0.5, maxval=M - 0.5)
    xs = jax.random.bernoulli(getkey(), 0.5, (T, 3)).astype(dtype)
    c = jax.random.normal(getkey(), (T, 2), dtype)

    def loss(p, mode):
        layer = snnx.layers.DCLSLinear(3, 2, M, sigma=1.0, centre=p, weight=W)
        return jnp.sum(jnp.tanh(snnx.run(layer, xs, mode=mode)[0]) * c)

    eps = 1e-2 if dtype == jnp.float32 else 1e-6
    idx = [(0, 0), (1, 1), (1, 2)]
    es = jnp.stack([jnp.zeros_like(P).at[o, i].set(eps) for o, i in idx])

    @jax.jit
    def grads_and_differences(p):
        out = []
        for mode in ("layer", "step"):
            f = jax.vmap(lambda v: loss(v, mode))
            out.append((jax.grad(loss)(p, mode), (f(p[None] + es) - f(p[None] - es)) / (2 * eps)))
        return out

    tol = 1e-2 if dtype == jnp.float32 else 1e-7
    for g, fds in grads_and_differences(P):
        assert g.dtype == dtype and float(jnp.abs(g).max()) > 1e-3
        for (o, i), fd in zip(idx, fds):
            np.testing.assert_allclose(float(g[o, i]), float(fd), rtol=tol, atol=tol)


def test_dcls_round_schedule_and_sigma_not_trained(getkey):
    M = 6
    layer = snnx.layers.DCLSLinear(4, 3, M, sigma=4.0, key=getkey())
    assert set(np.unique(np.asarray(layer.centre) // 1)) <= set(range(M))
    # The width narrows on the schedule; `set_sigma` reaches layers inside containers.
    schedule = snnx.layers.SigmaSchedule(start=4.0, end=0.5, epochs=7)
    assert [schedule(e) for e in (0, 7, 10)] == [4.0, 0.5, 0.5]
    np.testing.assert_allclose(schedule(3.5), 2.25)
    model = snnx.layers.set_sigma(snnx.Sequential([layer, snnx.LIF(tau=2.0)]), 1e-3)
    narrow = model.layers[0]
    np.testing.assert_allclose(float(narrow.sigma), 1e-3, rtol=1e-6)
    # sigma -> 0: the kernel is one bin, round(centre), so the rounded layer is the same map.
    rounded = snnx.layers.round_delays(model).layers[0]
    assert isinstance(rounded, DelayedLinear)
    np.testing.assert_array_equal(np.asarray(rounded.delay),
                                  np.clip(np.round(np.asarray(layer.centre)), 0, M))
    xs = jax.random.normal(getkey(), (12, 4))
    run = eqx.filter_jit(lambda m: snnx.run(m, xs)[0])
    np.testing.assert_allclose(np.asarray(run(narrow)), np.asarray(run(rounded)),
                               rtol=1e-5, atol=1e-5)
    # An optimiser's gradient never moves sigma.
    g = eqx.filter_jit(jax.grad(lambda m: jnp.sum(snnx.run(m, xs)[0] ** 2)))(layer)
    assert float(g.sigma) == 0.0 and float(jnp.abs(g.centre).max()) > 0


def test_dcls_bad_inputs_are_named(getkey):
    key = getkey()
    with pytest.raises(ValueError, match="`sigma` must be a finite number > 0"):
        snnx.layers.DCLSLinear(2, 2, 3, sigma=0.0, key=key)
    with pytest.raises(ValueError, match="`centre` must have shape"):
        snnx.layers.DCLSLinear(2, 2, 3, sigma=1.0, centre=jnp.zeros(2), key=key)
    with pytest.raises(ValueError, match="`centre` must be finite"):
        snnx.layers.DCLSLinear(2, 2, 3, sigma=1.0, centre=jnp.full((2, 2), jnp.nan), key=key)
    with pytest.raises(ValueError, match="`key` is needed"):
        snnx.layers.DCLSLinear(2, 2, 3, sigma=1.0)
    with pytest.raises(ValueError, match="`epochs` must be an int >= 1"):
        snnx.layers.SigmaSchedule(2.0, 1.0, 0)
    with pytest.raises(ValueError, match=r"input `shape` must be \(in_features,\)"):
        snnx.layers.DCLSLinear(2, 2, 3, sigma=1.0, key=key).init_state((5,))


# --- the timing task -----------------------------------------------------------------------


def test_delay_patterns_differ_only_in_relative_timing():
    x, y = snnx.data.delay_patterns(3, 20, n_channels=6, n_steps=40, max_offset=20, min_gap=4,
                                    seed=3)
    assert x.shape == (60, 40, 6) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20, 20, 20]
    assert np.all(x.sum(axis=1) == 1)  # one spike per channel: counts say nothing
    t = np.argmax(x, axis=1)           # (sample, channel) spike steps
    rel = t - t.min(axis=1, keepdims=True)
    for c in range(3):  # one template per class, whatever the onset
        assert len({tuple(r) for r in rel[y == c]}) == 1
        # every class uses the same spike times, in a different channel order
        np.testing.assert_array_equal(np.sort(rel[y == c][0]), np.arange(0, 21, 4))
    assert len({tuple(rel[y == c][0]) for c in range(3)}) == 3
    assert len(set(t.min(axis=1))) > 3  # the onset varies
    # Another sample seed keeps the templates (train and test sets share them).
    x2, y2 = snnx.data.delay_patterns(3, 5, n_channels=6, n_steps=40, max_offset=20,
                                      min_gap=4, seed=4)
    t2 = np.argmax(x2, axis=1)
    rel2 = t2 - t2.min(axis=1, keepdims=True)
    for c in range(3):
        assert tuple(rel2[y2 == c][0]) == tuple(rel[y == c][0])


def test_delay_patterns_bad_inputs_are_named():
    with pytest.raises(ValueError, match="`n_channels` = 7 needs as many distinct offsets"):
        snnx.data.delay_patterns(n_channels=7, max_offset=20, min_gap=4)
    with pytest.raises(ValueError, match="`max_offset` \\+ 2 \\* `jitter`"):
        snnx.data.delay_patterns(n_steps=10, max_offset=15)
    with pytest.raises(ValueError, match="`noise` must be a probability"):
        snnx.data.delay_patterns(noise=1.5)
    with pytest.raises(ValueError, match="`min_gap` must be an int >= 1"):
        snnx.data.delay_patterns(min_gap=0)
    with pytest.raises(ValueError, match="`n_classes` must be an int >= 1"):
        snnx.data.delay_patterns(0)
