"""Closed-form pieces of the current-based LIF system between spikes.

With $u$ the time since a step started, $\\alpha(h) = e^{-h/\\tau_s}$, $\\beta(h) =
e^{-h/\\tau_m}$ and $\\kappa(h) = \\tau_s(\\alpha(h) - \\beta(h)) / (\\tau_s - \\tau_m)$, the
membrane response to a synaptic current $i_0$ is $r\\kappa(h) i_0$ (the kernel of
`snnx.neurons.cuba._cuba_step`). The forward state map over $h$ is
$\\Phi(h) = [[\\beta, r\\kappa], [0, \\alpha]]$ on $(v - v_\\text{leak}, i)$; the adjoint
$(\\lambda_V, \\lambda_I)$ goes back in time with its transpose.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array


class Consts(NamedTuple):
    """One layer's neuron constants, each `(N,)`: no gradient flows to them."""

    ts: Array  # synaptic time constant
    tm: Array  # membrane time constant
    r: Array
    vl: Array  # leak (rest) potential
    th: Array  # threshold
    vr: Array  # reset potential
    c: Array  # synaptic current jump per unit input weight: w_in / tau_syn
    # tau_syn / (tau_syn - tau_mem) where every neuron's time constants are well apart (the
    # plain closed form, two exponentials); None selects the form that is exact when they
    # are close or equal (`kernels`).
    q: Array | None = None


def alpha(h, k: Consts):
    return jnp.exp(-h / k.ts)


def beta(h, k: Consts):
    return jnp.exp(-h / k.tm)


def _log1m_ratio(x):
    """$\\log(1 - x) / (-x)$ for $x < 1$, 1 at $x = 0$."""
    safe = jnp.where(x == 0, 0.5, x)
    return jnp.where(x == 0, 1.0, jnp.log1p(-safe) / -safe)


def kernels(h, k: Consts):
    """$(\\alpha(h), \\beta(h), \\kappa(h))$ from two exponentials.

    With `k.q` given: $\\kappa = q(\\alpha - \\beta)$, $q = \\tau_s/(\\tau_s - \\tau_m)$. Without:
    $\\kappa = (h/\\tau_m)\\beta(h)(e^z - 1)/z$ with $z = h(\\tau_s - \\tau_m)/(\\tau_s\\tau_m)$ and
    $\\alpha = \\beta e^z$ (a series for small $z$): the same value, without the cancellation
    of $\\alpha - \\beta$ when the time constants are close, and the limit
    $(h/\\tau) e^{-h/\\tau}$ when they are equal (about 30% more work per evaluation).
    """
    b = beta(h, k)
    if k.q is not None:
        a = alpha(h, k)
        return a, b, k.q * (a - b)
    z = h * (k.ts - k.tm) / (k.ts * k.tm)
    ez = jnp.exp(z)
    small = jnp.abs(z) < 1e-2  # (e^z - 1)/z by its series there (error < z^6/5040)
    safe = jnp.where(small, 1.0, z)
    series = 1.0 + z * (1 / 2 + z * (1 / 6 + z * (1 / 24 + z * (1 / 120 + z / 720))))
    ratio = jnp.where(small, series, (ez - 1.0) / safe)
    return b * ez, b, (h / k.tm) * b * ratio


def adjoint_back(lv, li, h, k: Consts):
    """The adjoint `h` earlier: $\\Phi(h)^T (\\lambda_V, \\lambda_I)$."""
    a, b, kap = kernels(h, k)
    return b * lv, a * li + k.r * kap * lv


def _col(a):
    return a[:, None]


def _kc(k: Consts) -> Consts:
    return jax.tree.map(_col, k)


def vi_at(u, v0, i0, k: Consts, wm, amp, off):
    """Membrane and current at time `u` (per neuron, `(N,)`) into a step, without a reset.

    `v0`, `i0`: the state just after the step's aligned inputs (at `u = 0`). `wm` `(N, M)`,
    `amp`, `off` `(M,)` (one event per presynaptic neuron) or `(N, M)` (one per synapse, as
    with synaptic delays): in-step input events (weight times amplitude, arriving at offset
    `off`); `wm is None` for none.
    """
    a, b, kap = kernels(u, k)
    v = k.vl + b * (v0 - k.vl) + k.r * kap * i0
    i = a * i0
    if wm is not None:
        amp = amp if amp.ndim == 2 else amp[None, :]
        off = off if off.ndim == 2 else off[None, :]
        h = _col(u) - off
        on = h > 0
        hh = jnp.where(on, h, 0.0)
        kc = _kc(k)
        jump = jnp.where(on, _col(k.c) * wm * amp, 0.0)
        a, _, kap = kernels(hh, kc)
        v = v + jnp.sum(jump * kc.r * kap, axis=1)
        i = i + jnp.sum(jump * a, axis=1)
    return v, i


def aligned_max(v0, i0, dt, k: Consts):
    """The largest membrane value over `[0, dt]` of a step without in-step inputs, and where.

    $\\dot v \\propto v_\\text{leak} - v + r i$ has at most one zero (a maximum when $i_0 > 0$),
    at $u^* = \\tau_m(\\psi(x_1) - \\delta\\, \\psi(\\delta x_1))$ with
    $\\delta = (v_0 - v_\\text{leak})/(r i_0)$, $x_1 = (\\tau_s - \\tau_m)/\\tau_s$ and
    $\\psi(x) = \\log(1 - x)/(-x)$:
    the closed form for distinct time constants, rewritten so that it stays exact when they
    are equal ($u^* = \\tau(1 - \\delta)$).
    """
    ri = k.r * i0
    delta = (v0 - k.vl) / jnp.where(ri == 0, 1.0, ri)
    x1 = (k.ts - k.tm) / k.ts
    x2 = delta * x1
    ok = (ri != 0) & (x2 < 1)
    x2 = jnp.where(ok, x2, 0.0)
    u = k.tm * (_log1m_ratio(x1) - delta * _log1m_ratio(x2))
    u = jnp.where(ok, jnp.clip(u, 0.0, dt), dt)
    _, b, kap = kernels(u, k)
    v_u = k.vl + b * (v0 - k.vl) + k.r * kap * i0
    return v_u, u


def crossing(lo, hi, v0, i0, k: Consts, wm, amp, off, n_bisect: int, n_newton: int):
    """The time in `[lo, hi]` where the membrane reaches threshold (`v(lo) < th <= v(hi)`):
    bisection, then safeguarded Newton steps on the closed form (quadratic convergence to
    the float's precision)."""

    def g(u):
        v, i = vi_at(u, v0, i0, k, wm, amp, off)
        return v - k.th, (k.vl - v + k.r * i) / k.tm

    def bis(_, c):
        lo_, hi_ = c
        mid = 0.5 * (lo_ + hi_)
        up = g(mid)[0] >= 0
        return jnp.where(up, lo_, mid), jnp.where(up, mid, hi_)

    lo, hi = jax.lax.fori_loop(0, n_bisect, bis, (lo, hi))

    def newton(_, c):
        u, lo_, hi_ = c
        f, df = g(u)
        up = f >= 0
        lo_, hi_ = jnp.where(up, lo_, u), jnp.where(up, u, hi_)
        step = u - f / jnp.where(df > 0, df, 1.0)
        u = jnp.where((df > 0) & (step > lo_) & (step < hi_), step, 0.5 * (lo_ + hi_))
        return u, lo_, hi_

    u, _, _ = jax.lax.fori_loop(0, n_newton, newton, (0.5 * (lo + hi), lo, hi))
    return u
