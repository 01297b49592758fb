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

from . import _delays as dl
from ._closed import Consts, adjoint_back, aligned_max, beta, crossing, kernels, vi_at


class Spec(NamedTuple):
    """The static description of one layer run."""

    n_steps: int
    dt: float
    capacity: int
    first: bool  # the input is a dense grid-aligned (T, M) array, not spike buffers
    recurrent: bool
    spiking: bool  # a CuBaLIF (True) or a non-spiking CuBaLI readout
    readout: bool  # return the membrane after every step
    delayed: bool  # per-synapse delays on the input projection (`_delays.py`)
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
    - `lost`: input arrivals (spike x synapse) that a synaptic delay put past the trial
        end `T * dt` (0 without delays).
    - `clamped`: negative (or NaN) delays on the input projection, used as 0 (no gradient).
    """

    times: Array
    steps: Array
    counts: Array
    overflow: Array
    late: Array
    v: Array | None
    lost: Array
    clamped: Array


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
    if spec.delayed:  # one column per in-step event: w for each arrival slot, then wrec
        cols = [w] if spec.first else [w, w]
        return jnp.concatenate(cols + ([wrec] if spec.recurrent else []), axis=1)
    if spec.first:
        return wrec if spec.recurrent else None
    return jnp.concatenate([w, wrec], axis=1) if spec.recurrent else w


def _drive(spec, w, b, k, inp):
    if spec.first and not spec.delayed:
        return k.c[None, :] * (inp @ w.T + b[None, :])
    return jnp.broadcast_to(k.c * b, (spec.n_steps,) + b.shape)


def _delayed_events(spec, inp, d, q_r, p, t, dtype, backward=False):
    """A delayed layer's in-step input events of step `t`: `(amp, off)` `(N, K)`, the new
    pointers, and what the adjoint needs to route the arrival-time gradient."""
    if spec.first:
        q, r = q_r
        x_t, src = dl.input_amplitudes(inp, q, t)
        return x_t.astype(dtype), r.astype(dtype), p, src
    first, second, p = dl.hidden_events(spec, inp, d, p, t, backward=backward)
    amp = jnp.concatenate([first[0], second[0]], axis=1).astype(dtype)
    off = jnp.concatenate([first[1], second[1]], axis=1).astype(dtype)
    return amp, off, p, (first, second)


def forward(spec: Spec, w, b, wrec, d, k: Consts, inp):
    """Run one layer; returns `(LayerOut, (offsets, i_at_spike, final pointers))` (the
    residuals)."""
    n = b.shape[0]
    cap, dt = spec.capacity, spec.dt
    dtype = jnp.result_type(w.dtype, b.dtype, jnp.asarray(k.th).dtype)
    wm = _masked_weights(spec, w, wrec)
    drive = _drive(spec, w, b, k, inp).astype(dtype)
    rows = jnp.arange(n)
    m_in = 0 if spec.first else inp[1].shape[0]
    if spec.delayed:
        d_eff = dl.effective(d).astype(dtype)
        q_r = dl.input_split(spec, d_eff) if spec.first else None
        ptr0 = jnp.zeros(d.shape, jnp.int32)
    else:
        ptr0 = jnp.zeros((m_in,), jnp.int32)

    def step(c, xs):
        t, d_t = xs
        v, i, count, b_off, b_step, b_ist, ptr, prev_e, prev_d, n_over, n_late = c
        i0 = i + d_t
        amp, off = None, None
        if spec.delayed:
            amp, off, ptr, _ = _delayed_events(spec, inp, d_eff, q_r, ptr, t, dtype)
        elif not spec.first:
            valid, off_in, _ = _events(spec, inp, ptr, t)
            ptr = ptr + valid.astype(jnp.int32)
            amp, off = valid.astype(dtype), off_in.astype(dtype)
        if spec.recurrent and spec.delayed:
            amp = jnp.concatenate([amp, jnp.broadcast_to(prev_e, (n, n))], axis=1)
            off = jnp.concatenate([off, jnp.broadcast_to(prev_d, (n, n))], axis=1)
        elif spec.recurrent:
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
        ptr0, zeros, zeros, jnp.int32(0), jnp.int32(0),
    )
    c, vs = jax.lax.scan(step, init, (jnp.arange(spec.n_steps, dtype=jnp.int32), drive))
    _, _, count, b_off, b_step, b_ist, ptr, _, _, n_over, n_late = c
    times = jnp.where(b_step >= 0, b_step * dt + b_off, spec.n_steps * dt)
    lost = clamped = jnp.int32(0)
    if spec.delayed:
        lost = dl.input_lost(inp, q_r[0]) if spec.first else dl.hidden_lost(inp, ptr)
        clamped = jnp.sum(~(d >= 0), dtype=jnp.int32)
    out = LayerOut(times, b_step, count.astype(dtype), n_over, n_late, vs, lost, clamped)
    return out, (b_off, b_ist, ptr if spec.delayed and not spec.first else None)


def backward(spec: Spec, w, b, wrec, d, k: Consts, inp, steps, res, ct: LayerOut):
    """The adjoint of `forward`: cotangents of `(w, b, wrec, d, inp)`."""
    b_off, b_ist, p_end = res
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
    if spec.delayed:
        d_eff = dl.effective(d).astype(dtype)
        q_r = dl.input_split(spec, d_eff) if spec.first else None
        m_d = d.shape[1]  # events per synapse slot block
        n_slots = 1 if spec.first else 2

    def step(c, xs):
        t, gv_t = xs
        lv, li, p_own, p_rec, g_rec, p_in, g_in, g_wm, g_d = c
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
            if spec.delayed:
                amp_d, off_d, p_in, info = _delayed_events(spec, inp, d_eff, q_r, p_in, t,
                                                           dtype, backward=True)
                amps.append(amp_d)
                offs.append(off_d)
            elif not spec.first:
                v_in, off_in, s_in = _events(spec, inp, p_in, t)
                amps.append(v_in.astype(dtype))
                offs.append(off_in)
            if spec.recurrent:
                v_rec, off_rec, _ = _events(spec, own, p_rec, t - 1, offsets=True)
                a_rec, o_rec = v_rec.astype(dtype), off_rec
                if spec.delayed:
                    a_rec, o_rec = (jnp.broadcast_to(a, (n, n)) for a in (a_rec, o_rec))
                amps.append(a_rec)
                offs.append(o_rec)
            amp, off = jnp.concatenate(amps, axis=-1), jnp.concatenate(offs, axis=-1)
            amp = amp if spec.delayed else amp[None, :]
            off = (off if spec.delayed else off[None, :]).astype(dtype)
            pre = has[:, None] & (off < u[:, None])
            anchor = jnp.where(pre, u[:, None], dt)
            lva = jnp.where(pre, lvm[:, None], lv[:, None])
            lia = jnp.where(pre, lip[:, None], li[:, None])
            h = anchor - off
            kc = jax.tree.map(lambda a: a[:, None], k)
            a_h, b_h, kap_h = kernels(h, kc)
            lvd = b_h * lva
            lid = a_h * lia + kc.r * kap_h * lva
            jump = kc.c * amp
            g_wm = g_wm + jump * lid
            # dL/d(arrival time) of every event, per synapse
            g_syn = wm * jump * (lid / kc.ts - kc.r * lvd / kc.tm)
            n_ev = m_d * n_slots if spec.delayed else m_in
            if spec.delayed and spec.first:
                g_d = g_d + g_syn[:, :m_d]
                src = info
                g_x = jnp.where(src >= 0, kc.c * wm[:, :m_d] * lid[:, :m_d], 0.0)
                g_in = g_in.at[jnp.clip(src, 0, spec.n_steps - 1),
                               jnp.arange(m_d)[None, :]].add(g_x)
            elif spec.delayed:
                cols = jnp.arange(m_d)[None, :]
                for j, (valid, _, s_in) in enumerate(info):
                    g_j = jnp.where(valid, g_syn[:, j * m_d:(j + 1) * m_d], 0.0)
                    g_d = g_d + g_j
                    g_in = g_in.at[jnp.broadcast_to(cols, s_in.shape), s_in].add(g_j)
            else:
                g_time = jnp.sum(g_syn[:, :m_in], axis=0)
                if not spec.first:
                    g_in = g_in.at[jnp.arange(m_in), s_in].add(jnp.where(v_in, g_time, 0.0))
                    p_in = p_in - v_in.astype(jnp.int32)
            if spec.recurrent:
                g_rec = jnp.where(v_rec, jnp.sum(g_syn[:, n_ev:], axis=0), 0.0)
                p_rec = p_rec - v_rec.astype(jnp.int32)
        return (lv0, li0, p_own, p_rec, g_rec, p_in, g_in, g_wm, g_d), li0

    zeros = jnp.zeros((n,), dtype)
    p0 = n_stored - 1
    g_wm0 = jnp.zeros((n, 0) if wm is None else wm.shape, dtype)
    # The recurrent pointer reads spikes one step back: the last step's spikes reach no one.
    p_rec0 = jnp.sum((steps >= 0) & (steps < spec.n_steps - 1), axis=1).astype(jnp.int32) - 1
    if spec.delayed and spec.first:
        p_in0, g_in0 = jnp.zeros((0,), jnp.int32), jnp.zeros(inp.shape, dtype)
    elif spec.delayed:
        p_in0, g_in0 = p_end - 1, jnp.zeros((m_in, cin), dtype)
    elif spec.first:
        p_in0, g_in0 = jnp.zeros((0,), jnp.int32), jnp.zeros((m_in, cin), dtype)
    else:
        p_in0 = jnp.sum(inp[1] >= 0, axis=1).astype(jnp.int32) - 1
        g_in0 = jnp.zeros((m_in, cin), dtype)
    g_d0 = jnp.zeros(d.shape if spec.delayed else (0, 0), dtype)
    init = (zeros, zeros, p0, p_rec0, zeros, p_in0, g_in0, g_wm0, g_d0)
    ts = jnp.arange(spec.n_steps, dtype=jnp.int32)
    gv = g_v if spec.readout else jnp.zeros((spec.n_steps, 0), dtype)
    c, li0s = jax.lax.scan(step, init, (ts, gv), reverse=True)
    g_wm, g_in, g_d = c[7], c[6], c[8]
    g_drive = li0s * k.c[None, :]  # dL/d(W x + b) at every step
    # A silent neuron: its count's cotangent lifts its incoming weights (`count_penalty`),
    # in proportion to each input's total amplitude in the sample.
    lift = jnp.where(n_stored == 0, g_cnt, 0.0) * k.r * k.c * k.ts / (k.th - k.vr)
    a_in = jnp.sum(inp, axis=0) if spec.first else jnp.sum(inp[1] >= 0, axis=1).astype(dtype)
    g_b = jnp.sum(g_drive, axis=0) + lift * spec.n_steps
    g_d = jnp.where(d >= 0, g_d, 0.0) if spec.delayed else None
    if spec.delayed:
        n_ev = m_d * n_slots
        g_w = sum(g_wm[:, j * m_d:(j + 1) * m_d] for j in range(n_slots))
        g_wrec = g_wm[:, n_ev:] if spec.recurrent else None
        g_inp = g_in if spec.first else (g_in, None)
    elif spec.first:
        g_w = g_drive.T @ inp
        g_inp = g_drive @ w
        g_wrec = g_wm if spec.recurrent else None
    else:
        g_w = g_wm[:, :m_in]
        g_wrec = g_wm[:, m_in:] if spec.recurrent else None
        g_inp = (g_in, None)
    g_w = g_w + lift[:, None] * a_in[None, :]
    if spec.recurrent:
        g_wrec = g_wrec + lift[:, None] * n_stored.astype(dtype)[None, :]
    return g_w, g_b, g_wrec, g_d, g_inp


def _zero_consts(k):
    return jax.tree.map(jnp.zeros_like, k)


def _apply_fwd(spec, w, b, wrec, d, k, inp):
    out, res = forward(spec, w, b, wrec, d, k, inp)
    return out, (w, b, wrec, d, k, inp, out.steps, res)


def _apply_bwd(spec, saved, ct):
    w, b, wrec, d, k, inp, steps, res = saved
    g_w, g_b, g_wrec, g_d, g_inp = backward(spec, w, b, wrec, d, k, inp, steps, res, ct)
    if g_d is not None:
        g_d = g_d.astype(d.dtype)
    if spec.first and spec.delayed:
        g_inp = g_inp.astype(inp.dtype)
    return (g_w.astype(w.dtype), g_b.astype(b.dtype), g_wrec, g_d, _zero_consts(k), g_inp)


def _impl(spec, w, b, wrec, d, k, inp):
    return forward(spec, w, b, wrec, d, k, inp)[0]


apply_layer = jax.custom_vjp(_impl, nondiff_argnums=(0,))
apply_layer.defvjp(_apply_fwd, _apply_bwd)
