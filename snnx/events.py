"""Spikes as event tables, and the event-driven input projection that reads them.

A dense spike raster `(T, n_in)` at a few percent density is mostly zeros; a matmul with it
spends almost all its work multiplying by zero. `SpikeEvents` stores, for every time step,
the indices of the inputs that spiked (padded to a fixed `max_events` with the index
`n_in`, which points at a zero row), built once on the host. The first layer's projection
then sums the weight columns of the active inputs only: work proportional to the number of
events instead of to `n_in`.

`snnx.run` picks that projection automatically: give it a `SpikeEvents` where it would take
a spike array, and a first `eqx.nn.Linear` (or `snnx.SparseLinear`) gathers instead of
multiplying. Every other layer sees the dense spikes, so any model accepts events.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, ArrayLike, Float, Int

_FULL_UNROLL = 64  # gather loops up to this many events per step are unrolled into one fusion
_SLOTS_PER_ITER = 16  # event slots per iteration of the weight-gradient loop
# Weights with more entries than this get their gradient from a dense matmul with the
# densified events instead of one scatter per event: a per-event scatter into a weight
# gradient that does not fit in cache is memory-bound (on CPU, workload (d) of bench/ with a
# 4096 x 4096 weight: scatter 1.43x the dense step, dense weight gradient 0.78x).
_SCATTER_GRAD_MAX = 1 << 21


class SpikeEvents(eqx.Module):
    """Binary spikes stored as an event table (active input indices per time step).

    Build one with `SpikeEvents.from_dense` (once, on the host, for a whole dataset), then
    pass it to `snnx.run`, `jax.vmap(snnx.run)`, `snnx.fit` or `snnx.evaluate` wherever a
    spike array `(..., T, n_in)` would go. Index it like an array along the leading axes
    (`events[i]`, `events[perm]`, `events[:64]`).

    ```python
    ev = snnx.SpikeEvents.from_dense(spikes)        # spikes: (N, T, 700), 0/1
    out, _ = jax.vmap(lambda e: snnx.run(model, e))(ev[:64])
    ```

    Only the table is stored (at 3% density a fraction of the dense raster's memory). The
    projection's weight gradient is event-driven too: each event adds its output cotangent
    to one weight column. Layers that need the dense raster get `to_dense()`, rebuilt on
    the fly.

    **Fields:**

    - `index`: int32 `(..., T, max_events)`: the active inputs of each step, in increasing
        order, padded with `n_in`.
    - `n_in`: the number of inputs (static).
    """

    index: Int[Array, "*batch time max_events"]
    n_in: int = eqx.field(static=True)

    def __init__(self, index: ArrayLike, n_in: int):
        if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or n_in < 1:
            raise ValueError(f"`n_in` must be a positive int, got {n_in!r}.")
        index = jnp.asarray(index)
        if not jnp.issubdtype(index.dtype, jnp.integer):
            raise TypeError(f"`index` must hold integers, got dtype {index.dtype}.")
        if index.ndim < 2:
            raise ValueError(
                f"`index` must have shape (..., T, max_events), got {index.shape}. Build events "
                f"with `SpikeEvents.from_dense(spikes)`."
            )
        msg = f"`index` values must lie in [0, n_in={n_in}] ({n_in} marks an empty slot)"
        if isinstance(index, jax.core.Tracer):  # built inside `jit`: checked when it runs
            index = eqx.error_if(index, (index < 0) | (index > n_in), msg + ".")
        elif index.size:
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi > n_in:
                raise ValueError(f"{msg}, found [{lo}, {hi}].")
        self.index = index.astype(jnp.int32)
        self.n_in = int(n_in)

    @classmethod
    def from_dense(cls, spikes, *, max_events: int | None = None) -> "SpikeEvents":
        """Build the event table of a 0/1 spike array (on the host, with NumPy).

        **Arguments:**

        - `spikes`: 0/1 (or boolean) spikes `(..., T, n_in)`, a NumPy or JAX array or an
            `snnx.data.PackedSpikes` (unpacked here).
        - `max_events`: the padded number of events per time step. Default: the largest
            count in `spikes`. Give a larger value to share one compiled program between
            datasets; a smaller one is refused (events would be lost).

        **Returns:**

        A `SpikeEvents` with the same leading shape as `spikes`.

        **Raises:**

        `ValueError` for non-binary spikes, fewer than two axes, or a `max_events` below the
        largest number of events in one step (the message gives that number).
        """
        from .data.packing import PackedSpikes

        if isinstance(spikes, PackedSpikes):
            spikes = spikes.unpack()
        x = np.asarray(spikes)
        if x.ndim < 2:
            raise ValueError(
                f"`spikes` must have shape (..., T, n_in) with a time and an input axis, got "
                f"{x.shape}."
            )
        if x.dtype != np.bool_:
            if not np.all((x == 0) | (x == 1)):
                raise ValueError(
                    "`spikes` must be binary (0 or 1) to become events; graded inputs need a "
                    "dense `eqx.nn.Linear` input instead."
                )
            x = x != 0
        n_in = x.shape[-1]
        flat = x.reshape(-1, n_in)
        counts = flat.sum(axis=1)
        most = int(counts.max()) if counts.size else 0
        if max_events is None:
            max_events = max(most, 1)
        elif isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)):
            raise ValueError(f"`max_events` must be an int or None, got {max_events!r}.")
        elif max_events < most:
            raise ValueError(
                f"`max_events`={max_events} is too small: one time step has {most} events. "
                f"Use max_events>={most} (or None for exactly that)."
            )
        rows, cols = np.nonzero(flat)  # row-major: sorted by row, then by input
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.arange(rows.size) - starts[rows]
        index = np.full((flat.shape[0], max(int(max_events), 1)), n_in, np.int32)
        index[rows, slot] = cols
        index = index.reshape(x.shape[:-1] + (index.shape[-1],))
        return cls(jnp.asarray(index), n_in)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense spikes, `(..., T, n_in)`."""
        return tuple(self.index.shape[:-1]) + (self.n_in,)

    @property
    def ndim(self) -> int:
        return self.index.ndim

    @property
    def max_events(self) -> int:
        return int(self.index.shape[-1])

    def count(self) -> Array:
        """The number of events per time step, `(..., T)`."""
        return jnp.sum(self.index < self.n_in, axis=-1)

    def to_dense(self, dtype=jnp.float32) -> Array:
        """The spikes as a 0/1 array `(..., T, n_in)` (one scatter; works inside `jit`).

        An input listed twice in one step (possible only in a hand-built table) counts
        twice, here as in the event projection."""
        return _densify(self.index, self.n_in, dtype)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, item) -> "SpikeEvents":
        """Index the leading (sample) axes; the time and event axes stay whole."""
        index = self.index[item]
        if index.ndim < 2 or index.shape[-2:] != self.index.shape[-2:]:
            raise IndexError(
                "SpikeEvents can only be indexed along its leading (sample) axes; the time "
                f"and event axes must stay whole (got item {item!r})."
            )
        # The entries were checked when this table was built: no second check per batch.
        return eqx.tree_at(lambda e: e.index, self, index)


