"""One EventProp layer: the exact forward pass on a time grid and its adjoint, as a
`jax.custom_vjp`.

Spikes are the interface between layers: a layer's output is a per-neuron buffer of spike
times (`(N, capacity)`, padded with the end time `T * dt`) plus the grid step of every
spike (`-1` for an empty slot). The next layer reads them as in-step input events, so
`jax.grad` through a stack of layers chains the layers' adjoints: the cotangent of a
layer's spike times is the EventProp jump term that its downstream layers contribute.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._closed import Consts, adjoint_back, aligned_max, alpha, beta, crossing, kappa, vi_at


class Spec(NamedTuple):
    """The static description of one layer run."""

    n_steps: int
    dt: float
    capacity: int
    first: bool  # the input is a dense grid-aligned (T, M) array, not spike buffers
    recurrent: bool
    spiking: bool  # a CuBaLIF (True) or a non-spiking CuBaLI readout
    readout: bool  # return the membrane after every step
    n_bisect: int
    n_newton: int


class LayerOut(NamedTuple):
    """What one layer produces for one sample.

    - `times`: `(N, capacity)` spike times in order, padded with `T * dt`.
    - `steps`: `(N, capacity)` the grid step `k` of each spike (`k dt <= t < (k+1) dt`),
        `-1` for an empty slot.
    - `counts`: `(N,)` spikes per neuron (all of them, stored or not), as floats.
    - `overflow`: spikes past the capacity (they reset the neuron but are neither stored
        nor transmitted, and get no gradient).
    - `late`: spikes delayed to the start of the next step (a second threshold crossing
        within one `dt`, which the grid cannot resolve).
    - `v`: `(T, N)` the membrane at the end of every step (readout layers), else None.
    """

    times: Array
    steps: Array
    counts: Array
    overflow: Array
    late: Array
    v: Array | None


def _events(spec, inp, ptr, k, *, offsets=False):
    """Presynaptic events of step `k` read at the pointers `ptr` (one per presyn neuron):
    `inp` is `(times, steps)` (or `(offsets, steps)` with `offsets=True`)."""
    times, steps = inp
    cap = steps.shape[1]
    slot = jnp.clip(ptr, 0, cap - 1)
    rows = jnp.arange(steps.shape[0])
    valid = (ptr >= 0) & (ptr < cap) & (steps[rows, slot] == k)
    off = times[rows, slot] if offsets else times[rows, slot] - k * spec.dt
    off = jnp.where(valid, off, 0.0)
    return valid, jnp.clip(off, 0.0, spec.dt), slot


def _masked_weights(spec, w, wrec):
    if spec.first:
        return wrec if spec.recurrent else None
    return jnp.concatenate([w, wrec], axis=1) if spec.recurrent else w


def _drive(spec, w, b, k, inp):
    if spec.first:
        return k.c[None, :] * (inp @ w.T + b[None, :])
    return jnp.broadcast_to(k.c * b, (spec.n_steps,) + b.shape)


def forward(spec: Spec, w, b, wrec, k: Consts, inp):
    """Run one layer; returns `(LayerOut, (offsets, i_at_spike))` (the residuals)."""
    n = b.shape[0]
    cap, dt = spec.capacity, spec.dt
    dtype = jnp.result_type(w.dtype, b.dtype, jnp.asarray(k.th).dtype)
    wm = _masked_weights(spec, w, wrec)
    drive = _drive(spec, w, b, k, inp).astype(dtype)
    rows = jnp.arange(n)
    m_in = 0 if spec.first else inp[1].shape[0]

    def step(c, xs):
        t, d_t = xs
        v, i, count, b_off, b_step, b_ist, ptr, prev_e, prev_d, n_over, n_late = c
        i0 = i + d_t
        amp, off = None, None
        if not spec.first:
            valid, off_in, _ = _events(spec, inp, ptr, t)
            ptr = ptr + valid.astype(jnp.int32)
            amp, off = valid.astype(dtype), off_in.astype(dtype)
        if spec.recurrent:
            amp = prev_e if amp is None else jnp.concatenate([amp, prev_e])
            off = prev_d if off is None else jnp.concatenate([off, prev_d])
        v_dt, i_dt = vi_at(jnp.full((n,), dt, dtype), v, i0, k, wm, amp, off)
        if spec.spiking:
            late = v >= k.th
            if wm is None:
                v_hi, u_hi = aligned_max(v, i0, dt, k)
            else:
                v_hi, u_hi = v_dt, jnp.full((n,), dt, dtype)
            fire = late | (v_hi >= k.th)
            u = crossing(jnp.zeros((n,), dtype), u_hi, v, i0, k, wm, amp, off,
                         spec.n_bisect, spec.n_newton)
            u = jnp.where(late, 0.0, jnp.where(fire, u, dt))
            _, i_star = vi_at(u, v, i0, k, wm, amp, off)
            v_end = jnp.where(fire, v_dt - (k.th - k.vr) * beta(dt - u, k), v_dt)
            stored = fire & (count < cap)
            slot = jnp.clip(count, 0, cap - 1)
            b_off = b_off.at[rows, slot].set(jnp.where(stored, u, b_off[rows, slot]))
            b_step = b_step.at[rows, slot].set(jnp.where(stored, t, b_step[rows, slot]))
            b_ist = b_ist.at[rows, slot].set(jnp.where(stored, i_star, b_ist[rows, slot]))
            count = count + fire.astype(jnp.int32)
            n_over = n_over + jnp.sum(fire & ~stored, dtype=jnp.int32)
            n_late = n_late + jnp.sum(late, dtype=jnp.int32)
            prev_e, prev_d = stored.astype(dtype), u
        else:
            v_end = v_dt
        c = (v_end, i_dt, count, b_off, b_step, b_ist, ptr, prev_e, prev_d, n_over, n_late)
        return c, (v_end if spec.readout else None)

    zeros = jnp.zeros((n,), dtype)
    init = (
        jnp.broadcast_to(k.vl, (n,)).astype(dtype), zeros, jnp.zeros((n,), jnp.int32),
        jnp.zeros((n, cap), dtype), jnp.full((n, cap), -1, jnp.int32), jnp.zeros((n, cap), dtype),
        jnp.zeros((m_in,), jnp.int32), zeros, zeros, jnp.int32(0), jnp.int32(0),
    )
    c, vs = jax.lax.scan(step, init, (jnp.arange(spec.n_steps, dtype=jnp.int32), drive))
    _, _, count, b_off, b_step, b_ist, _, _, _, n_over, n_late = c
    times = jnp.where(b_step >= 0, b_step * dt + b_off, spec.n_steps * dt)
    out = LayerOut(times, b_step, count.astype(dtype), n_over, n_late, vs)
    return out, (b_off, b_ist)


def backward(spec: Spec, w, b, wrec, k: Consts, inp, steps, res, ct: LayerOut):
    """The adjoint of `forward`: cotangents of `(w, b, wrec, inp)`."""
    b_off, b_ist = res
    n, cap, dt = b.shape[0], spec.capacity, spec.dt
    dtype = b_off.dtype
    wm = _masked_weights(spec, w, wrec)
    rows = jnp.arange(n)
    n_stored = jnp.sum(steps >= 0, axis=1).astype(jnp.int32)
    g_t = jnp.zeros_like(b_off) if ct.times is None else ct.times.astype(dtype)
    g_cnt = jnp.zeros((n,), dtype) if ct.counts is None else ct.counts.astype(dtype)
    g_v = None
    if spec.readout:
        g_v = (jnp.zeros((spec.n_steps, n), dtype) if ct.v is None else ct.v.astype(dtype))
    m_in = 0 if spec.first else inp[1].shape[0]
    cin = 1 if spec.first else inp[1].shape[1]
    own = (b_off, steps)

    def step(c, xs):
        t, gv_t = xs
        lv, li, p_own, p_rec, g_rec, p_in, g_in, g_wm = c
        if spec.readout:
            lv = lv + gv_t
        slot = jnp.clip(p_own, 0, cap - 1)
        has = (p_own >= 0) & (steps[rows, slot] == t)
        u = jnp.where(has, b_off[rows, slot], dt)
        i_star = b_ist[rows, slot]
        big_g = jnp.where(has, g_t[rows, slot] + g_rec, 0.0)
        lvp, lip = adjoint_back(lv, li, dt - u, k)
        vd_minus = (k.vl - k.th + k.r * i_star) / k.tm
        vd_plus = (k.vl - k.vr + k.r * i_star) / k.tm
        safe = jnp.where(has, vd_minus, 1.0)
        lvm = (lvp * vd_plus - big_g) / safe + g_cnt / (k.th - k.vr)
        lvm = jnp.where(has, lvm, lvp)
        lv0, li0 = adjoint_back(lvm, lip, u, k)  # u = dt without a spike: all the way back
        p_own = p_own - has.astype(jnp.int32)
        if wm is not None:
            amps, offs = [], []
            if not spec.first:
                v_in, off_in, s_in = _events(spec, inp, p_in, t)
                amps.append(v_in.astype(dtype))
                offs.append(off_in)
            if spec.recurrent:
                v_rec, off_rec, _ = _events(spec, own, p_rec, t - 1, offsets=True)
                amps.append(v_rec.astype(dtype))
                offs.append(off_rec)
            amp, off = jnp.concatenate(amps), jnp.concatenate(offs).astype(dtype)
            pre = has[:, None] & (off[None, :] < u[:, None])
            anchor = jnp.where(pre, u[:, None], dt)
            lva = jnp.where(pre, lvm[:, None], lv[:, None])
            lia = jnp.where(pre, lip[:, None], li[:, None])
            h = anchor - off[None, :]
            kc = Consts(*(a[:, None] for a in k))
            lvd = beta(h, kc) * lva
            lid = alpha(h, kc) * lia + kc.r * kappa(h, kc) * lva
            jump = kc.c * amp[None, :]
            g_wm = g_wm + jump * lid
            g_time = jnp.sum(wm * jump * (lid / kc.ts - kc.r * lvd / kc.tm), axis=0)
            if not spec.first:
                g_in = g_in.at[jnp.arange(m_in), s_in].add(jnp.where(v_in, g_time[:m_in], 0.0))
                p_in = p_in - v_in.astype(jnp.int32)
            if spec.recurrent:
                g_rec = jnp.where(v_rec, g_time[m_in:], 0.0)
                p_rec = p_rec - v_rec.astype(jnp.int32)
        return (lv0, li0, p_own, p_rec, g_rec, p_in, g_in, g_wm), li0

    zeros = jnp.zeros((n,), dtype)
    p0 = n_stored - 1
    g_wm0 = jnp.zeros((n, 0) if wm is None else wm.shape, dtype)
    # The recurrent pointer reads spikes one step back: the last step's spikes reach no one.
    p_rec0 = jnp.sum((steps >= 0) & (steps < spec.n_steps - 1), axis=1).astype(jnp.int32) - 1
    init = (zeros, zeros, p0, p_rec0, zeros,
            (jnp.sum(inp[1] >= 0, axis=1).astype(jnp.int32) - 1) if not spec.first
            else jnp.zeros((0,), jnp.int32),
            jnp.zeros((m_in, cin), dtype), g_wm0)
    ts = jnp.arange(spec.n_steps, dtype=jnp.int32)
    gv = g_v if spec.readout else jnp.zeros((spec.n_steps, 0), dtype)
    c, li0s = jax.lax.scan(step, init, (ts, gv), reverse=True)
    g_wm, g_in = c[7], c[6]
    g_drive = li0s * k.c[None, :]  # dL/d(W x + b) at every step
    # A silent neuron: its count's cotangent lifts its incoming weights (see `_lift`).
    lift = jnp.where(n_stored == 0, g_cnt, 0.0) * k.r * k.c * k.ts / (k.th - k.vr)
    g_b = jnp.sum(g_drive, axis=0) + lift * spec.n_steps
    if spec.first:
        g_w = g_drive.T @ inp + lift[:, None] * jnp.sum(inp, axis=0)[None, :]
        g_inp = g_drive @ w
        g_wrec = g_wm if spec.recurrent else None
    else:
        pre = jnp.sum(inp[1] >= 0, axis=1).astype(dtype)
        g_w = g_wm[:, :m_in] + lift[:, None] * pre[None, :]
        g_wrec = g_wm[:, m_in:] if spec.recurrent else None
        g_inp = (g_in, None)
    if spec.recurrent:
        g_wrec = g_wrec + lift[:, None] * n_stored.astype(dtype)[None, :]
    return g_w, g_b, g_wrec, g_inp


def _zero_consts(k):
    return Consts(*(jnp.zeros_like(a) for a in k))


def _apply_fwd(spec, w, b, wrec, k, inp):
    out, res = forward(spec, w, b, wrec, k, inp)
    return out, (w, b, wrec, k, inp, out.steps, res)


def _apply_bwd(spec, saved, ct):
    w, b, wrec, k, inp, steps, res = saved
    g_w, g_b, g_wrec, g_inp = backward(spec, w, b, wrec, k, inp, steps, res, ct)
    return g_w.astype(w.dtype), g_b.astype(b.dtype), g_wrec, _zero_consts(k), g_inp


def _impl(spec, w, b, wrec, k, inp):
    return forward(spec, w, b, wrec, k, inp)[0]


apply_layer = jax.custom_vjp(_impl, nondiff_argnums=(0,))
apply_layer.defvjp(_apply_fwd, _apply_bwd)
