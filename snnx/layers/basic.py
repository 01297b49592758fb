"""Small stateless layers that NIR needs and `equinox.nn` lacks: Scale, Threshold, SumPool2d,
Flatten."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import float_array
from ..spikes import AbstractSurrogate, FastSigmoid


class Scale(eqx.Module):
    r"""Elementwise scaling $y = s \odot x$ (NIR `Scale`).

    **Arguments:**

    - `scale`: the factor $s$, a scalar or an array that broadcasts to the input (e.g. one
        value per channel of a `(C,)` input).
    """

    scale: Float[Array, "*shape"]

    def __init__(self, scale: Float[ArrayLike, "*shape"]):
        self.scale = float_array("Scale", "scale", scale)

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        return x * self.scale


class Threshold(eqx.Module):
    r"""Heaviside spike function $y = H(x - \theta)$ (NIR `Threshold`), with a surrogate
    gradient.

    **Arguments:**

    - `threshold`: $\theta$, a scalar or an array that broadcasts to the input.
    - `surrogate`: an `snnx.spikes.AbstractSurrogate` for the backward pass; default
        `FastSigmoid()`.
    """

    threshold: Float[Array, "*shape"]
    surrogate: AbstractSurrogate

    def __init__(
        self,
        threshold: Float[ArrayLike, "*shape"] = 0.0,
        *,
        surrogate: AbstractSurrogate | None = None,
    ):
        self.threshold = float_array("Threshold", "threshold", threshold)
        if surrogate is None:
            surrogate = FastSigmoid()
        if not isinstance(surrogate, AbstractSurrogate):
            raise TypeError(
                "Threshold `surrogate` must be an `snnx.spikes.AbstractSurrogate` (e.g. "
                f"`snnx.spikes.FastSigmoid()`), got {type(surrogate).__name__}."
            )
        self.surrogate = surrogate

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        return self.surrogate(x - self.threshold, key=key)


def _pair(cls: str, name: str, value, minimum: int) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(arr == np.round(arr)) or np.any(arr < minimum):
        raise ValueError(
            f"{cls} `{name}` must be an int >= {minimum} or a pair of them, got {value!r}."
        )
    return int(arr[0]), int(arr[1])


class SumPool2d(eqx.Module):
    """Sum pooling over the two spatial axes of a `(channels, height, width)` input (NIR
    `SumPool2d`). Padding is with zeros on both sides, as in PyTorch.

    **Arguments:**

    - `kernel_size`: window size, an int or `(height, width)`.
    - `stride`: step between windows; default `kernel_size`.
    - `padding`: zeros added on each side, an int or `(height, width)`. Default 0.
    """

    kernel_size: tuple[int, int] = eqx.field(static=True)
    stride: tuple[int, int] = eqx.field(static=True)
    padding: tuple[int, int] = eqx.field(static=True)

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
    ):
        self.kernel_size = _pair("SumPool2d", "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair(
            "SumPool2d", "stride", stride, 1
        )
        self.padding = _pair("SumPool2d", "padding", padding, 0)

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        if x.ndim != 3:
            raise ValueError(
                f"SumPool2d needs an input of shape (channels, height, width), got {x.shape}."
            )
        pads = ((0, 0),) + tuple((p, p) for p in self.padding)
        return jax.lax.reduce_window(
            x, jnp.zeros((), x.dtype), jax.lax.add, (1,) + self.kernel_size,
            (1,) + self.stride, pads,
        )


class Flatten(eqx.Module):
    """Flatten axes `start_dim..end_dim` (inclusive) of one sample into one (NIR `Flatten`).

    Axes count within one sample (no batch axis), as in NIR: the defaults flatten everything,
    like `jnp.ravel`.

    **Arguments:**

    - `start_dim`: first axis to flatten. Default 0.
    - `end_dim`: last axis to flatten (negative counts from the end). Default -1.
    """

    start_dim: int = eqx.field(static=True)
    end_dim: int = eqx.field(static=True)

    def __init__(self, start_dim: int = 0, end_dim: int = -1):
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        nd = max(x.ndim, 1)
        start = self.start_dim % nd
        end = self.end_dim % nd
        if x.ndim == 0 or start > end:
            if x.ndim == 0:
                return x.reshape(1)
            raise ValueError(
                f"Flatten `start_dim={self.start_dim}` comes after `end_dim={self.end_dim}` "
                f"for an input of shape {x.shape}; give start_dim <= end_dim."
            )
        shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
        return x.reshape(shape)
