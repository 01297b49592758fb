"""`DelayedLinear`: a projection with an integer delay on every synapse."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_dt, is_int, shape_tuple
from ._abstract import AbstractAllSteps, AbstractStatefulLayer
from .queues import AbstractQueue, default_queue


def check_delays(cls: str, delay: ArrayLike, shape: tuple[int, int], max_delay: int) -> Array:
    """Integer delays of `shape`, in `[0, max_delay]` (checked when concrete)."""
    d = jnp.asarray(delay)
    if d.shape != shape:
        raise ValueError(
            f"{cls} `delay` must have shape (out_features, in_features) = {shape}, got {d.shape}."
        )
    if not isinstance(d, jax.core.Tracer):
        host = np.asarray(d)
        if not np.issubdtype(host.dtype, np.integer):
            if not np.all(np.isfinite(host)) or np.any(host != np.round(host)):
                raise ValueError(
                    f"{cls} `delay` must hold whole steps (integers); round first, e.g. "
                    f"`jnp.round(delay).astype(int)`."
                )
        if np.any(host < 0) or np.any(host > max_delay):
            raise ValueError(
                f"{cls} `delay` must lie in [0, max_delay={max_delay}] steps, got values in "
                f"[{host.min()}, {host.max()}]; raise `max_delay` or clip the delays."
            )
    return d.astype(jnp.int32)


def init_synapses(cls, in_features, out_features, max_delay, *, key, weight, other):
    """The weights and one other per-synapse array of a delayed projection, each drawn from
    `key` where the user gave none (`other` = `(plural name, value or None, draw(key))`);
    the sizes are checked first."""
    check_sizes(cls, in_features=in_features, out_features=out_features, max_delay=max_delay)
    name, value, draw = other
    if (value is None or weight is None) and key is None:
        raise ValueError(f"{cls} `key` is needed to initialise the weights or {name}.")
    wkey, okey = jax.random.split(key) if key is not None else (None, None)
    if weight is None:
        weight = eqx.nn.Linear(in_features, out_features, use_bias=False, key=wkey).weight
    return weight, (draw(okey) if value is None else value)


def check_sizes(cls: str, **sizes) -> None:
    for name, value in sizes.items():
        low = 0 if name == "max_delay" else 1
        if not (is_int(value) and value >= low):
            raise ValueError(f"{cls} `{name}` must be an int >= {low}, got {value!r}.")


class DelayedLinear(AbstractStatefulLayer, AbstractAllSteps):
    r"""A linear projection with a whole-step delay on every synapse.

    $$ y_o(t) = \sum_i W_{oi}\, x_i(t - D_{oi}), \qquad D_{oi} \in \{0, \dots, D_{\max}\} $$

    (inputs before step 0 are zero; a delay of 0 passes the input in the same step). The
    spikes in flight live in a queue (`snnx.layers.RingBuffer`, `FIFO`, `SortedQueue`);
    every queue gives these numbers, and layer-major (`snnx.run`) and step-major runs agree.
    The weights are trained; the integer delays are not (see `snnx.layers.DCLSLinear` for
    learnable delays, and its `round()` for a `DelayedLinear` to deploy).

    NIR has no per-synapse delay node, so `snnx.to_nir` writes the equivalent expanded
    graph: for every delay value `d` in use, a `nir.Delay` of `d * dt` on all inputs feeding
    a `nir.Linear` that holds only the synapses of delay `d`; the outputs of these `Linear`s
    are summed at the subgraph's output. `snnx.from_nir` reads it back as a `DelayedLinear`.

    ```python
    layer = snnx.layers.DelayedLinear(700, 128, max_delay=25, key=key)   # random delays
    layer = snnx.layers.DelayedLinear(4, 2, max_delay=5, delay=D, queue=snnx.layers.FIFO())
    ys, state = snnx.run(layer, xs)              # xs: (T, 700)
    ```

    **Arguments:**

    - `in_features`, `out_features`: sizes (ints >= 1).
    - `max_delay`: the largest delay in steps (a static bound: the queue's size), >= 0.
    - `delay`: integer delays `(out_features, in_features)` in `[0, max_delay]`. Default:
        uniform random from `key`.
    - `weight`: weights `(out_features, in_features)`. Default: `eqx.nn.Linear`'s
        initialisation from `key`.
    - `queue`: an `snnx.layers.AbstractQueue`. Default `snnx.layers.default_queue()`.
    - `dt`: the time step, > 0 (delays in time units are `delay * dt`; NIR export). Default 1.
    - `key`: PRNG key for the defaults.

    **Raises:**

    `ValueError` for sizes, shapes or delays out of range (named); `TypeError` for a
    `queue` that is not an `AbstractQueue`.
    """

    weight: Float[Array, "out_features in_features"]
    delay: Int[Array, "out_features in_features"]
    queue: AbstractQueue
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        *,
        delay: Int[ArrayLike, "out_features in_features"] | None = None,
        weight: Float[ArrayLike, "out_features in_features"] | None = None,
        queue: AbstractQueue | None = None,
        dt: float = 1.0,
        key: PRNGKeyArray | None = None,
    ):
        cls = "DelayedLinear"
        shape = (out_features, in_features)
        weight, delay = init_synapses(
            cls, in_features, out_features, max_delay, key=key, weight=weight,
            other=("delays", delay, lambda k: jax.random.randint(k, shape, 0, max_delay + 1)),
        )
        weight = jnp.asarray(weight)
        if weight.shape != shape:
            raise ValueError(f"{cls} `weight` must have shape {shape}, got {weight.shape}.")
        if queue is None:
            queue = default_queue()
        if not isinstance(queue, AbstractQueue):
            raise TypeError(
                f"{cls} `queue` must be an `snnx.layers.AbstractQueue` (e.g. "
                f"`snnx.layers.RingBuffer()`), got {type(queue).__name__}."
            )
        self.weight = weight
        self.delay = check_delays(cls, delay, shape, max_delay)
        self.queue = queue
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.max_delay = int(max_delay)
        self.dt = check_dt(cls, dt)

    def init_state(self, shape, dtype=jnp.float32) -> PyTree[Array]:
        """An empty queue for per-step inputs of `shape` `(in_features,)`.

        **Arguments:**

        - `shape`: the shape of one step of one sample's input, `(in_features,)`.
        - `dtype`: the floating dtype of the values in flight. Default float32.

        **Returns:**

        The queue's state (`RingState`, `FIFOState` or `SortedState`), with a `dropped` count.

        **Raises:**

        `ValueError` if `shape` is not `(in_features,)`.
        """
        shape = shape_tuple(shape)
        if shape != (self.in_features,):
            raise ValueError(
                f"DelayedLinear input `shape` must be (in_features,) = ({self.in_features},), "
                f"got {shape}; flatten the input first (`snnx.Flatten()`)."
            )
        return self.queue.init_state(self, dtype)

    def __call__(self, x: Array, state: PyTree[Array], *, key: PRNGKeyArray | None = None):
        """One step: queue `x` `(in_features,)`, return what arrives now `(out_features,)`."""
        del key
        return self.queue.step(self, x, state)

    def all_steps(self, xs, state, *, keys, context):
        """All steps as the queue declares (a gather-sum for `RingBuffer`, else a scan)."""
        return self.queue.all_steps(self, xs, state, keys=keys, context=context)

    def with_queue(self, queue: AbstractQueue) -> "DelayedLinear":
        """The same synapses on another queue (a fresh state is needed)."""
        return DelayedLinear(self.in_features, self.out_features, self.max_delay,
                             delay=self.delay, weight=self.weight, queue=queue, dt=self.dt)