def _densify(index: Array, n_in: int, dtype) -> Array:
    """The 0/1 raster `(..., T, n_in)` of an event table `(..., T, max_events)`."""
    flat = index.reshape(-1, index.shape[-1])
    rows = jnp.arange(flat.shape[0])[:, None]
    # The padding index `n_in` is out of bounds: its writes are dropped (2x faster on CPU
    # than writing into an extra column and slicing it off). An index listed twice in one
    # step counts twice, as it does in the event projection (a sum over the listed events).
    dense = jnp.zeros((flat.shape[0], n_in), dtype).at[rows, flat].add(1, mode="drop")
    return dense.reshape(index.shape[:-1] + (n_in,))


def _gather_sum(index: Array, w_t: Array) -> Array:
    """`sum_k w_t[index[..., k]]`: one row gather per event slot, accumulated.

    Up to `_FULL_UNROLL` slots the loop is unrolled, and XLA fuses every gather and add into
    one pass over the output; beyond that, 8 slots per iteration.
    """
    k = index.shape[-1]
    acc = jnp.zeros(index.shape[:-1] + (w_t.shape[1],), w_t.dtype)

    def body(j, acc):
        col = jax.lax.dynamic_index_in_dim(index, j, axis=index.ndim - 1, keepdims=False)
        return acc + w_t.at[col].get(mode="promise_in_bounds")

    unroll = True if k <= _FULL_UNROLL else 8
    return jax.lax.fori_loop(0, k, body, acc, unroll=unroll)


