"""Argument checks of `snnx.ode`: host-side when the value is concrete, traced otherwise."""

import numbers

import jax
import numpy as np


def concrete(x) -> np.ndarray | None:
    """`x` as a NumPy array, or None when it is traced (inside `jit`, `grad`, `vmap`)."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x)):
        return None
    try:
        return np.asarray(x)
    except (TypeError, ValueError):
        return None


def check_bound(name: str, value) -> int:
    """A static positive int (`max_spikes`, `max_steps`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int (a static bound), got {value!r}: pass e.g. "
            f"`{name}=64`."
        )
    return int(value)


def check_times(t0, t1) -> None:
    """`t0 < t1`, both finite, when both are concrete (the traced case is `eqx.error_if`)."""
    for name, value in (("t0", t0), ("t1", t1)):
        v = concrete(value)
        if v is not None and (v.shape != () or not np.issubdtype(v.dtype, np.number)):
            raise ValueError(f"`{name}` must be a scalar time, got {value!r}.")
        if v is not None and not np.isfinite(v):
            raise ValueError(
                f"`{name}` must be finite, got {value!r}: the event loop integrates up to "
                f"`t1`, so give a finite end time (spikes after it are not simulated)."
            )
    a, b = concrete(t0), concrete(t1)
    if a is not None and b is not None and not b > a:
        raise ValueError(f"`t1` must be greater than `t0`, got t0={t0}, t1={t1}.")


def check_finite(name: str, value, what: str) -> None:
    """Refuse NaN or inf in a concrete array; `what` says what the array is."""
    v = concrete(value)
    if v is not None and np.issubdtype(v.dtype, np.inexact) and not np.all(np.isfinite(v)):
        bad = int(np.sum(~np.isfinite(v)))
        raise ValueError(
            f"`{name}` ({what}) has {bad} non-finite value(s) (NaN or inf): the solver cannot "
            f"integrate them. Replace them (e.g. `jnp.nan_to_num`) or drop those entries."
        )


def check_input_times(times) -> None:
    """Input spike times may be `inf` (padding) but never NaN or `-inf`."""
    v = concrete(times)
    if v is not None and np.any(np.isnan(v) | (v == -np.inf)):
        raise ValueError(
            "`input_spikes` has NaN or -inf times: give finite times, and pad unused "
            "entries with `inf`."
        )


def check_channels(channels, times, n_in: int) -> None:
    """Every finite-time input spike names a channel in `[0, n_in)`."""
    c = concrete(channels)
    if c is None:
        return
    if not np.issubdtype(c.dtype, np.integer):
        raise TypeError(
            f"The channels of `input_spikes` must be integers, got dtype {c.dtype}: pass "
            f"`(times, channels.astype(int))`."
        )
    t = concrete(times)
    used = np.isfinite(t) if t is not None else np.ones(c.shape, bool)
    bad = used & ((c < 0) | (c >= n_in))
    if np.any(bad):
        raise ValueError(
            f"`input_spikes` names channel(s) {sorted(set(c[bad].tolist()))[:5]} but "
            f"`weights[0]` has {n_in} input columns (channels 0..{n_in - 1}): fix the "
            f"channels, or give `weights[0]` more columns. Padding entries need an `inf` time."
        )
