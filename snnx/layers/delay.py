"""Per-channel transmission delays on a ring buffer."""

import warnings
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import broadcasts_to, check_dt, shape_tuple
from ._abstract import AbstractAllSteps, AbstractStatefulLayer


class DelayState(NamedTuple):
    """State of a `Delay` layer: the last `max_steps + 1` inputs and the write position."""

    buffer: Array
    position: Array


class Delay(AbstractStatefulLayer, AbstractAllSteps):
    r"""Delays each channel of its input by a fixed time (NIR `Delay`): $y(t) = x(t - d)$.

    Delays are given in time units and discretised to whole steps,
    $k = \operatorname{round}(d / dt)$ (to the nearest step; a warning says when a delay is
    not a whole multiple of `dt`); a delay of zero steps passes the input through in the
    same step. Before the first $k$ steps have
    passed, the output is 0 (the signal was silent before time 0). The state is a ring
    buffer of the last $\max k + 1$ inputs. Over a whole sequence (`snnx.run`, layer-major)
    the delay is one shifted read of the input, not a scan.

    ```python
    delay = snnx.Delay(jnp.array([0.0, 2.0, 5.0]), dt=1.0)   # per-channel delays
    ys, _ = snnx.run(delay, xs)                               # ys[t, c] = xs[t - k_c, c]
    ```

    **Arguments:**

    - `delay`: delay per channel in time units (same unit as `dt`), >= 0; a scalar or an
        array that broadcasts to the input shape.
    - `dt`: the time step, > 0. Default 1.

    **Raises:**

    `ValueError` if a delay is negative or not finite.
    """

    steps: Int[Array, "*shape"]
    max_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, delay: Float[ArrayLike, "*shape"], *, dt: float = 1.0):
        dt = check_dt("Delay", dt)
        d = np.asarray(delay, dtype=np.float64)
        if not np.all(np.isfinite(d)):
            raise ValueError(f"Delay `delay` must be finite, got {delay!r}.")
        if np.any(d < 0):
            raise ValueError(
                f"Delay `delay` must be >= 0 (a signal cannot arrive before it is sent), got "
                f"{d if d.size < 8 else 'an array with negative values'}."
            )
        ratio = d / dt
        steps = np.round(ratio).astype(np.int32)
        off = np.abs(ratio - steps) > 1e-3
        if np.any(off):
            warnings.warn(
                f"Delay `delay` values {d[off] if d.ndim else d} are not whole multiples of "
                f"`dt={dt}`; they are rounded to {steps[off] if d.ndim else steps} steps. Choose "
                f"a `dt` that divides the delays to keep them exact.",
                stacklevel=2,
            )
        self.steps = jnp.asarray(steps)
        self.max_steps = int(steps.max()) if steps.size else 0
        self.dt = dt

    @property
    def delay(self) -> Array:
        """The delays as simulated, in time units: `steps * dt` (exported to NIR)."""
        return self.steps * self.dt

    def init_state(self, shape, dtype=jnp.float32) -> DelayState:
        """A silent buffer for inputs of per-step `shape`.

        **Arguments:**

        - `shape`: the shape of one time step of one sample's input.
        - `dtype`: the buffer's floating dtype. Default float32.

        **Returns:**

        A `DelayState`.
        """
        shape = shape_tuple(shape)
        if not broadcasts_to(self.steps.shape, shape):
            raise ValueError(
                f"Delay `delay` has shape {self.steps.shape}, which does not broadcast to the "
                f"input shape {shape}; give a scalar or an array of shape {shape}."
            )
        return DelayState(
            jnp.zeros((self.max_steps + 1,) + shape, dtype), jnp.zeros((), jnp.int32)
        )

    def __call__(
        self, x: Array, state: DelayState, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, DelayState]:
        """Store `x` and return the input of `k` steps ago, channel by channel."""
        size = self.max_steps + 1
        buffer = state.buffer.at[state.position].set(x.astype(state.buffer.dtype))
        shape = buffer.shape[1:]
        index = (state.position - jnp.broadcast_to(self.steps, shape)) % size
        y = jnp.take_along_axis(buffer, index[None], axis=0)[0]
        return y, DelayState(buffer, (state.position + 1) % size)

    def all_steps(self, xs, state: DelayState, *, keys, context):
        """All steps at once: the buffer's inputs in time order, then `xs`, read `k` back.

        Equal to stepping the ring buffer, final state included; with `record` the
        buffer after every step is needed, so the layer is then scanned.
        """
        if context.record:
            return context.scan(self, xs, state, keys)
        size, T = self.max_steps + 1, xs.shape[0]
        shape = xs.shape[1:]
        # Input j steps before the first one sits at `position - j`; oldest first.
        past = state.buffer[(state.position - size + jnp.arange(size)) % size]
        history = jnp.concatenate([past, xs.astype(state.buffer.dtype)])
        steps = jnp.broadcast_to(self.steps, shape)
        index = size + jnp.arange(T).reshape((T,) + (1,) * len(shape)) - steps[None]
        ys = jnp.take_along_axis(history, index, axis=0)
        # After T steps, slot s of the ring holds the latest input written there.
        position = (state.position + T) % size
        last = size + T - 1 - (position - 1 - jnp.arange(size)) % size
        return ys, DelayState(history[last], position), None
