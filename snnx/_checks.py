"""Private checks shared by every module: time steps, shapes, choices, numbers.

Each check raises an error that names the argument (in backticks) and says what would be
accepted, so that every public entry point reports bad input the same way.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


def check_dt(cls: str, dt: Any) -> float:
    """`dt` as a Python float, > 0 and finite."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise TypeError(f"{cls} `dt` must be a positive number, got {dt!r}.") from None
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"{cls} `dt` must be a finite number > 0, got {dt}.")
    return dt


def shape_tuple(shape: Any) -> tuple[int, ...]:
    """A per-step shape given as an int or a sequence of ints, as a tuple."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"`shape` must be an int or a tuple of ints, got {shape!r}.") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"`shape` must have non-negative sizes, got {shape}.")
    return shape


def check_choice(cls: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{cls} `{name}` must be one of {choices}, got {value!r}.")
    return value


def is_int(value: Any) -> bool:
    """An integer that is not a bool (`True` is an int in Python, never a count here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def float_array(cls: str, name: str, value: ArrayLike, *, positive: bool = False) -> Array:
    """`value` as a float array; finite (and > 0 if `positive`) when it is concrete.

    Traced values cannot be checked here; neurons check them inside the step with
    `eqx.error_if` (see `snnx.neurons`).
    """
    if value is None:
        raise ValueError(f"{cls} `{name}` must be given, got None.")
    try:
        arr = jnp.asarray(value, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{cls} `{name}` must be a number or a float array, got {value!r}.") from e
    if not isinstance(arr, jax.core.Tracer):
        host = np.asarray(arr)
        if not np.all(np.isfinite(host)):
            shown = host if host.size < 8 else "an array with NaN/inf"
            raise ValueError(f"{cls} `{name}` must be finite, got {shown}.")
        if positive and not np.all(host > 0):
            shown = host if host.size < 8 else "an array with values <= 0"
            raise ValueError(f"{cls} `{name}` must be > 0, got {shown}.")
    return arr


def broadcasts_to(value_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """True if an array of `value_shape` broadcasts to exactly `shape`."""
    try:
        return np.broadcast_shapes(tuple(value_shape), tuple(shape)) == tuple(shape)
    except ValueError:
        return False


def check_key(key, name: str = "key", what: str = "") -> None:
    """A JAX PRNG key: a typed key (`jax.random.key`) or a raw uint32 `(2,)` key."""
    ok = isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    )
    if not ok:
        raise TypeError(
            f"`{name}` must be a JAX PRNG key such as `jax.random.key(0)`, got {key!r}"
            + (f"; {what}." if what else ".")
        )


RUN_OPTIONS = ("mode", "unroll", "remat", "neuron_scan")


def check_run_kwargs(run_kwargs) -> dict:
    """`run_kwargs` of the training functions: options of `snnx.run` they may forward."""
    run_kwargs = dict(run_kwargs or {})
    extra = sorted(set(run_kwargs) - set(RUN_OPTIONS))
    if extra:
        raise ValueError(
            f"`run_kwargs` may set {list(RUN_OPTIONS)} of `snnx.run`, got {extra}; the training "
            f"functions pass `key`, `state` and `record` themselves."
        )
    return run_kwargs
