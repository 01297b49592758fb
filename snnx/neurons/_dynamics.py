"""Discretisation and reset shared by the built-in neurons."""

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

ResetMode = Literal["subtract", "to_value", "none"]
Method = Literal["exact", "euler"]
RESET_MODES = ("subtract", "to_value", "none")
METHODS = ("exact", "euler")


def decay_and_gain(tau: Array, dt: float, method: str) -> tuple[Array, Array]:
    """Per-step decay factor and input gain of `tau dv/dt = -v + I` over `dt`.

    `exact` holds the input constant over the step (zero-order hold): the decay is
    $e^{-dt/\\tau}$ and the input enters with weight $1 - e^{-dt/\\tau}$. `euler` is the
    forward-Euler step $1 - dt/\\tau$, $dt/\\tau$ that snnTorch/Norse-style exporters assume.
    """
    if method == "exact":
        gain = -jnp.expm1(-dt / tau)
        return 1.0 - gain, gain
    return 1.0 - dt / tau, dt / tau


def apply_reset(
    v: Array, spikes: Array, mode: str, threshold: Array, v_reset: Array, detach: bool
) -> Array:
    s = jax.lax.stop_gradient(spikes) if detach else spikes
    if mode == "subtract":
        return v - s * (threshold - v_reset)
    if mode == "to_value":
        return v + s * (v_reset - v)
    return v


def reset_membrane(v: Array, spiked, mode: str, threshold: Array, v_reset: Array) -> Array:
    """The continuous-time reset of a membrane where the boolean `spiked` is True."""
    return apply_reset(v, jnp.asarray(spiked, v.dtype), mode, threshold, v_reset, False)


def beta_to_tau(cls: str, beta: ArrayLike, dt: float) -> np.ndarray:
    """The time constant of a per-step decay `beta` in (0, 1): `-dt / ln(beta)`."""
    b = np.asarray(beta, dtype=np.float64)
    if not np.all((b > 0) & (b < 1)):
        raise ValueError(
            f"{cls}.from_beta `beta` must lie strictly between 0 and 1 (a decay per step), "
            f"got {beta}; use `snnx.IF` for beta = 1."
        )
    return -dt / np.log(b)


def delayed_reset(v_prev: Array, threshold: Array, v_reset: Array) -> Array:
    """snnTorch's `reset_delay=True` (its default): the spike of the previous step is
    subtracted now, after the decay. The state holds the unreset membrane, so that spike
    is `v_prev > threshold` again (detached, as snnTorch's `mem_reset` is)."""
    fired = jax.lax.stop_gradient((v_prev > threshold).astype(v_prev.dtype))
    return fired * (threshold - v_reset)


def check_reset_delay(cls: str, reset_delay: bool, reset_mode: str, surrogate) -> bool:
    """`reset_delay` reproduces snnTorch's subtractive reset of deterministic spikes."""
    from ..spikes import EscapeNoise

    reset_delay = bool(reset_delay)
    if reset_delay and reset_mode != "subtract":
        raise ValueError(
            f"{cls} `reset_delay=True` reproduces snnTorch's delayed subtractive reset and "
            f"needs `reset_mode='subtract'`, got {reset_mode!r}."
        )
    if reset_delay and isinstance(surrogate, EscapeNoise):
        raise ValueError(
            f"{cls} `reset_delay=True` recomputes last step's spike from the membrane, which "
            f"a stochastic `surrogate` (EscapeNoise) cannot; use a deterministic surrogate."
        )
    return reset_delay


def from_beta_arguments(cls: str, fixed: dict, kwargs: dict) -> dict:
    """The constructor arguments of a `from_beta`: `fixed` (set by the decays) plus the
    user's `kwargs`, refusing a keyword that would override a fixed one."""
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        raise TypeError(
            f"{cls}.from_beta sets {clash} from the decay factors; construct `{cls}(...)` "
            f"directly to choose {'it' if len(clash) == 1 else 'them'}."
        )
    return {**fixed, **kwargs}
