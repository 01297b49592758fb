"""Pooling over all time steps at once, for layer-major execution.

`eqx.nn.MaxPool{1,2,3}d` and `eqx.nn.AvgPool{1,2,3}d` are used as they are; this module only
applies them faster when their windows tile the input (kernel size == stride, no padding),
which is the usual SNN pooling (`MaxPool2d(2, 2)`). Then a window reduction is a reshape and a
`max`/`mean` over the window axes. XLA's general `reduce_window` has a backward pass
(`select_and_scatter`) that took ~110 ms of a 350 ms convolutional training step on CPU
(bench/, workload (c)); the reshaped form takes a fraction of that. Values are identical to
the equinox layer's; so are max-pool gradients, ties included (the gradient of a window
maximum goes to the first maximal entry in row-major window order, as XLA's
`select_and_scatter` does); average-pool gradients equal them to float rounding.
"""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

_MAX_POOLS = (eqx.nn.MaxPool1d, eqx.nn.MaxPool2d, eqx.nn.MaxPool3d)
_AVG_POOLS = (eqx.nn.AvgPool1d, eqx.nn.AvgPool2d, eqx.nn.AvgPool3d)


def _windows(x, kernel):
    """`x (..., d_1..d_N)` -> `(..., d_1//k_1, ..., d_N//k_N, prod(k))`, cropping any
    remainder at the high end (as `reduce_window` with "VALID" windows does)."""
    n = len(kernel)
    lead = x.shape[:-n]
    spatial = x.shape[-n:]
    out = tuple(d // k for d, k in zip(spatial, kernel))
    x = x[(...,) + tuple(slice(0, o * k) for o, k in zip(out, kernel))]
    split = lead + tuple(v for o, k in zip(out, kernel) for v in (o, k))
    x = x.reshape(split)
    m = len(lead)
    outer = [m + 2 * i for i in range(n)]
    inner = [m + 2 * i + 1 for i in range(n)]
    x = x.transpose(tuple(range(m)) + tuple(outer) + tuple(inner))
    return x.reshape(lead + out + (math.prod(kernel),))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _window_max(x, kernel):
    return _windows(x, kernel).max(axis=-1)


@_window_max.defjvp
def _window_max_jvp(kernel, primals, tangents):
    (x,), (t,) = primals, tangents
    w = _windows(x, kernel)
    # The first maximal entry of each window carries the derivative (as `select_and_scatter`
    # does). Written as a masked sum, the tangent is linear in `t` with an elementwise
    # transpose: reverse mode costs a `where` and a reshape, no scatter.
    slots = jnp.arange(w.shape[-1]).reshape((1,) * (w.ndim - 1) + (w.shape[-1],))
    first = jnp.argmax(w, axis=-1)[..., None] == slots
    return w.max(axis=-1), jnp.sum(jnp.where(first, _windows(t, kernel), 0), axis=-1)


def _window_mean(x, kernel):
    return _windows(x, kernel).sum(axis=-1) / math.prod(kernel)


def tiled_pool(layer):
    """A function applying the equinox pooling `layer` to inputs with any leading axes
    `(..., channels, d_1, ..., d_N)`, or None when the layer's windows do not tile its input
    (kernel size != stride, padding, `use_ceil`) or it is not an equinox max/avg pool.

    **Arguments:**

    - `layer`: any layer.

    **Returns:**

    A callable `x -> pooled x`, equal in value and gradient to `jax.vmap(layer)` over the
    leading axes, or None.
    """
    if type(layer) not in _MAX_POOLS + _AVG_POOLS:
        return None
    kernel = tuple(int(k) for k in layer.kernel_size)
    if tuple(int(s) for s in layer.stride) != kernel or layer.use_ceil:
        return None
    if any(tuple(p) != (0, 0) for p in layer.padding):
        return None
    n = len(kernel)
    reduce = _window_max if type(layer) in _MAX_POOLS else _window_mean

    def pool(x):
        if x.ndim < n + 1:
            raise ValueError(
                f"{type(layer).__name__} needs inputs of shape (channels, {n} spatial axes), "
                f"got shape {x.shape}."
            )
        return reduce(x, kernel)

    return pool
