"""Spike-train augmentations on dense `(T, channels)` arrays, jit-able and key-driven."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


def _check(x, name="x"):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must have shape (T, channels, ...), got {x.shape}.")
    return x


def _shift(x, s, axis):
    """Shift by integer `s` along `axis`, filling with zeros (nothing wraps around)."""
    n = x.shape[axis]
    idx = jnp.arange(n) - s
    valid = (idx >= 0) & (idx < n)
    out = jnp.take(x, jnp.clip(idx, 0, n - 1), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n
    return out * valid.reshape(shape).astype(x.dtype)


def time_shift(x: Array, max_shift: int, *, key: PRNGKeyArray) -> Array:
    """Shift a whole sample in time by a random integer in `[-max_shift, max_shift]`.

    Spikes shifted past either end are dropped (the sample keeps its length `T`).

    **Arguments:**

    - `x`: one sample `(T, channels, ...)`. `max_shift`: bound in steps. `key`: PRNG key.

    **Returns:**

    The shifted sample, same shape and dtype.
    """
    x = _check(x)
    s = jax.random.randint(key, (), -max_shift, max_shift + 1)
    return _shift(x, s, 0)


def channel_shift(x: Array, max_shift: int, *, key: PRNGKeyArray) -> Array:
    """Shift all channels together by a random integer in `[-max_shift, max_shift]`.

    For SHD this moves the whole cochleagram up or down in frequency (Cramer et al. 2020).
    """
    x = _check(x)
    s = jax.random.randint(key, (), -max_shift, max_shift + 1)
    return _shift(x, s, 1)


def channel_jitter(x: Array, sigma: float, *, key: PRNGKeyArray) -> Array:
    """Move each channel's train to a channel displaced by `round(N(0, sigma))`, independently.

    Trains displaced off either edge are dropped; trains landing on one channel add up.
    """
    x = _check(x)
    c = x.shape[1]
    target = jnp.arange(c) + jnp.round(sigma * jax.random.normal(key, (c,))).astype(jnp.int32)
    valid = (target >= 0) & (target < c)
    moved = jnp.zeros_like(x).at[:, jnp.clip(target, 0, c - 1)].add(
        x * valid.reshape((1, c) + (1,) * (x.ndim - 2)).astype(x.dtype)
    )
    return moved


def event_dropout(x: Array, p: float, *, key: PRNGKeyArray) -> Array:
    """Delete each spike independently with probability `p` (no rescaling: spikes stay 0/1)."""
    x = _check(x)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"`p` must be in [0, 1), got {p}.")
    keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x, 0).astype(x.dtype)
