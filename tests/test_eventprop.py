"""snnx.eventprop: exact gradients (EventProp) against finite differences of the exact loss
and against `jax.grad` through `snnx.ode`'s differentiable spike times."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx.eventprop import (
    Constant,
    EventPropNetwork,
    Exponential,
    Weighting,
    count_penalty,
    first_spike_ce,
    integral_voltage_ce,
    max_voltage_ce,
)

DT = 0.5


def _linear(n_in, n_out, key, scale, shift, bias=True):
    lin = eqx.nn.Linear(n_in, n_out, use_bias=bias, key=key)
    return eqx.tree_at(lambda m: m.weight, lin, lin.weight * scale + shift)


def _net(key, *, readout="spikes", recurrent=False, capacity=20, bias=True, dtype=jnp.float64,
         precise=True):
    k1, k2, k3 = jax.random.split(key, 3)
    last = (snnx.CuBaLIF(5.0, 10.0, dt=DT) if readout == "spikes"
            else snnx.CuBaLI(5.0, 10.0, dt=DT))
    rec = None
    if recurrent:
        rec = (jax.random.normal(k3, (6, 6)) * 0.5, None)
    net = EventPropNetwork(
        [_linear(3, 6, k1, 6.0, 3.0, bias), snnx.CuBaLIF(4.0, 9.0, dt=DT),
         _linear(6, 2, k2, 6.0, 4.0, bias), last], capacity=capacity, recurrent=rec,
        n_bisect=30 if precise else 12, n_newton=6 if precise else 4)
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)


def _input(key, T=50, n=3, dtype=None):
    dtype = jnp.result_type(float) if dtype is None else dtype  # float64 under x64
    return (jax.random.uniform(key, (T, n)) < 0.15).astype(dtype)


def _time_loss(res):
    loss = 0.0
    for scale, out in zip((1e-3, 1e-2), res.layers):
        loss = loss + scale * jnp.sum(jnp.where(out.steps >= 0, out.times**2, 0.0))
    return loss


def _fd_check(loss, net, *, eps=1e-5, n_max=24, last=0):
    """EventProp gradient vs central finite differences of the exact loss on `n_max`
    weights spread over all layers (plus the `last` parameters); returns the norm-wise
    relative error."""
    params, static = eqx.partition(net, snnx.trainable_spec(net))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    grads = eqx.filter_jit(eqx.filter_grad(loss))(net)
    g_flat, _ = jax.flatten_util.ravel_pytree(eqx.filter(grads, snnx.trainable_spec(net)))
    f = jax.jit(lambda p: loss(eqx.combine(unravel(p), static)))
    n = flat.shape[0]
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, min(n_max, n)).astype(int),
                                    np.arange(n - last, n)]))
    fd = np.array([(f(flat.at[j].add(eps)) - f(flat.at[j].add(-eps))) / (2 * eps)
                   for j in idx])
    g = np.asarray(g_flat)[idx]
    err = np.linalg.norm(g - fd) / np.linalg.norm(fd)
    return g, fd, err


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_feedforward_matches_finite_differences(x64):
    """Spike-time losses on both layers plus the first-spike cross-entropy."""
    net = _net(jax.random.key(0))
    xs = _input(jax.random.key(5))
    res = net.simulate(xs)
    assert [int(o.overflow) for o in res.layers] == [0, 0]
    assert int(jnp.sum(res.layers[0].counts)) > 20 and int(jnp.sum(res.layers[1].counts)) > 5

    def loss(n):
        res = n.simulate(xs)
        return _time_loss(res) + first_spike_ce(res.readout[None], jnp.array([0]))

    g, fd, err = _fd_check(loss, net)
    assert np.count_nonzero(fd) > 12
    assert err < 1e-3, err


def test_voltage_readout_losses_match_finite_differences(x64):
    """Max-membrane and integral losses with constant, exponential and user weightings."""
    net = _net(jax.random.key(0), readout="voltage")
    xs = _input(jax.random.key(5))
    labels = jnp.array([1])
    losses = (
        max_voltage_ce,
        functools.partial(integral_voltage_ce, dt=DT, weighting=Exponential(10.0)),
        functools.partial(integral_voltage_ce, dt=DT,
                          weighting=Weighting(lambda t, t_end: (t / t_end) ** 2)),
        functools.partial(integral_voltage_ce, dt=DT, weighting=Constant()),
    )

    def loss(n):
        v = n.readout(xs)[None]
        return sum((i + 1.0) * f(v, labels) for i, f in enumerate(losses))

    _, fd, err = _fd_check(loss, net)
    assert np.count_nonzero(fd) > 12
    assert err < 1e-3, err


def test_recurrent_matches_finite_differences(x64):
    net = _net(jax.random.key(0), recurrent=True)
    xs = _input(jax.random.key(5))
    g, fd, err = _fd_check(lambda n: _time_loss(n.simulate(xs)), net, n_max=12, last=36)
    # the recurrent weights are the last 36 parameters: they get (correct) gradient
    assert np.count_nonzero(fd[-36:]) > 12
    assert err < 1e-3, err


def test_matches_jax_grad_through_snnx_ode(x64):
    """The same continuous system simulated by diffrax (`snnx.ode.simulate_layers`, one
    layer): the same spikes, and EventProp's gradient equals `jax.grad` through the ODE's
    differentiable spike times."""
    w = jax.random.normal(jax.random.key(3), (3, 3), jnp.float64) * 3.0 + 5.0
    xs = _input(jax.random.key(7), T=30)
    T = xs.shape[0]
    neuron = snnx.CuBaLIF(4.0, 9.0, dt=DT)
    kk, jj = np.nonzero(np.asarray(xs))
    in_times, in_ch = jnp.asarray(kk * DT, jnp.float64), jnp.asarray(jj)

    def ode_loss(w):
        (sol,) = snnx.ode.simulate_layers([neuron], [w], (in_times, in_ch), t1=T * DT,
                                          max_spikes=12)
        t = sol.spike_times
        return jnp.sum(jnp.where(jnp.isfinite(t), t, 0.0)), sol

    def ep_loss(w):
        lin = eqx.tree_at(lambda m: m.weight, eqx.nn.Linear(3, 3, use_bias=False,
                                                             key=jax.random.key(0)), w)
        out = EventPropNetwork([lin, neuron], capacity=12).simulate(xs).layers[0]
        return jnp.sum(jnp.where(out.steps >= 0, out.times, 0.0)), out

    (_, sol), g_ode = jax.value_and_grad(ode_loss, has_aux=True)(w)
    (_, out), g_ep = jax.value_and_grad(ep_loss, has_aux=True)(w)
    assert int(sol.n_dropped) == 0 and int(jnp.sum(out.counts)) >= 4
    np.testing.assert_array_equal(np.asarray(sol.spike_counts), np.asarray(out.counts))
    t_ep = np.where(np.asarray(out.steps) >= 0, np.asarray(out.times), np.inf)
    np.testing.assert_allclose(t_ep, np.asarray(sol.spike_times), atol=1e-5)
    np.testing.assert_allclose(np.asarray(g_ep), np.asarray(g_ode), rtol=1e-3,
                               atol=1e-4 * float(jnp.max(jnp.abs(g_ode))))


def test_float32_jit_vmap(getkey):
    """float32 (what users get): finite, close to the float64 gradient, and a batch under
    `jit` + `vmap` gives the mean of the per-sample gradients."""
    xb = jnp.stack([_input(jax.random.key(5)), _input(jax.random.key(6))]).astype(jnp.float32)
    labels = jnp.array([0, 1])
    net32 = _net(jax.random.key(0), dtype=jnp.float32)

    def loss(net, xb, yb):
        return first_spike_ce(jax.vmap(net.readout)(xb), yb)

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    g = grad(net32, xb, labels)
    per = [grad(net32, xb[i:i + 1], labels[i:i + 1]) for i in range(2)]
    for a, b, c in zip(jax.tree.leaves(g), jax.tree.leaves(per[0]), jax.tree.leaves(per[1])):
        assert a.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), 0.5 * np.asarray(b + c), rtol=1e-4, atol=1e-6)
    jax.config.update("jax_enable_x64", True)
    try:
        net64 = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a)
                             else a, net32)
        g64 = grad(net64, xb.astype(jnp.float64), labels)
    finally:
        jax.config.update("jax_enable_x64", False)
    w32, w64 = np.asarray(g.linears[0].weight), np.asarray(g64.linears[0].weight)
    assert np.max(np.abs(w32 - w64)) < 1e-2 * np.max(np.abs(w64))


def test_dead_neuron_gets_zero_gradient(x64):
    """A hidden neuron that never spikes: no spike time moves, so its incoming weights get
    exactly zero gradient (blind to spikes that could appear), as finite differences say."""
    net = _net(jax.random.key(0))
    net = eqx.tree_at(lambda n: n.linears[0].weight, net, net.linears[0].weight.at[1].set(-5.0))
    net = eqx.tree_at(lambda n: n.linears[0].bias, net, net.linears[0].bias.at[1].set(-5.0))
    xs = _input(jax.random.key(5))
    assert float(net.simulate(xs).layers[0].counts[1]) == 0
    loss = lambda n: _time_loss(n.simulate(xs))  # noqa: E731
    g = eqx.filter_grad(loss)(net)
    assert np.all(np.asarray(g.linears[0].weight[1]) == 0) and float(g.linears[0].bias[1]) == 0
    assert np.all(np.asarray(g.linears[1].weight[:, 1]) == 0)  # its outgoing weights too
    assert np.any(np.asarray(g.linears[0].weight[0]) != 0)
    params, static = eqx.partition(net, snnx.trainable_spec(net))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = jax.jit(lambda p: loss(eqx.combine(unravel(p), static)))
    for j in (3, 4, 5):  # row 1 of the first weight matrix: finite differences agree
        e = jnp.zeros_like(flat).at[j].set(1e-5)
        assert float(f(flat + e) - f(flat - e)) == 0.0


def test_silent_neuron_is_lifted_by_a_count_lower_bound(x64):
    """A silent neuron has zero exact gradient; a lower-bound count penalty lifts its
    incoming weights by the documented rule (r w_in a_m / (v_th - v_reset) per unit of
    count cotangent, a_m the input's total amplitude) and a few steps make it fire."""
    net = _net(jax.random.key(0))
    net = eqx.tree_at(lambda n: n.linears[0].weight, net, net.linears[0].weight.at[1].set(-0.5))
    net = eqx.tree_at(lambda n: n.linears[0].bias, net, net.linears[0].bias.at[1].set(-0.5))
    xs = _input(jax.random.key(5))
    counts = np.asarray(net.simulate(xs).layers[0].counts)
    silent = counts == 0
    assert silent[1] and not silent.all()
    loss = lambda n: count_penalty(n.simulate(xs).layers[0].counts[None], lower=1.0)  # noqa: E731
    g = eqx.filter_grad(loss)(net)
    nrn = net.neurons[0]
    scale = -2.0 * nrn.r * nrn.w_in / (nrn.v_threshold - nrn.v_reset)  # d pen / d c = -2
    expected = silent[:, None] * scale * np.asarray(jnp.sum(xs, axis=0))[None, :]
    np.testing.assert_allclose(np.asarray(g.linears[0].weight), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g.linears[0].bias), silent * scale * xs.shape[0],
                               rtol=1e-12)  # neurons that fire: no penalty, zero gradient
    step = eqx.filter_jit(lambda n: eqx.apply_updates(
        n, jax.tree.map(lambda d: -0.005 * d, eqx.filter_grad(loss)(n))))
    count = eqx.filter_jit(lambda n: n.simulate(xs).layers[0].counts[1])
    for _ in range(20):
        net = step(net)
        if float(count(net)) > 0:
            break
    assert float(count(net)) > 0


