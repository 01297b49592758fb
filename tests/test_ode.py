"""Continuous-time simulation against closed forms and independent references."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx import ode


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


TIGHT = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12), root_tol=1e-12)


def test_lif_constant_current_spike_times_closed_form(x64):
    tau, r, current, theta = 10.0, 1.3, 1.2, 1.0
    lif = snnx.LIF(tau=tau, r=r, v_threshold=theta, reset_mode="to_value")
    sol = ode.simulate(lif, current, shape=(1,), t1=100.0, max_spikes=20, **TIGHT)
    period = tau * math.log(r * current / (r * current - theta))
    times = np.asarray(sol.spike_times[0])
    times = times[np.isfinite(times)]
    assert len(times) == int(100.0 // period) == int(sol.spike_counts[0])
    np.testing.assert_allclose(times, period * np.arange(1, len(times) + 1), atol=1e-5)
    assert not bool(sol.overflow)


def test_first_spike_gradient_equals_implicit_function_value(x64):
    tau, r, theta = 8.0, 1.0, 1.0
    lif = snnx.LIF(tau=tau, r=r, v_threshold=theta)

    def first_spike(current):
        sol = ode.simulate(lif, current, shape=(1,), t1=40.0, max_spikes=2, **TIGHT)
        return sol.spike_times[0, 0]

    current = 1.7
    t_star = float(first_spike(current))
    # V(t, I) = r I (1 - e^{-t/tau}); dt*/dI = -(dV/dI) / (dV/dt) at t*.
    dv_di = r * (1 - math.exp(-t_star / tau))
    dv_dt = r * current / tau * math.exp(-t_star / tau)
    assert float(jax.grad(first_spike)(current)) == pytest.approx(-dv_di / dv_dt, rel=1e-6)


def test_gradients_wrt_tau_and_weights_match_finite_differences(x64):
    def loss(tau, w):
        neuron = snnx.CuBaLIF(tau_syn=2.0, tau_mem=tau, v_threshold=0.5, trainable=("tau_mem",))
        inputs = (jnp.array([1.0, 2.5, 4.0]), jnp.stack([w, w * 0.5, w]))
        sol = ode.simulate(neuron, 0.0, shape=(2,), t1=30.0, max_spikes=4,
                           input_spikes=inputs, **TIGHT)
        return jnp.sum(jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0))

    loss = jax.jit(loss)
    tau, w = 6.0, jnp.array([2.0, 3.0])
    g_tau, g_w = jax.jit(jax.grad(loss, argnums=(0, 1)))(tau, w)
    eps = 1e-5
    fd_tau = (loss(tau + eps, w) - loss(tau - eps, w)) / (2 * eps)
    fd_w = [(loss(tau, w.at[i].add(eps)) - loss(tau, w.at[i].add(-eps))) / (2 * eps)
            for i in range(2)]
    assert float(loss(tau, w)) > 0
    assert float(g_tau) == pytest.approx(float(fd_tau), rel=1e-4)
    np.testing.assert_allclose(g_w, fd_w, rtol=1e-4, atol=1e-7)
    assert np.abs(np.asarray(g_w)).max() > 1e-3


def test_input_spikes_jump_and_gradient_wrt_input_time(x64):
    # LIF with no current: an input spike of weight w adds r w / tau to v. Two inputs of
    # weight 6 at t=1 and t_2 push v = 0.6 e^{-(t_2-1)/tau} + 0.6 over threshold 1 at t_2.
    tau = 10.0
    lif = snnx.LIF(tau=tau, v_threshold=1.0)

    def spike_time(t2):
        inputs = (jnp.stack([jnp.array(1.0), t2]), jnp.full((2, 1), 6.0))
        sol = ode.simulate(lif, 0.0, shape=(1,), t1=20.0, max_spikes=2, input_spikes=inputs,
                           save_ts=jnp.array([0.5, 1.5, 2.5]), **TIGHT)
        return sol

    sol = spike_time(2.0)
    assert float(sol.spike_times[0, 0]) == pytest.approx(2.0, abs=1e-9)  # at the jump
    v_at_2 = 0.6 * math.exp(-1.0 / tau) + 0.6  # just before the (subtractive) reset
    np.testing.assert_allclose(
        sol.states.v[:, 0],
        [0.0, 0.6 * math.exp(-0.5 / tau), (v_at_2 - 1.0) * math.exp(-0.5 / tau)],
        atol=1e-8,
    )
    g = jax.grad(lambda t2: spike_time(t2).spike_times[0, 0])(2.0)
    assert float(g) == pytest.approx(1.0, rel=1e-6)  # the spike moves with its cause


def _rk4_first_crossings(f, y0, theta_index, theta, t1, h, reset):
    """Fine-grid RK4 reference: a crossing is located by linear interpolation inside the
    step, the state is reset there, and integration restarts from the crossing time."""
    y, t, times = np.array(y0, np.float64), 0.0, []
    while t < t1:
        k1 = f(y)
        k2 = f(y + h / 2 * k1)
        k3 = f(y + h / 2 * k2)
        k4 = f(y + h * k3)
        y_new = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if y[theta_index] <= theta < y_new[theta_index]:
            frac = (theta - y[theta_index]) / (y_new[theta_index] - y[theta_index])
            t = t + frac * h
            times.append(t)
            y = reset(y + frac * (y_new - y))
            continue
        y, t = y_new, t + h
    return np.array(times)


def test_cubalif_event_times_match_fine_grid_reference(x64):
    ts, tm, r, current = 3.0, 7.0, 1.0, 1.6
    neuron = snnx.CuBaLIF(ts, tm, r=r, v_threshold=1.0, reset_mode="to_value")
    sol = ode.simulate(neuron, current, shape=(1,), t1=60.0, max_spikes=10, **TIGHT)
    ref = _rk4_first_crossings(
        lambda y: np.array([(current - y[0]) / ts, (-y[1] + r * y[0]) / tm]),
        [0.0, 0.0], 1, 1.0, 60.0, 1e-3, lambda y: np.array([y[0], 0.0]),
    )
    times = np.asarray(sol.spike_times[0])
    times = times[np.isfinite(times)]
    assert len(times) == len(ref) >= 3
    np.testing.assert_allclose(times, ref, atol=2e-3)


def test_izhikevich_event_times_match_fine_grid_reference(x64):
    izh = snnx.Izhikevich()  # regular spiking, mV / ms
    current = 10.0
    sol = ode.simulate(izh, current, shape=(1,), t1=200.0, max_spikes=10, root_tol=1e-9,
                       stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9))

    def f(y):
        v, u = y
        return np.array([0.04 * v * v + 5 * v + 140 - u + current, 0.02 * (0.2 * v - u)])

    ref = _rk4_first_crossings(f, [-65.0, -13.0], 0, 30.0, 200.0, 1e-3,
                               lambda y: np.array([-65.0, y[1] + 8.0]))
    times = np.asarray(sol.spike_times[0])
    times = times[np.isfinite(times)]
    assert len(times) == len(ref) >= 3
    # The upstroke to 30 mV is very steep, so crossing times agree closely.
    np.testing.assert_allclose(times, ref, atol=5e-3)


def test_discrete_run_converges_to_continuous_at_rate_one():
    # 40 LIF neurons with different constant currents: the mean first-spike-time error of
    # the discrete clock is ~dt/2 (spikes are seen at the end of the step), so halving dt
    # halves it: convergence rate 1.
    currents = jnp.linspace(1.2, 3.0, 40)
    tau = 10.0
    cont = ode.simulate(snnx.LIF(tau=tau), currents, shape=(40,), t1=30.0, max_spikes=400)
    t_cont = np.asarray(cont.spike_times[:, 0])

    def mean_error(dt):
        lif = snnx.LIF(tau=tau, dt=dt)
        steps = int(round(30.0 / dt))
        out, _ = snnx.run(lif, jnp.broadcast_to(currents, (steps, 40)))
        t_disc = (np.argmax(np.asarray(out), axis=0) + 1) * dt
        return np.mean(np.abs(t_disc - t_cont))

    e1, e2 = mean_error(0.2), mean_error(0.1)
    assert e1 < 0.2 and e2 < 0.1
    rate = math.log2(e1 / e2)
    assert 0.7 < rate < 1.3


@pytest.mark.parametrize("solver", [diffrax.Euler(), diffrax.Heun()])
def test_fixed_step_solvers(solver):
    lif = snnx.LIF(tau=10.0, reset_mode="to_value")
    sol = ode.simulate(lif, 1.5, shape=(1,), t1=30.0, max_spikes=5, solver=solver, dt0=0.01)
    period = 10.0 * math.log(3.0)
    assert float(sol.spike_times[0, 0]) == pytest.approx(period, abs=0.05)
    assert int(sol.spike_counts[0]) == 2


def test_time_varying_and_piecewise_constant_inputs():
    lif = snnx.LIF(tau=5.0, v_threshold=1e9)  # never spikes: pure integration
    grid = (jnp.array([0.0, 2.0]), jnp.array([[1.0], [0.0]]))
    sol = ode.simulate(lif, grid, shape=(1,), t1=6.0, max_spikes=1, save_ts=jnp.array([2.0, 6.0]))
    v2 = 1 - math.exp(-2 / 5)
    np.testing.assert_allclose(sol.states.v[:, 0], [v2, v2 * math.exp(-4 / 5)], rtol=1e-4)
    sine = ode.simulate(lif, lambda t: jnp.sin(t) * jnp.ones(1), shape=(1,), t1=3.0,
                        max_spikes=1, save_ts=jnp.array([3.0]))
    # tau v' = -v + sin t, v(0) = 0: v = (sin t - tau cos t + tau e^{-t/tau}) / (1 + tau^2)
    t, tau = 3.0, 5.0
    exact = (math.sin(t) - tau * math.cos(t) + tau * math.exp(-t / tau)) / (1 + tau**2)
    assert float(sine.states.v[0, 0]) == pytest.approx(exact, rel=1e-4)


def test_overflow_is_flagged_and_counted():
    lif = snnx.LIF(tau=10.0, reset_mode="to_value")
    full = ode.simulate(lif, 2.0, shape=(1,), t1=50.0, max_spikes=20)
    cut = ode.simulate(lif, 2.0, shape=(1,), t1=50.0, max_spikes=3)
    n = int(full.spike_counts[0])
    assert not bool(full.overflow) and n > 3
    assert bool(cut.overflow) and int(cut.n_dropped) == n - 3
    np.testing.assert_allclose(cut.spike_times[0], full.spike_times[0, :3], rtol=1e-5)


def test_two_layer_network_driven_by_spike_times(x64):
    l1 = snnx.LIF(tau=5.0, v_threshold=1.0, reset_mode="to_value")
    l2 = snnx.CuBaLIF(2.0, 5.0, v_threshold=0.3, reset_mode="to_value")
    w1 = jnp.array([[8.0, 0.0], [0.0, 12.0], [6.0, 6.0]])
    w2 = jnp.array([[4.0, 4.0, 4.0]])
    inputs = (jnp.array([1.0, 2.0, 3.0, jnp.inf]), jnp.array([0, 1, 0, -1]))
    s1, s2 = ode.simulate_layers([l1, l2], [w1, w2], inputs, t1=20.0, max_spikes=[6, 4], **TIGHT)
    # Layer 1: weight >= tau * theta / r = 5 crosses threshold at the jump itself.
    np.testing.assert_allclose(s1.spike_times[0, :2], [1.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(s1.spike_times[1, :1], [2.0], atol=1e-9)
    assert int(s1.spike_counts[2]) >= 1
    assert int(s2.spike_counts[0]) >= 1 and float(s2.spike_times[0, 0]) > 1.0
    g = jax.grad(
        lambda w: ode.simulate_layers([l1, l2], [w1, w], inputs, t1=20.0, max_spikes=[6, 4],
                                      **TIGHT)[1].spike_times[0, 0]
    )(w2)
    assert np.all(np.asarray(g) <= 0) and np.any(np.asarray(g) < 0)  # more weight, earlier


def test_missing_continuous_method_is_named():
    class Discrete(snnx.AbstractNeuron):
        def init_state(self, shape):
            return jnp.zeros(shape)

        def __call__(self, x, state, *, key=None):
            return x, state

    with pytest.raises(TypeError, match="lacks `vector_field`"):
        ode.simulate(Discrete(), 1.0, shape=(1,), t1=1.0, max_spikes=1)


def test_bad_arguments():
    lif = snnx.LIF(tau=5.0)
    with pytest.raises(ValueError, match="`max_spikes`"):
        ode.simulate(lif, 1.0, shape=(1,), t1=1.0, max_spikes=0)
    with pytest.raises(ValueError, match="`t1` must be greater"):
        ode.simulate(lif, 1.0, shape=(1,), t0=2.0, t1=1.0, max_spikes=1)
    with pytest.raises(ValueError, match="needs `dt0`"):
        ode.simulate(lif, 1.0, shape=(1,), t1=1.0, max_spikes=1, solver=diffrax.Euler())
    with pytest.raises(ValueError, match="`shape`"):
        ode.simulate(lif, 1.0, t1=1.0, max_spikes=1)
    with pytest.raises(ValueError, match="`input_spikes`"):
        ode.simulate(lif, 0.0, shape=(2,), t1=1.0, max_spikes=1,
                     input_spikes=(jnp.zeros(3), jnp.zeros((3, 4))))


def test_vmap_over_currents():
    # float32 (the default): a constant current c > 1 fires with period 10 ln(c / (c - 1)),
    # 10 ln 3 = 10.99 for c = 1.5 (3 spikes in 40), 10 ln 1.5 = 4.05 for c = 3 (9 spikes)
    lif = snnx.LIF(tau=10.0)
    sol = jax.vmap(
        lambda c: ode.simulate(lif, c, shape=(1,), t1=40.0, max_spikes=10)
    )(jnp.array([0.5, 1.5, 3.0]))
    np.testing.assert_array_equal(sol.spike_counts[:, 0], [0, 3, 9])
    for i, c in ((1, 1.5), (2, 3.0)):
        n = int(sol.spike_counts[i, 0])
        want = 10.0 * np.log(c / (c - 1.0)) * np.arange(1, n + 1)
        np.testing.assert_allclose(sol.spike_times[i, 0, :n], want, rtol=1e-4)
