"""STDP against the closed-form pair sums of the spike trains it produced."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.learn import STDP, Additive, AllToAll, Multiplicative, Nearest

A_PLUS, A_MINUS, TAU_PLUS, TAU_MINUS, DT = 0.01, 0.012, 7.0, 11.0, 0.5


def _closed_form(pre, post, pairing):
    """Delta w_ij from spike times: the pair window summed over all (or nearest) pairs."""
    pre, post = np.asarray(pre, np.float64), np.asarray(post, np.float64)
    dw = np.zeros((post.shape[1], pre.shape[1]))
    for i in range(post.shape[1]):
        tq = np.flatnonzero(post[:, i])
        for j in range(pre.shape[1]):
            tp = np.flatnonzero(pre[:, j])
            if pairing == "all":
                for q in tq:
                    for p in tp:
                        d = (q - p) * DT
                        if d > 0:
                            dw[i, j] += A_PLUS * math.exp(-d / TAU_PLUS)
                        elif d < 0:
                            dw[i, j] -= A_MINUS * math.exp(d / TAU_MINUS)
            else:  # nearest: latest earlier partner only
                for q in tq:
                    earlier = tp[tp < q]
                    if earlier.size:
                        dw[i, j] += A_PLUS * math.exp(-(q - earlier[-1]) * DT / TAU_PLUS)
                for p in tp:
                    earlier = tq[tq < p]
                    if earlier.size:
                        dw[i, j] -= A_MINUS * math.exp(-(p - earlier[-1]) * DT / TAU_MINUS)
    return dw


def _layer(key, pairing, bound=None):
    return STDP(snnx.LIF(tau=3.0, dt=DT), 6, 4, key=key, init_scale=5.0, a_plus=A_PLUS,
                a_minus=A_MINUS, tau_plus=TAU_PLUS, tau_minus=TAU_MINUS, dt=DT,
                pairing=pairing, bound=bound)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_stdp_in_run_matches_closed_form(pairing, dtype, getkey):
    layer = _layer(getkey(), AllToAll() if pairing == "all" else Nearest())
    xs = (jax.random.uniform(getkey(), (80, 6)) < 0.15).astype(dtype)
    state = layer.init_state((6,), dtype)
    ys, final = jax.jit(lambda x, s: snnx.run(layer, x, s))(xs, state)
    assert final.weight.dtype == dtype
    assert 5 < float(ys.sum()) < 200  # the post neurons spiked, but not every step
    expected = _closed_form(xs, ys, pairing)
    got = np.asarray(final.weight, np.float64) - np.asarray(layer.weight, np.float64)
    assert np.abs(expected).max() > 1e-2
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(got, expected, atol=tol, rtol=0)


def test_stdp_pair_window(dtype):
    """One pre and one post spike, every lag: the STDP curve A+ e^{-dt/tau+} / -A- e^{dt/tau-}."""
    lags = np.arange(-12, 13)
    # input 0: the pre spike under study (weight 0: it does not drive the neuron);
    # input 1: a driver with weight 1 that makes the post neuron spike at t_post.
    xs = np.zeros((lags.size, 40, 2))
    xs[:, 15, 0] = 1.0
    xs[np.arange(lags.size), 15 + lags, 1] = 1.0
    layer = STDP(snnx.IF(v_threshold=0.5), 2, 1, weight=jnp.array([[0.0, 1.0]]),
                 a_plus=A_PLUS, a_minus=A_MINUS, tau_plus=TAU_PLUS, tau_minus=TAU_MINUS, dt=DT)
    state = layer.init_state((2,), dtype)
    ys, final = jax.vmap(lambda x: snnx.run(layer, x, state))(jnp.asarray(xs, dtype))
    np.testing.assert_array_equal(np.asarray(ys)[..., 0], xs[..., 1])  # post spikes at t_post
    d = lags * DT
    expected = np.where(d > 0, A_PLUS * np.exp(-d / TAU_PLUS),
                        np.where(d < 0, -A_MINUS * np.exp(d / TAU_MINUS), 0.0))
    tol = 1e-7 if dtype == jnp.float32 else 1e-15
    np.testing.assert_allclose(np.asarray(final.weight)[:, 0, 0], expected, atol=tol, rtol=0)


def test_multiplicative_bounds_closed_form(dtype):
    """Soft bounds: one pair scales by (w_max - w) or (w - w_min); weights stay inside."""
    w0, w_min, w_max = 0.3, -0.2, 1.5
    for lag in (3, -4):
        pre = np.zeros((20, 1))
        pre[8] = 1.0
        drive = np.zeros((20, 1))
        drive[8 + lag] = 1.0
        xs = jnp.asarray(np.concatenate([pre, drive], 1), dtype)
        lay = STDP(snnx.IF(v_threshold=0.5, reset_mode="to_value"), 2, 1,
                   weight=jnp.array([[w0, 1.0]]),
                   a_plus=A_PLUS, a_minus=A_MINUS, tau_plus=TAU_PLUS, tau_minus=TAU_MINUS,
                   dt=DT, bound=Multiplicative(w_min, w_max))
        ys, final = snnx.run(lay, xs, lay.init_state((2,), dtype))
        assert float(ys.sum()) == 1.0
        if lag > 0:
            expected = w0 + A_PLUS * math.exp(-lag * DT / TAU_PLUS) * (w_max - w0)
        else:
            expected = w0 - A_MINUS * math.exp(lag * DT / TAU_MINUS) * (w0 - w_min)
        tol = 1e-7 if dtype == jnp.float32 else 1e-15
        assert abs(float(final.weight[0, 0]) - expected) < tol


def test_bounds_hold_under_heavy_potentiation(getkey):
    xs = (jax.random.uniform(getkey(), (300, 6)) < 0.5).astype(jnp.float32)
    for bound in (Additive(0.0, 0.5), Multiplicative(0.0, 0.5)):
        layer = STDP(snnx.LIF(tau=3.0, v_threshold=0.3), 6, 4, key=getkey(), init_scale=1.0,
                     a_plus=0.05, a_minus=0.0, bound=bound)
        _, final = snnx.run(layer, xs)
        w = np.asarray(final.weight)
        assert w.min() >= 0.0 and w.max() <= 0.5 + 1e-6
        assert w.max() > 0.45  # they did move to the upper bound


def test_stdp_bad_inputs(getkey):
    with pytest.raises(TypeError, match="`neuron`"):
        STDP(lambda x: x, 3, 2, key=getkey())
    with pytest.raises(ValueError, match="`key`"):
        STDP(snnx.LIF(tau=5.0), 3, 2)
    with pytest.raises(ValueError, match="`weight`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, weight=jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="`tau_plus`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, key=getkey(), tau_plus=0.0)
    with pytest.raises(ValueError, match="`a_minus`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, key=getkey(), a_minus=-1.0)
    with pytest.raises(TypeError, match="`bound`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, key=getkey(), bound="additive")
    with pytest.raises(TypeError, match="`pairing`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, key=getkey(), pairing="nearest")
    with pytest.raises(ValueError, match="`w_min`"):
        Multiplicative(1.0, 0.0)
    with pytest.raises(ValueError, match="`weight`"):
        STDP(snnx.LIF(tau=5.0), 3, 2, weight=jnp.ones((2, 3)), bound=Multiplicative(0.0, 0.5))
    layer = STDP(snnx.LIF(tau=5.0), 3, 2, key=getkey())
    with pytest.raises(ValueError, match="`in_features`"):
        layer.init_state((4,))