def test_lift_and_equal_time_constants_in_float32():
    """float32 (what users get): the silent-neuron lift follows the same rule, and a network
    with `tau_syn == tau_mem` spikes at the float64 times (within float32 resolution)."""
    net = _net(jax.random.key(0), dtype=jnp.float32)
    net = eqx.tree_at(lambda n: n.linears[0].weight, net, net.linears[0].weight.at[1].set(-0.5))
    net = eqx.tree_at(lambda n: n.linears[0].bias, net, net.linears[0].bias.at[1].set(-0.5))
    xs = _input(jax.random.key(5), dtype=jnp.float32)
    silent = np.asarray(net.simulate(xs).layers[0].counts) == 0
    assert silent[1] and not silent.all()
    g = eqx.filter_grad(
        lambda n: count_penalty(n.simulate(xs).layers[0].counts[None], lower=1.0))(net)
    assert g.linears[0].weight.dtype == jnp.float32
    nrn = net.neurons[0]
    scale = -2.0 * float(nrn.r * nrn.w_in / (nrn.v_threshold - nrn.v_reset))
    expected = silent[:, None] * scale * np.asarray(jnp.sum(xs, axis=0))[None, :]
    np.testing.assert_allclose(np.asarray(g.linears[0].weight), expected, rtol=1e-6)

    layers = (net.linears[0], snnx.CuBaLIF(6.0, 6.0, dt=DT), net.linears[1],
              snnx.CuBaLIF(10.0, 10.0, dt=DT))
    res32 = EventPropNetwork(layers, capacity=20).simulate(xs)
    jax.config.update("jax_enable_x64", True)
    try:
        layers64 = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a)
                                else a, layers)
        res64 = EventPropNetwork(layers64, capacity=20).simulate(xs.astype(jnp.float64))
    finally:
        jax.config.update("jax_enable_x64", False)
    assert int(np.sum(np.asarray(res64.layers[0].counts))) > 20
    for a, b in zip(res32.layers, res64.layers):
        np.testing.assert_array_equal(np.asarray(a.steps), np.asarray(b.steps))
        np.testing.assert_allclose(np.asarray(a.times), np.asarray(b.times), atol=1e-3)