@jax.custom_jvp
def _event_matmul(index: Array, weight: Array) -> Array:
    # Row `n_in` of the padded table is zero: the padding slots add nothing.
    w_t = jnp.concatenate([weight.T, jnp.zeros((1, weight.shape[0]), weight.dtype)])
    return _gather_sum(index, w_t)


def _event_matmul_tangent(index: Array, d_weight: Array) -> Array:
    # Linear in `d_weight`; reverse mode transposes it into one scatter-add per event slot,
    # accumulated into a single weight-gradient buffer (under a user's `vmap` too: one
    # gradient, not one per sample). The padding index `n_in` is out of bounds here, so its
    # scatter is dropped instead of summed into a dummy row. The slots are processed
    # `_SLOTS_PER_ITER` per loop iteration: XLA copies the loop-invariant cotangent once per
    # iteration, and a fully unrolled chain would start every scatter from a fresh zero
    # buffer; 16 slots per iteration measured fastest on CPU (bench/README.md).
    d_w_t = d_weight.T
    n, k = d_w_t.shape[0], index.shape[-1]
    acc = jnp.zeros(index.shape[:-1] + (d_w_t.shape[1],), d_w_t.dtype)
    if k == 0:
        return acc
    per = min(_SLOTS_PER_ITER, k)
    iters = -(-k // per)
    pad = [(0, 0)] * (index.ndim - 1) + [(0, iters * per - k)]
    index = jnp.pad(index, pad, constant_values=n)

    def body(i, acc):
        for u in range(per):
            col = jax.lax.dynamic_index_in_dim(index, i * per + u, index.ndim - 1, False)
            acc = acc + d_w_t.at[col].get(mode="fill", fill_value=0)
        return acc

    return jax.lax.fori_loop(0, iters, body, acc)


def _dense_tangent(index: Array, d_weight: Array) -> Array:
    # The same linear map as a matmul with the densified events; its transpose is the dense
    # weight gradient `x.T @ cotangent`, blocked for the cache by the matmul library.
    return _densify(index, d_weight.shape[1], d_weight.dtype) @ d_weight.T


@_event_matmul.defjvp
def _event_matmul_jvp(primals, tangents):
    index, weight = primals
    _, d_weight = tangents
    y = _event_matmul(index, weight)
    if isinstance(d_weight, SymbolicZero):
        return y, jnp.zeros_like(y)
    if weight.size > _SCATTER_GRAD_MAX:
        return y, _dense_tangent(index, d_weight)
    return y, _event_matmul_tangent(index, d_weight)


_event_matmul.defjvp(_event_matmul_jvp, symbolic_zeros=True)


def project(
    events: SpikeEvents, weight: Float[Array, "out n_in"], bias: Float[Array, " out"] | None = None
) -> Float[Array, "*batch time out"]:
    """The event-driven projection `W x + b` of spikes stored as `SpikeEvents`.

    Sums the weight columns of the active inputs (the forward pass reads `max_events`
    columns per step, not `n_in`), and so is the backward pass for weights of up to 2**21
    entries (each event adds the output cotangent of its step to one weight column); larger
    weights, whose gradient does not fit in cache, get it from a dense matmul with the
    densified events, which is faster there. Equal to `x @ weight.T + bias` on the dense
    spikes up to float summation order, in value and gradient. Events carry no gradient.

    **Arguments:**

    - `events`: a `SpikeEvents`, any leading shape.
    - `weight`: `(out, n_in)`, as in `eqx.nn.Linear`.
    - `bias`: `(out,)` or None.

    **Returns:**

    `(..., T, out)`.

    **Raises:**

    `TypeError` if `events` is not a `SpikeEvents`; `ValueError` if `weight` does not have
    `n_in` columns.
    """
    if not isinstance(events, SpikeEvents):
        raise TypeError(f"`events` must be an `snnx.SpikeEvents`, got {type(events).__name__}.")
    weight = jnp.asarray(weight)
    if weight.ndim != 2 or weight.shape[1] != events.n_in:
        raise ValueError(
            f"`weight` must have shape (out, n_in={events.n_in}), got {weight.shape}."
        )
    y = _event_matmul(events.index, weight)
    if bias is not None:
        y = y + jnp.asarray(bias).reshape((1,) * (y.ndim - 1) + (-1,))
    return y
