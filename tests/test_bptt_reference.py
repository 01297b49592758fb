"""BPTT through `snnx.run` against a hand-written backward pass through time.

Each reference below is written from the neuron's documented discrete update (nothing of snnx
is called): a float64 numpy forward pass stores the pre-reset membranes, then the reverse
recursion carries the adjoints of the state, multiplies by the fast-sigmoid surrogate
$\\sigma'(x) = 1/(1 + 25|x|)^2$ where a spike is differentiated, and lets the reset term
$-s(\\vartheta - v_\\text{reset})$ pass gradient only when `detach_reset=False`.

The loss is $L = \\sum_{t,j} c_{tj} s_{tj}$ with random $c$, so every gradient flows through
the surrogate; the networks are checked to spike (a rate band) so the reset matters.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers.recurrent import RecurrentState

ALPHA = 25.0  # FastSigmoid's default sharpness
T, N_IN, N = 40, 6, 5


def _sg(x):
    return 1.0 / (1.0 + ALPHA * np.abs(x)) ** 2


def _problem(seed, w_scale):
    rng = np.random.default_rng(seed)
    xs = (rng.uniform(size=(T, N_IN)) < 0.5).astype(np.float64)
    w = rng.uniform(-0.2, 1.0, size=(N, N_IN)) * w_scale
    c = rng.normal(size=(T, N))
    return xs, w, c


# ----------------------------------------------------------------------------- references


def _ref_lif(w, xs, c, *, tau, r, v_leak, thr, v_reset, dt, detach, w_rec=None,
             reset_mode="subtract"):
    """LIF (optionally with recurrent weights `w_rec` on the previous spikes).

    `"subtract"`: v = u - s (thr - v_reset); `"to_value"`: v = u + s (v_reset - u).
    """
    to_value = reset_mode == "to_value"
    beta = np.exp(-dt / tau)
    gain = 1.0 - beta
    n = w.shape[0]
    v = np.full(n, v_leak)
    s_prev = np.zeros(n)
    us, ss, inps = [], [], []
    for t in range(T):
        inp = w @ xs[t] + (0.0 if w_rec is None else w_rec @ s_prev)
        u = v_leak + beta * (v - v_leak) + gain * r * inp
        s = (u - thr > 0).astype(float)
        v = u + s * (v_reset - u) if to_value else u - s * (thr - v_reset)
        us.append(u), ss.append(s), inps.append(inp)
        s_prev = s
    v_bar = np.zeros(n)  # adjoint of v_t (after reset)
    g_next = np.zeros(n)  # dL/d(input current) at t + 1
    d_inp = np.zeros((T, n))
    for t in reversed(range(T)):
        s_bar = c[t] + (0.0 if w_rec is None else w_rec.T @ g_next)
        if not detach:
            s_bar = s_bar + v_bar * ((v_reset - us[t]) if to_value else -(thr - v_reset))
        # to_value: dv/du = 1 - s through the (1 - s) u term, whether or not s is detached
        u_bar = v_bar * ((1.0 - ss[t]) if to_value else 1.0) + s_bar * _sg(us[t] - thr)
        d_inp[t] = gain * r * u_bar
        v_bar = beta * u_bar
        g_next = d_inp[t]
    grads = {"w": d_inp.T @ xs, "xs": d_inp @ w}
    if w_rec is not None:
        s_before = np.concatenate([np.zeros((1, n)), np.array(ss[:-1])])
        grads["w_rec"] = d_inp.T @ s_before
    return np.array(ss), grads


def _ref_cuba(w, xs, c, *, tau_syn, tau_mem, r, w_in, v_leak, thr, v_reset, dt, detach):
    alpha, beta = np.exp(-dt / tau_syn), np.exp(-dt / tau_mem)
    kappa = tau_syn * (alpha - beta) / (tau_syn - tau_mem)
    n = w.shape[0]
    i, v = np.zeros(n), np.full(n, v_leak)
    us, ss = [], []
    for t in range(T):
        drive = w_in * (w @ xs[t])
        u = v_leak + beta * (v - v_leak) + r * kappa * i + r * drive * (1.0 - beta - kappa)
        i = alpha * i + (1.0 - alpha) * drive
        s = (u - thr > 0).astype(float)
        v = u - s * (thr - v_reset)
        us.append(u), ss.append(s)
    v_bar, i_bar = np.zeros(n), np.zeros(n)  # adjoints of v_t, i_t
    d_inp = np.zeros((T, n))
    for t in reversed(range(T)):
        s_bar = c[t] - (0.0 if detach else v_bar * (thr - v_reset))
        u_bar = v_bar + s_bar * _sg(us[t] - thr)
        d_inp[t] = w_in * ((1.0 - alpha) * i_bar + r * (1.0 - beta - kappa) * u_bar)
        i_bar = alpha * i_bar + r * kappa * u_bar  # now the adjoint of i_{t-1}
        v_bar = beta * u_bar
    return np.array(ss), {"w": d_inp.T @ xs, "xs": d_inp @ w}


def _ref_alif(w, xs, c, *, tau, tau_adapt, b, r, v_leak, thr0, v_reset, dt, detach):
    beta, beta_a = np.exp(-dt / tau), np.exp(-dt / tau_adapt)
    gain = 1.0 - beta
    n = w.shape[0]
    v, a = np.full(n, v_leak), np.zeros(n)
    us, ss, thrs = [], [], []
    for t in range(T):
        a_dec = beta_a * a
        thr = thr0 + b * a_dec
        u = v_leak + beta * (v - v_leak) + gain * r * (w @ xs[t])
        s = (u - thr > 0).astype(float)
        v = u - s * (thr - v_reset)
        a = a_dec + s
        us.append(u), ss.append(s), thrs.append(thr)
    v_bar, a_bar = np.zeros(n), np.zeros(n)  # adjoints of v_t and a_t
    d_inp = np.zeros((T, n))
    for t in reversed(range(T)):
        s = ss[t]
        # a_t = a' + s (always attached); v_t = u - s (thr - v_reset), thr = thr0 + b a'.
        s_bar = c[t] + a_bar - (0.0 if detach else v_bar * (thrs[t] - v_reset))
        sg = _sg(us[t] - thrs[t])
        u_bar = v_bar + s_bar * sg
        a_dec_bar = a_bar - v_bar * s * b - s_bar * sg * b
        d_inp[t] = gain * r * u_bar
        v_bar = beta * u_bar
        a_bar = beta_a * a_dec_bar
    return np.array(ss), {"w": d_inp.T @ xs, "xs": d_inp @ w}


# ------------------------------------------------------------------------------- snnx side


def _snnx_grads(neuron, w, xs, c, dtype, *, w_rec=None, seed=0):
    key = jax.random.key(seed)
    lin = eqx.nn.Linear(N_IN, N, use_bias=False, key=key)
    lin = eqx.tree_at(lambda m: m.weight, lin, jnp.asarray(w, dtype))
    if w_rec is None:
        layer = neuron
        state = (None, neuron.init_state(N, dtype))
    else:
        layer = snnx.Recurrent(neuron, N, key=key)
        layer = eqx.tree_at(lambda m: m.weight, layer, jnp.asarray(w_rec, dtype))
        # `Recurrent.init_state` ignores `dtype` (issue 13): build the float64 state here.
        state = (None, RecurrentState(neuron.init_state(N, dtype), jnp.zeros(N, dtype)))
    model = snnx.Sequential([lin, layer])
    xs, c = jnp.asarray(xs, dtype), jnp.asarray(c, dtype)

    @jax.jit
    def loss(m, x):
        s, _ = snnx.run(m, x, state)
        return jnp.sum(c * s), s

    (_, spikes), (gm, gx) = jax.value_and_grad(
        lambda m, x: loss(m, x), argnums=(0, 1), has_aux=True
    )(model, xs)
    grads = {"w": gm.layers[0].weight, "xs": gx}
    if w_rec is not None:
        grads["w_rec"] = gm.layers[1].weight
    for g in grads.values():
        assert g.dtype == dtype
    return np.asarray(spikes), {k: np.asarray(v, np.float64) for k, v in grads.items()}


def _compare(ref, got, dtype):
    (s_ref, g_ref), (s_got, g_got) = ref, got
    np.testing.assert_array_equal(s_got, s_ref)
    rate = s_ref.mean()
    assert 0.02 <= rate <= 0.6, f"spike rate {rate} outside the band: the test would be vacuous"
    assert s_ref.mean(axis=0).min() > 0, "every neuron must spike at least once"
    tol = 1e-4 if dtype == jnp.float32 else 1e-11
    for name in g_ref:
        scale = np.abs(g_ref[name]).max()
        assert scale > 0
        np.testing.assert_allclose(g_got[name], g_ref[name], rtol=tol, atol=tol * scale,
                                   err_msg=name)


def _reset_matters(run_ref):
    g_det, g_att = run_ref(True)[1], run_ref(False)[1]
    for name in g_det:
        diff = np.abs(g_det[name] - g_att[name]).max()
        assert diff > 1e-2 * np.abs(g_det[name]).max(), name


# ----------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("reset_mode", ["subtract", "to_value"])
@pytest.mark.parametrize("detach", [True, False])
def test_lif_bptt_matches_hand_written_reference(detach, reset_mode, dtype):
    xs, w, c = _problem(0, 1.0)
    p = dict(tau=5.0, r=1.5, v_leak=0.1, thr=1.0, v_reset=-0.2, dt=1.0, reset_mode=reset_mode)
    neuron = snnx.LIF(p["tau"], p["r"], p["v_leak"], p["thr"], p["v_reset"], dt=p["dt"],
                      detach_reset=detach, reset_mode=reset_mode)
    ref = _ref_lif(w, xs, c, detach=detach, **p)
    _compare(ref, _snnx_grads(neuron, w, xs, c, dtype), dtype)
    _reset_matters(lambda d: _ref_lif(w, xs, c, detach=d, **p))


@pytest.mark.parametrize("detach", [True, False])
def test_cubalif_bptt_matches_hand_written_reference(detach, dtype):
    xs, w, c = _problem(1, 1.5)
    p = dict(tau_syn=3.0, tau_mem=6.0, r=1.5, w_in=1.2, v_leak=0.1, thr=1.0, v_reset=-0.2,
             dt=1.0)
    neuron = snnx.CuBaLIF(p["tau_syn"], p["tau_mem"], p["r"], p["v_leak"], p["thr"],
                          p["v_reset"], p["w_in"], dt=p["dt"], detach_reset=detach)
    ref = _ref_cuba(w, xs, c, detach=detach, **p)
    _compare(ref, _snnx_grads(neuron, w, xs, c, dtype), dtype)
    _reset_matters(lambda d: _ref_cuba(w, xs, c, detach=d, **p))


@pytest.mark.parametrize("detach", [True, False])
def test_alif_bptt_matches_hand_written_reference(detach, dtype):
    xs, w, c = _problem(2, 1.5)
    p = dict(tau=5.0, tau_adapt=20.0, b=0.4, r=1.5, v_leak=0.1, thr0=1.0, v_reset=-0.2,
             dt=1.0)
    neuron = snnx.ALIF(p["tau"], p["tau_adapt"], p["b"], p["r"], p["v_leak"], p["thr0"],
                       p["v_reset"], dt=p["dt"], detach_reset=detach)
    ref = _ref_alif(w, xs, c, detach=detach, **p)
    _compare(ref, _snnx_grads(neuron, w, xs, c, dtype), dtype)
    _reset_matters(lambda d: _ref_alif(w, xs, c, detach=d, **p))


@pytest.mark.parametrize("detach", [True, False])
def test_recurrent_lif_bptt_matches_hand_written_reference(detach, dtype):
    xs, w, c = _problem(3, 1.0)
    w_rec = np.random.default_rng(4).uniform(-0.6, 0.6, size=(N, N))
    p = dict(tau=5.0, r=1.5, v_leak=0.1, thr=1.0, v_reset=-0.2, dt=1.0)
    neuron = snnx.LIF(p["tau"], p["r"], p["v_leak"], p["thr"], p["v_reset"], dt=p["dt"],
                      detach_reset=detach)
    ref = _ref_lif(w, xs, c, detach=detach, w_rec=w_rec, **p)
    _compare(ref, _snnx_grads(neuron, w, xs, c, dtype, w_rec=w_rec), dtype)
    _reset_matters(lambda d: _ref_lif(w, xs, c, detach=d, w_rec=w_rec, **p))