def test_equal_time_constants(x64):
    """`tau_syn == tau_mem` (the closed form's limit): gradients equal finite differences,
    and the spikes equal those of time constants 1e-7 apart (the distinct-constant form)."""
    def net_with(tm2):
        net = _net(jax.random.key(0))
        layers = (net.linears[0], snnx.CuBaLIF(6.0, 6.0, dt=DT), net.linears[1],
                  snnx.CuBaLIF(tm2, 10.0, dt=DT))
        return EventPropNetwork(layers, capacity=net.capacity, n_bisect=net.n_bisect,
                                n_newton=net.n_newton)

    xs = _input(jax.random.key(5))
    net = net_with(10.0)
    res, near = net.simulate(xs), net_with(10.0 * (1 + 1e-7)).simulate(xs)
    assert [int(o.overflow) for o in res.layers] == [0, 0]
    assert int(jnp.sum(res.layers[0].counts)) > 20 and int(jnp.sum(res.layers[1].counts)) > 5
    for a, b in zip(res.layers, near.layers):
        np.testing.assert_array_equal(np.asarray(a.steps), np.asarray(b.steps))
        np.testing.assert_allclose(np.asarray(a.times), np.asarray(b.times), atol=1e-5)

    def loss(n):
        res = n.simulate(xs)
        return _time_loss(res) + first_spike_ce(res.readout[None], jnp.array([0]))

    _, fd, err = _fd_check(loss, net)
    assert np.count_nonzero(fd) > 12
    assert err < 1e-3, err


