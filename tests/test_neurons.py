"""Neurons against closed forms and independent references."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import snnx


def _steps(neuron, xs, state=None):
    out, state = snnx.run(neuron, jnp.asarray(xs, jnp.float32), state)
    return np.asarray(out), state


# --------------------------------------------------------------------------- LIF / IF / LI


@pytest.mark.parametrize("tau,current,dt", [(10.0, 1.5, 1.0), (20.0, 3.0, 0.5), (5.0, 1.1, 0.25)])
def test_lif_constant_input_fires_at_analytic_times(tau, current, dt):
    # Continuous solution from rest with reset to 0: v(t) = R I (1 - e^{-t/tau}); it crosses
    # theta at t* = tau ln(R I / (R I - theta)), and the exact discretisation samples v(t) on
    # the grid, so the first spike is at step ceil(t*/dt), and then periodically.
    theta = 1.0
    t_star = tau * math.log(current / (current - theta))
    period = math.ceil(t_star / dt)
    assert abs(t_star / dt - round(t_star / dt)) > 1e-3  # not on a grid point
    lif = snnx.LIF(tau=tau, v_threshold=theta, dt=dt, reset_mode="to_value")
    T = 4 * period + 3
    out, _ = _steps(lif, np.full((T, 1), current))
    fired = np.flatnonzero(out[:, 0]) + 1  # step t (1-based) after t*dt of input
    np.testing.assert_array_equal(fired, period * np.arange(1, len(fired) + 1))
    assert len(fired) == T // period


def test_lif_subthreshold_membrane_is_exact():
    tau, current, dt = 8.0, 0.7, 0.3
    lif = snnx.LIF(tau=tau, dt=dt)
    _, _, rec = snnx.run(lif, jnp.full((40, 1), current), record=True)
    t = dt * np.arange(1, 41)
    np.testing.assert_allclose(rec[0].state.v[:, 0], current * (1 - np.exp(-t / tau)), rtol=2e-6)


def test_if_counts_charge():
    # IF with subtractive reset: after T steps the number of spikes is floor(total charge / theta).
    if_ = snnx.IF(r=2.0, v_threshold=1.0, dt=0.5)
    xs = np.full((40, 3), [0.37, 0.9, 0.05])
    out, state = _steps(if_, xs)
    charge = (xs * 2.0 * 0.5).sum(0)
    np.testing.assert_array_equal(out.sum(0), np.floor(charge))
    np.testing.assert_allclose(state.v, charge - np.floor(charge), atol=1e-5)


def test_li_matches_ode_solver_for_piecewise_constant_input(getkey):
    tau, r, v_leak, dt = 3.0, 1.7, -0.2, 0.4
    xs = np.asarray(jax.random.normal(getkey(), (25, 2)))
    li = snnx.LI(tau=tau, r=r, v_leak=v_leak, dt=dt)
    out, _ = _steps(li, xs)
    v = np.full(2, v_leak, np.float64)
    ref = []
    for x in xs:  # scipy integrates each step with the input held, as a reference
        sol = solve_ivp(lambda t, y: (v_leak - y + r * x) / tau, (0, dt), v, rtol=1e-10, atol=1e-12)
        v = sol.y[:, -1]
        ref.append(v)
    np.testing.assert_allclose(out, np.array(ref), rtol=1e-5, atol=1e-5)


def test_from_beta_matches_spyx_recursion():
    beta, theta = 0.8, 1.0
    xs = np.array([0.5, 0.4, 0.3, 0.0, 0.9, 0.9, 0.1, 0.0, 1.5, 0.2])
    lif = snnx.LIF.from_beta(beta, theta)
    out, _ = _steps(lif, xs[:, None])
    v, ref = 0.0, []
    for x in xs:  # v = beta v + x; spike = v > theta; v -= spike * theta
        v = beta * v + x
        s = float(v > theta)
        v -= s * theta
        ref.append(s)
    np.testing.assert_array_equal(out[:, 0], ref)
    assert float(lif.beta) == pytest.approx(beta, rel=1e-6)
    li = snnx.LI.from_beta(0.9)
    out, _ = _steps(li, np.ones((3, 1)))
    np.testing.assert_allclose(out[:, 0], [1.0, 1.9, 2.71], rtol=1e-5)


def test_euler_method_is_forward_euler():
    lif = snnx.LIF(tau=4.0, dt=1.0, method="euler", v_threshold=100.0)
    out, state = _steps(lif, np.ones((3, 1)))
    # v' = v + dt/tau (-v + x): 0.25, 0.4375, 0.578125
    np.testing.assert_allclose(state.v, [0.578125], rtol=1e-6)


# --------------------------------------------------------------------------- CuBa


@pytest.mark.parametrize("tau_syn,tau_mem", [(2.0, 10.0), (10.0, 3.0), (5.0, 5.0)])
def test_cubalif_impulse_response_is_two_exponential(tau_syn, tau_mem):
    r, i0, dt, T = 1.5, 2.0, 0.5, 40
    neuron = snnx.CuBaLIF(tau_syn, tau_mem, r=r, v_threshold=1e9, dt=dt)
    state = snnx.neurons.CuBaState(jnp.full((1,), i0), jnp.zeros((1,)))
    _, _, rec = snnx.run(neuron, jnp.zeros((T, 1)), state, record=True)
    t = dt * np.arange(1, T + 1)
    if tau_syn == tau_mem:
        ref = r * i0 * (t / tau_mem) * np.exp(-t / tau_mem)
    else:
        ref = r * i0 * tau_syn / (tau_syn - tau_mem) * (np.exp(-t / tau_syn) - np.exp(-t / tau_mem))
    np.testing.assert_allclose(rec[0].state.v[:, 0], ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rec[0].state.i[:, 0], i0 * np.exp(-t / tau_syn), rtol=1e-5)


def test_cubali_matches_ode_solver(getkey):
    ts, tm, r, w, vl, dt = 2.5, 6.0, 1.2, 0.8, 0.1, 0.3
    xs = np.asarray(jax.random.normal(getkey(), (20, 2)))
    out, _ = _steps(snnx.CuBaLI(ts, tm, r=r, v_leak=vl, w_in=w, dt=dt), xs)
    y = np.concatenate([np.zeros(2), np.full(2, vl)])
    ref = []
    for x in xs:
        def f(t, y, x=x):
            i, v = y[:2], y[2:]
            return np.concatenate([(w * x - i) / ts, (vl - v + r * i) / tm])

        y = solve_ivp(f, (0, dt), y, rtol=1e-10, atol=1e-12).y[:, -1]
        ref.append(y[2:])
    np.testing.assert_allclose(out, np.array(ref), rtol=1e-4, atol=1e-5)


def test_cubalif_from_beta_matches_snntorch_synaptic_subthreshold():
    alpha, beta = 0.7, 0.9
    xs = np.array([1.0, 0.0, 0.5, 0.0, 0.0, 0.2])
    neuron = snnx.CuBaLIF.from_beta(alpha, beta, v_threshold=1e9)
    _, _, rec = snnx.run(neuron, jnp.asarray(xs[:, None], jnp.float32), record=True)
    syn = mem = 0.0
    ref = []
    for x in xs:  # snnTorch Synaptic: syn = alpha syn + x; mem = beta mem + syn
        syn = alpha * syn + x
        mem = beta * mem + syn
        ref.append(mem)
    np.testing.assert_allclose(rec[0].state.v[:, 0], ref, rtol=1e-5)


# --------------------------------------------------------------------------- ALIF


def test_alif_without_adaptation_is_lif(getkey):
    xs = jax.random.uniform(getkey(), (60, 5)) * 0.6
    a = snnx.ALIF(tau=6.0, tau_adapt=50.0, adapt_strength=0.0)
    b = snnx.LIF(tau=6.0)
    np.testing.assert_array_equal(_steps(a, xs)[0], _steps(b, xs)[0])


def test_alif_threshold_adaptation_closed_form():
    # After spikes at steps t_k the adaptation is a_t = sum_k rho^(t - t_k), rho = e^{-dt/tau_a}.
    tau_a = 20.0
    neuron = snnx.ALIF(tau=5.0, tau_adapt=tau_a, adapt_strength=0.5)
    out, _, rec = snnx.run(neuron, jnp.full((80, 1), 1.5), record=True)
    s = np.asarray(out[:, 0])
    rho = math.exp(-1.0 / tau_a)
    a, ref = 0.0, []
    for st in s:
        a = rho * a + st
        ref.append(a)
    np.testing.assert_allclose(rec[0].state.a[:, 0], ref, rtol=1e-5)
    isi = np.diff(np.flatnonzero(s))
    assert isi[-1] > isi[0]  # adaptation slows firing
    lif_count = _steps(snnx.LIF(tau=5.0), np.full((80, 1), 1.5))[0].sum()
    assert s.sum() < lif_count


# --------------------------------------------------------------------------- Izhikevich / AdEx


def _isis(neuron, current, T):
    out, _ = _steps(neuron, np.full((T, 1), current))
    return np.diff(np.flatnonzero(out[:, 0])) * neuron.dt


def test_izhikevich_regular_spiking_adapts():
    # Izhikevich (2003), Fig. 2: RS (a=.02, b=.2, c=-65, d=8) fires tonically with spike-
    # frequency adaptation; FS (a=.1, d=2) fires fast without adaptation; IB (c=-55, d=4)
    # starts with a burst then fires tonically.
    rs = _isis(snnx.Izhikevich(), 10.0, 2000)
    assert len(rs) >= 8
    assert rs[-1] > 1.5 * rs[0]
    assert np.all(np.diff(rs[:4]) >= 0)
    fs = _isis(snnx.Izhikevich(a=0.1, d=2.0), 10.0, 2000)
    assert len(fs) > 2 * len(rs)
    steady = fs[4:]
    assert steady.max() - steady.min() <= 2 * 0.5 + 1e-9  # constant rate, up to grid jitter
    assert fs[-1] / fs[0] < rs[-1] / rs[0]  # less adaptation than RS
    ib = _isis(snnx.Izhikevich(c=-55.0, d=4.0), 10.0, 2000)
    assert ib[0] < 0.3 * np.median(ib)  # initial burst


def test_izhikevich_rests_without_input():
    out, state = _steps(snnx.Izhikevich(), np.zeros((400, 2)))
    assert out.sum() == 0
    # Fixed point of the model with I = 0 and b = 0.2: v ~ -70 mV.
    np.testing.assert_allclose(state.v, -70.0, atol=0.5)


def test_adex_adaptation_and_rest():
    adex = snnx.AdEx()
    # from a perturbed state (v = -60 mV, w = 50 pA) it relaxes to the rest fixed point v*,
    # the root of -(g_l + a)(v - E_L) + g_l Delta_T e^{(v - V_T)/Delta_T} below V_T
    p = _ADEX
    v_star = brentq(lambda v: -(p["g_l"] + p["a"]) * (v - p["e_l"])
                    + p["g_l"] * p["delta_t"] * math.exp((v - p["v_t"]) / p["delta_t"]),
                    p["e_l"] - 5.0, p["v_t"])
    start = snnx.neurons.adex.AdExState(jnp.array([-60.0]), jnp.array([50.0]))
    out, state = _steps(adex, np.zeros((15000, 1)), start)
    assert out.sum() == 0
    np.testing.assert_allclose(state.v, v_star, atol=1e-3)
    np.testing.assert_allclose(state.w, p["a"] * (v_star - p["e_l"]), atol=1e-2)
    isi = _isis(adex, 1000.0, 4000)  # 1 nA step, 400 ms
    assert len(isi) >= 4
    assert isi[-1] > 1.5 * isi[0]  # adaptation current b slows firing


def _adex_rhs(t, y, current, p):
    v, w = y
    exponent = min((v - p["v_t"]) / p["delta_t"], (p["v_peak"] - p["v_t"]) / p["delta_t"])
    dv = (-p["g_l"] * (v - p["e_l"]) + p["g_l"] * p["delta_t"] * math.exp(exponent) - w
          + current) / p["c_m"]
    return [dv, (p["a"] * (v - p["e_l"]) - w) / p["tau_w"]]


_ADEX = dict(c_m=281.0, g_l=30.0, e_l=-70.6, v_t=-50.4, delta_t=2.0, tau_w=144.0, a=4.0,
             b=80.5, v_reset=-70.6, v_peak=20.0)


def test_adex_subthreshold_response_matches_solve_ivp(dtype):
    # 400 pA is below the rheobase (~627 pA): v and w relax to the fixed point, along the
    # trajectory of the AdEx ODE (the forward-Euler step of dt = 0.1 ms is O(dt) off it)
    adex, current, T = snnx.AdEx(), 400.0, 3000
    out, _, rec = snnx.run(adex, jnp.full((T, 1), current, dtype), adex.init_state(1, dtype),
                           record=True)
    assert out.sum() == 0 and rec[0].state.v.dtype == dtype
    t = adex.dt * np.arange(1, T + 1)
    ref = solve_ivp(_adex_rhs, (0, t[-1]), [_ADEX["e_l"], 0.0], t_eval=t, rtol=1e-10,
                    atol=1e-10, args=(current, _ADEX)).y
    np.testing.assert_allclose(rec[0].state.v[:, 0], ref[0], atol=0.05)
    np.testing.assert_allclose(rec[0].state.w[:, 0], ref[1], atol=0.05)
    assert ref[0, -1] - ref[0, 0] > 8.0  # a real depolarisation, not the resting state


def test_adex_fires_only_above_its_rheobase():
    # Without adaptation (a = b = 0) the exponential IF's rest state vanishes in a saddle-node
    # at I_rh = g_l (V_T - E_L - Delta_T), where -g_l (v - E_L) + g_l Delta_T e^{(v-V_T)/Delta_T}
    # + I has a double root (v = V_T). (With adaptation, a step current of the static
    # rheobase (g_l + a)(...) still fires on the fast membrane before w builds up.)
    p = _ADEX
    i_rh = p["g_l"] * (p["v_t"] - p["e_l"] - p["delta_t"])
    adex = snnx.AdEx(a=0.0, b=0.0)
    out, _ = _steps(adex, np.full((10000, 2), [0.98 * i_rh, 1.02 * i_rh]))
    assert out[:, 0].sum() == 0
    assert out[:, 1].sum() > 0


# --------------------------------------------------------------------------- continuous forms

_LIF_P = dict(tau=4.0, r=1.5, v_leak=0.2, v_threshold=1.1, v_reset=-0.3)
_CUBA_P = dict(tau_syn=2.0, tau_mem=5.0, r=1.5, v_leak=0.2, w_in=0.8)


def _rand_state(neuron, rng, dtype):
    state = neuron.init_state((3,), dtype)
    return jax.tree.map(lambda a: jnp.asarray(rng.uniform(-1, 2, size=3), dtype), state)


def _closed_forms(name):
    """(neuron, vector_field(state, x), spike_condition(state), reset(state, spiked)) in numpy."""
    p, q = _LIF_P, _CUBA_P
    jump = p["v_threshold"] - p["v_reset"]
    if name == "LIF":
        return (snnx.LIF(**p),
                lambda s, x: ((p["v_leak"] - s.v + p["r"] * x) / p["tau"],),
                lambda s: s.v - p["v_threshold"],
                lambda s, k: (s.v - k * jump,))
    if name == "IF":
        return (snnx.IF(p["r"], p["v_threshold"], p["v_reset"]),
                lambda s, x: (p["r"] * x + 0 * s.v,),
                lambda s: s.v - p["v_threshold"],
                lambda s, k: (s.v - k * jump,))
    if name == "LI":
        return (snnx.LI(p["tau"], p["r"], p["v_leak"]),
                lambda s, x: ((p["v_leak"] - s.v + p["r"] * x) / p["tau"],),
                lambda s: np.full(3, -np.inf),
                lambda s, k: (s.v,))
    if name in ("CuBaLIF", "CuBaLI"):
        def field(s, x):
            return ((q["w_in"] * x - s.i) / q["tau_syn"],
                    (q["v_leak"] - s.v + q["r"] * s.i) / q["tau_mem"])
        if name == "CuBaLI":
            return (snnx.CuBaLI(**q), field, lambda s: np.full(3, -np.inf), lambda s, k: s)
        return (snnx.CuBaLIF(**q, v_threshold=1.1, v_reset=-0.3), field,
                lambda s: s.v - 1.1, lambda s, k: (s.i, s.v - k * 1.4))
    if name == "ALIF":
        tau_a, b = 30.0, 0.6
        return (snnx.ALIF(p["tau"], tau_a, b, p["r"], p["v_leak"], p["v_threshold"],
                          p["v_reset"]),
                lambda s, x: ((p["v_leak"] - s.v + p["r"] * x) / p["tau"], -s.a / tau_a),
                lambda s: s.v - (p["v_threshold"] + b * s.a),
                lambda s, k: (s.v - k * (p["v_threshold"] + b * s.a - p["v_reset"]), s.a + k))
    assert name == "AdEx"
    a = _ADEX

    def adex_field(s, x):
        return tuple(np.array(c) for c in zip(*[
            _adex_rhs(0.0, (v, w), xi, a) for v, w, xi in zip(s.v, s.w, x)]))

    return (snnx.AdEx(), adex_field, lambda s: s.v - a["v_peak"],
            lambda s, k: (np.where(k, a["v_reset"], s.v), s.w + k * a["b"]))


@pytest.mark.parametrize("name", ["LIF", "IF", "LI", "CuBaLIF", "CuBaLI", "ALIF", "AdEx"])
def test_continuous_form_is_the_ode(name, dtype):
    neuron, field, cond, reset = _closed_forms(name)
    rng = np.random.default_rng(0)
    state = _rand_state(neuron, rng, dtype)
    if name == "AdEx":  # membranes in mV around threshold, one past the exponent cap
        state = state._replace(v=jnp.array([-70.0, -52.0, 25.0], dtype),
                               w=jnp.array([0.0, 40.0, 90.0], dtype))
    x = jnp.asarray(rng.uniform(-1, 2, size=3) * (500.0 if name == "AdEx" else 1.0), dtype)
    s64 = jax.tree.map(lambda a: np.asarray(a, np.float64), state)
    x64 = np.asarray(x, np.float64)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    got = neuron.vector_field(0.0, state, x)
    for g, w in zip(jax.tree.leaves(got), field(s64, x64)):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    np.testing.assert_allclose(neuron.spike_condition(state), cond(s64), rtol=tol, atol=tol)
    spiked = np.array([True, False, True])
    new = neuron.reset(state, jnp.asarray(spiked))
    for g, w in zip(jax.tree.leaves(new), reset(s64, spiked.astype(np.float64))):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["LIF", "IF", "LI", "ALIF", "AdEx"])
def test_euler_step_is_state_plus_dt_vector_field(name, dtype):
    # below threshold, one `method="euler"` step (AdEx: its only step) is the forward-Euler
    # step of `vector_field`; the exact step differs from it by O(dt^2)
    dt = 1e-2
    p = _LIF_P
    neuron = {
        "LIF": lambda: snnx.LIF(**p, dt=dt, method="euler"),
        "IF": lambda: snnx.IF(p["r"], p["v_threshold"], dt=dt),
        "LI": lambda: snnx.LI(p["tau"], p["r"], p["v_leak"], dt=dt, method="euler"),
        "ALIF": lambda: snnx.ALIF(p["tau"], 30.0, 0.6, p["r"], p["v_leak"], dt=dt,
                                  method="euler"),
        "AdEx": lambda: snnx.AdEx(dt=dt),
    }[name]()
    state = neuron.init_state((3,), dtype)
    x = jnp.array([0.3, -0.5, 1.0], dtype) * (300.0 if name == "AdEx" else 1.0)
    if name == "AdEx":
        state = state._replace(v=jnp.array([-70.0, -60.0, -52.0], dtype),
                               w=jnp.array([0.0, 10., 50.], dtype))
    else:
        state = jax.tree.map(lambda a: a + jnp.array([0.1, 0.4, 0.7], dtype), state)
    out, new = neuron(x, state)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(new))
    if name != "LI":
        assert not np.any(np.asarray(out))
    want = jax.tree.map(lambda s, d: s + dt * d, state, neuron.vector_field(0.0, state, x))
    tol = 1e-6 if dtype == jnp.float32 else 1e-13
    assert eqx.tree_equal(new, want, rtol=tol, atol=tol)


def test_simulate_li_and_cubali_constant_current_closed_form():
    # from rest under a constant current c: LI's u = r c (1 - e^{-t/tau}); CuBaLI's
    # u = r w c [1 - (tau_m e^{-t/tau_m} - tau_s e^{-t/tau_s}) / (tau_m - tau_s)]
    c, t1 = jnp.array([0.5, 1.0, 2.0]), 7.0
    p, q = _LIF_P, _CUBA_P
    li = snnx.ode.simulate(snnx.LI(p["tau"], p["r"], p["v_leak"]), c, shape=(3,), t1=t1,
                           max_spikes=1)
    want = p["v_leak"] + p["r"] * c * (1 - np.exp(-t1 / p["tau"]))
    np.testing.assert_allclose(li.final_state.v, want, rtol=1e-4)
    cuba = snnx.ode.simulate(snnx.CuBaLI(**q), c, shape=(3,), t1=t1, max_spikes=1)
    ts, tm = q["tau_syn"], q["tau_mem"]
    drive = q["w_in"] * np.asarray(c)
    np.testing.assert_allclose(cuba.final_state.i, drive * (1 - np.exp(-t1 / ts)), rtol=1e-4)
    u = q["r"] * drive * (1 - (tm * np.exp(-t1 / tm) - ts * np.exp(-t1 / ts)) / (tm - ts))
    np.testing.assert_allclose(cuba.final_state.v, q["v_leak"] + u, rtol=1e-4)


def test_simulate_if_spike_times_closed_form():
    # IF under a constant c: v = r c t, a spike every theta / (r c)
    p = _LIF_P
    c = jnp.array([1.0, 2.5])
    sol = snnx.ode.simulate(snnx.IF(p["r"], 1.0, 0.0), c, shape=(2,), t1=3.0, max_spikes=20)
    assert not bool(sol.overflow)
    for j in range(2):
        period = 1.0 / (p["r"] * float(c[j]))
        n = int(sol.spike_counts[j])
        assert n == int(3.0 / period)
        np.testing.assert_allclose(sol.spike_times[j, :n], period * np.arange(1, n + 1),
                                   rtol=1e-4)


# --------------------------------------------------------------------------- contract checks

ALL_NEURONS = [
    lambda: snnx.LIF(tau=5.0, trainable=True),
    lambda: snnx.IF(trainable=True),
    lambda: snnx.LI(tau=5.0, trainable=True),
    lambda: snnx.CuBaLIF(3.0, 6.0, trainable=True),
    lambda: snnx.CuBaLI(3.0, 6.0, trainable=True),
    lambda: snnx.ALIF(tau=5.0, tau_adapt=30.0, trainable=True),
    lambda: snnx.Izhikevich(trainable=True),
    lambda: snnx.AdEx(trainable=True),
]
# input scales that make each spiking neuron fire at a few to tens of percent
SCALE = {snnx.IF: 2.0, snnx.LI: 2.0, snnx.CuBaLI: 2.0, snnx.Izhikevich: 40.0, snnx.AdEx: 5e4}
SPIKING = (snnx.LIF, snnx.IF, snnx.CuBaLIF, snnx.ALIF, snnx.Izhikevich, snnx.AdEx)


@pytest.mark.parametrize("make", ALL_NEURONS)
def test_neuron_under_jit_grad_vmap(make, getkey):
    neuron = make()
    n_in, n = 6, 4
    lin = eqx.nn.Linear(n_in, n, key=getkey())
    model = snnx.Sequential([lin, neuron])
    scale = SCALE.get(type(neuron), 10.0)
    xb = (jax.random.uniform(getkey(), (3, 30, n_in)) < 0.5) * scale

    @eqx.filter_jit
    def loss(m, xb):
        out = jax.vmap(lambda x: snnx.run(m, x)[0])(xb)
        return jnp.mean(out)

    grads = eqx.filter_grad(loss)(model, xb)
    g = np.asarray(grads.layers[0].weight)
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
    # Per-neuron parameters get gradients too (all trainable here).
    for leaf in jax.tree.leaves(eqx.filter(grads.layers[1], eqx.is_inexact_array)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # vmap equals a Python loop over samples.
    batched = jax.vmap(lambda x: snnx.run(model, x)[0])(xb)
    if isinstance(neuron, SPIKING):  # the gradients and the vmap/loop equality see spikes
        assert 0.02 < float(batched.mean()) < 0.6
    looped = jnp.stack([snnx.run(model, x)[0] for x in xb])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", ALL_NEURONS)
def test_neuron_has_continuous_form(make):
    neuron = make()
    state = neuron.init_state((3,))
    dstate = neuron.vector_field(0.0, state, jnp.ones(3))
    assert jax.tree.structure(dstate) == jax.tree.structure(state)
    cond = neuron.spike_condition(state)
    assert cond.shape == (3,)
    new = neuron.reset(state, jnp.array([True, False, True]))
    assert jax.tree.structure(new) == jax.tree.structure(state)


@pytest.mark.parametrize("make", ALL_NEURONS)
def test_serialise_round_trip(make, tmp_path):
    neuron = make()
    path = tmp_path / "neuron.eqx"
    eqx.tree_serialise_leaves(path, neuron)
    loaded = eqx.tree_deserialise_leaves(path, make())
    assert eqx.tree_equal(neuron, loaded)


def test_frozen_parameters_get_no_gradient_and_are_left_out():
    lif = snnx.LIF(tau=jnp.full((3,), 5.0), trainable=("v_threshold",))
    xs = jnp.ones((20, 3))
    g = eqx.filter_grad(lambda n: jnp.sum(snnx.run(n, xs)[0]))(lif)
    assert np.all(np.asarray(g.log_tau) == 0)
    assert np.any(np.asarray(g.v_threshold) != 0)
    spec = snnx.trainable_spec(snnx.Sequential([eqx.nn.Linear(3, 3, key=jax.random.key(0)), lif]))
    assert spec.layers[0].weight is True
    assert spec.layers[1].log_tau is False and spec.layers[1].v_threshold is True


def test_per_neuron_parameters_broadcast():
    tau = jnp.array([2.0, 4.0, 8.0])
    lif = snnx.LIF(tau=tau, v_threshold=100.0)
    _, state = _steps(lif, np.ones((5, 3)))
    np.testing.assert_allclose(state.v, 1 - np.exp(-5 / np.asarray(tau)), rtol=1e-5)


def test_time_constant_parameterisation_stays_positive():
    lif = snnx.LIF(tau=2.0, trainable=("tau",))
    bumped = eqx.tree_at(lambda n: n.log_tau, lif, lif.log_tau - 50.0)  # a huge step
    assert float(bumped.tau) > 0


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: snnx.LIF(tau=0.0), "`tau` must be > 0"),
        (lambda: snnx.LIF(tau=-1.0), "`tau` must be > 0"),
        (lambda: snnx.LIF(tau=float("nan")), "`tau` must be finite"),
        (lambda: snnx.LIF(tau=5.0, dt=0.0), "`dt` must be"),
        (lambda: snnx.LIF(tau=5.0, dt=-1.0), "`dt` must be"),
        (lambda: snnx.LIF(tau=5.0, v_threshold=jnp.array([1.0, jnp.inf])), "`v_threshold`"),
        (lambda: snnx.CuBaLIF(tau_syn=1.0, tau_mem=-2.0), "`tau_mem` must be > 0"),
        (lambda: snnx.LIF(tau=jnp.ones(3), r=jnp.ones(4)), "do not broadcast"),
        (lambda: snnx.LIF(tau=5.0, reset_mode="zero"), "`reset_mode` must be one of"),
        (lambda: snnx.LIF(tau=5.0, method="rk4"), "`method` must be one of"),
        (lambda: snnx.LIF(tau=5.0, trainable=("beta",)), "unknown parameters"),
        (lambda: snnx.LIF(tau=5.0, surrogate=lambda x: x), "`surrogate` must be"),
        (lambda: snnx.LIF.from_beta(1.0), "`beta` must lie strictly between 0 and 1"),
        (lambda: snnx.LIF(tau=jnp.ones(4)).init_state((3,)), "does not broadcast to the layer"),
        (lambda: snnx.LIF(tau="fast"), "`tau` must be a number"),
    ],
)
def test_invalid_parameters_raise_clear_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