def test_the_two_closed_forms_agree(x64):
    """`kernels`' plain form (time constants apart) and its cancellation-free form give the
    same alpha, beta, kappa; the latter also at tau_syn == tau_mem, against (h/tau) e^{-h/tau}."""
    from snnx.eventprop._closed import Consts, kernels

    h = jnp.linspace(0.0, 2.0, 101)
    for dtype, rtol in ((jnp.float64, 1e-12), (jnp.float32, 2e-6)):
        ts, tm = jnp.full(h.shape, 5.0, dtype), jnp.full(h.shape, 10.0, dtype)
        one = jnp.ones(h.shape, dtype)
        k = Consts(ts, tm, one, 0 * one, one, 0 * one, one / ts)
        plain = kernels(h.astype(dtype), k._replace(q=ts / (ts - tm)))
        stable = kernels(h.astype(dtype), k)
        for a, b in zip(plain, stable):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol)
        a, b, kap = kernels(h.astype(dtype), k._replace(ts=tm))
        ref = np.asarray(h) / 10.0 * np.exp(-np.asarray(h) / 10.0)
        np.testing.assert_allclose(np.asarray(kap), ref, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol)


def test_time_constants_changed_after_construction(x64):
    """The closed form is chosen when the network is built; eagerly it follows the neurons,
    and under `jit` a change that invalidates it is an error that says to rebuild."""
    net = _net(jax.random.key(0))
    swapped = eqx.tree_at(lambda n: n.neurons, net,
                          (snnx.CuBaLIF(6.0, 6.0, dt=DT), net.neurons[1]))
    xs = _input(jax.random.key(5))
    rebuilt = EventPropNetwork([swapped.linears[0], swapped.neurons[0], swapped.linears[1],
                                swapped.neurons[1]], capacity=net.capacity,
                               n_bisect=net.n_bisect, n_newton=net.n_newton)
    eager, ref = swapped.simulate(xs), rebuilt.simulate(xs)
    np.testing.assert_array_equal(np.asarray(eager.layers[0].times),
                                  np.asarray(ref.layers[0].times))
    with pytest.raises(Exception, match="rebuild the EventPropNetwork"):
        eqx.filter_jit(lambda n: n.simulate(xs))(swapped)


def test_overflow_is_counted_and_warned(x64):
    net = _net(jax.random.key(0), capacity=3)
    xs = _input(jax.random.key(5))
    with pytest.warns(UserWarning, match="overflowed the capacity"):
        res = net.simulate(xs)
    full = _net(jax.random.key(0), capacity=40).simulate(xs)
    first = res.layers[0]
    expected = int(jnp.sum(jnp.maximum(full.layers[0].counts - 3, 0)))
    assert int(first.overflow) == expected > 0
    np.testing.assert_array_equal(np.asarray(first.counts), np.asarray(full.layers[0].counts))
    np.testing.assert_allclose(np.asarray(first.times), np.asarray(full.layers[0].times[:, :3]))
    # under jit: no warning, the count is in the result / the run's state
    _, st = jax.jit(lambda x: snnx.run(net, x))(xs)
    assert int(st.overflow[0]) == expected


def test_count_penalty_lowers_spike_counts(x64):
    net = _net(jax.random.key(0))
    xs = _input(jax.random.key(5))

    def loss(n):
        return count_penalty(n.simulate(xs).layers[0].counts, upper=2.0)

    before = float(jnp.sum(net.simulate(xs).layers[0].counts))
    g = eqx.filter_grad(loss)(net)
    assert float(jnp.sum(jnp.abs(g.linears[0].weight))) > 0
    stepped = eqx.apply_updates(net, jax.tree.map(lambda a: -0.05 * a, g))
    after = float(jnp.sum(stepped.simulate(xs).layers[0].counts))
    assert after < before


def test_fit_and_make_step_train_with_eventprop():
    """`snnx.fit`/`snnx.make_step` take an EventPropNetwork as the model: the exact
    gradient is the one argument that changes (the model), and the loss goes down."""
    k = jax.random.key(0)
    net = _net(k, dtype=jnp.float32)
    xs = jnp.stack([_input(jax.random.key(i)) for i in range(8)]).astype(jnp.float32)
    ys = jnp.arange(8) % 2
    step = snnx.make_step(first_spike_ce, optax.adam(2e-2),
                          predict=snnx.eventprop.predict_first_spike)
    opt_state = optax.adam(2e-2).init(eqx.filter(net, snnx.trainable_spec(net)))
    losses = []
    model = net
    for _ in range(6):
        model, opt_state, info = step(model, opt_state, xs, ys)
        losses.append(float(info["loss"]))
    assert losses[-1] < losses[0]
    fitted, hist = snnx.fit(net, first_spike_ce, optax.adam(2e-2), (xs, ys), epochs=2,
                            key=k, batch_size=4, progress=False,
                            predict=snnx.eventprop.predict_first_spike,
                            regulariser=snnx.eventprop.count_regulariser(0, upper=8.0))
    assert fitted.linears[0].weight.shape == net.linears[0].weight.shape
    assert not np.allclose(np.asarray(fitted.linears[0].weight), np.asarray(net.linears[0].weight))


def test_run_gives_the_readout():
    net = _net(jax.random.key(0), dtype=jnp.float32)
    xs = _input(jax.random.key(5), dtype=jnp.float32)
    ys, st = snnx.run(net, xs)
    np.testing.assert_array_equal(np.asarray(ys), np.asarray(net.readout(xs)))
    np.testing.assert_array_equal(np.asarray(st.counts[0]),
                                  np.asarray(net.simulate(xs).layers[0].counts))


def test_bad_inputs_are_named():
    k1, k2 = jax.random.split(jax.random.key(0))
    lin, lin2 = eqx.nn.Linear(3, 4, key=k1), eqx.nn.Linear(4, 2, key=k2)
    nrn = snnx.CuBaLIF(5.0, 10.0, dt=DT)
    cases = [
        (dict(layers=[lin, nrn, lin2]), ValueError, "`layers`"),
        (dict(layers=[lin, snnx.LIF(5.0, dt=DT)]), TypeError, "`layers[1]`"),
        (dict(layers=[lin, snnx.CuBaLIF(5.0, 10.0, dt=DT, trainable=("tau_mem",))]),
         ValueError, "`layers[1]`"),
        (dict(layers=[lin, nrn, lin2, snnx.CuBaLIF(5.0, 10.0, dt=1.0)]), ValueError, "`dt="),
        (dict(layers=[lin, nrn, lin, nrn]), ValueError, "`layers[2]`"),
        (dict(layers=[lin, nrn], capacity=0), ValueError, "`capacity`"),
        (dict(layers=[lin, nrn], recurrent=[jnp.zeros((3, 3))]), ValueError, "`recurrent[0]`"),
        (dict(layers=[lin, nrn], recurrent=[None, None]), ValueError, "`recurrent`"),
        (dict(layers=[lin, nrn], n_bisect=0), ValueError, "`n_bisect`"),
    ]
    for kwargs, err, name in cases:
        kwargs.setdefault("capacity", 4)
        with pytest.raises(err, match=name.replace("[", r"\[").replace("]", r"\]")):
            EventPropNetwork(**kwargs)
    net = EventPropNetwork([lin, nrn], capacity=4)
    with pytest.raises(ValueError, match="`xs`"):
        net.simulate(jnp.zeros((10, 5)))
    times = jnp.zeros((2, 4, 4))
    with pytest.raises(ValueError, match="`labels`"):
        first_spike_ce(times, jnp.zeros((3,), int))
    with pytest.raises(ValueError, match="`outputs`"):
        first_spike_ce(times[0], jnp.zeros((2,), int))
    with pytest.raises(TypeError, match="`weighting`"):
        integral_voltage_ce(times, jnp.zeros((2,), int), dt=DT, weighting=lambda t: t)
    with pytest.raises(ValueError, match="`tau`"):
        Exponential(0.0)
    with pytest.raises(ValueError, match="`upper`"):
        count_penalty(jnp.ones(3))
