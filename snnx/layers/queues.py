r"""Spike queues for per-synapse delays: where a `DelayedLinear` keeps spikes in flight.

Every queue computes the same delayed projection,

$$ y_o(t) = \sum_i W_{oi}\, x_i(t - D_{oi}), \qquad 0 \le D_{oi} \le D_{\max}, $$

but stores the pending spikes differently (EventQueues, Landsmeer et al. 2025, arXiv
2512.05906), so time and memory differ with the maximum delay, the activity and the backend:

- `RingBuffer`: future input currents per output, one slot per step ahead; memory
  `(D_max+1) x out`, an `out x in` scatter per step; all steps at once (`snnx.run`,
  layer-major) are one gather-sum over time, no scan.
- `FIFO`: presynaptic spikes in emission order, leaving after `D_max` steps; memory
  `capacity` events, `out x capacity` work per step; all steps scan the one-step form.
- `SortedQueue`: synapse events (arrival, target, value) merged by a sort; memory
  `capacity` events, a sort of `capacity + out x in` per step; all steps scan.

`RingBuffer` never drops anything. `FIFO` and `SortedQueue` have a fixed `capacity`
(default: large enough never to drop); a smaller one trades accuracy for memory and drops
spikes by an explicit policy (`DropNewest`, `DropOldest`) and counts them in the state's
`dropped` field. `snnx.layers.check_dropped(state)` reads those counts on the host and warns.

The event queues carry gradients to the weights and to the values of the spikes they hold;
an input that is exactly zero is not an event, so its gradient is zero (for
surrogate-gradient training of a spiking layer *before* the projection, use `RingBuffer`).
"""

import abc
import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from .._checks import is_int

_NEVER = np.iinfo(np.int32).max  # arrival step of an empty slot in a `SortedQueue`


class AbstractDropPolicy(eqx.Module):
    """Which spikes a full fixed-capacity queue drops. Counted in the state's `dropped`."""


class DropNewest(AbstractDropPolicy):
    """A full queue refuses new spikes: those that do not fit are dropped (the default)."""


class DropOldest(AbstractDropPolicy):
    """A full queue evicts its oldest spikes (earliest emitted) to make room for new ones."""


class RingState(NamedTuple):
    """State of a `RingBuffer`: future input per output (slot per step ahead), position."""

    buffer: Array
    position: Array
    dropped: Array


class FIFOState(NamedTuple):
    """State of a `FIFO`: a circular table of presynaptic events (emission step, source,
    value), its head and length, the current step and the count of dropped events."""

    emitted: Array
    source: Array
    value: Array
    head: Array
    length: Array
    step: Array
    dropped: Array


class SortedState(NamedTuple):
    """State of a `SortedQueue`: synapse events (arrival step, target, value, emission
    step), the current step and the count of dropped synapse events."""

    arrival: Array
    target: Array
    value: Array
    emitted: Array
    step: Array
    dropped: Array


class AbstractQueue(eqx.Module):
    """How a `DelayedLinear` stores spikes in flight (a strategy object).

    Subclasses implement `init_state` (one sample), `step` (one time step) and
    `all_steps` (a whole sequence, same numbers as stepping).
    """

    @abc.abstractmethod
    def init_state(self, layer, dtype) -> PyTree[Array]:
        """An empty queue for `layer` (a `DelayedLinear`), values in `dtype`."""

    @abc.abstractmethod
    def step(self, layer, x: Array, state: PyTree[Array]) -> tuple[Array, PyTree[Array]]:
        """Queue this step's input `x` `(in,)`, deliver what arrives now: `(y, state)`."""

    def all_steps(self, layer, xs, state, *, keys, context):
        """All steps at once; by default the one-step form, scanned (drops depend on order)."""
        return context.scan(layer, xs, state, keys)


def _check_capacity(cls, capacity):
    if capacity is not None and not (is_int(capacity) and capacity >= 1):
        raise ValueError(
            f"{cls} `capacity` must be an int >= 1 (events held at once) or None (never drop), "
            f"got {capacity!r}."
        )
    return None if capacity is None else int(capacity)


def _check_policy(cls, policy):
    if not isinstance(policy, AbstractDropPolicy):
        raise TypeError(
            f"{cls} `policy` must be `snnx.layers.DropNewest()` or `DropOldest()`, got "
            f"{type(policy).__name__}."
        )
    return policy


class RingBuffer(AbstractQueue):
    """A dense ring buffer of future input currents: slot `k` ahead holds what arrives in
    `k` steps, summed over synapses. Never drops; memory `(max_delay + 1) x out`.

    Its all-steps form is one gather-sum over the whole sequence (no scan), with the
    buffer handed over exactly, so layer-major and step-major runs agree.
    """

    def init_state(self, layer, dtype):
        size = layer.max_delay + 1
        return RingState(jnp.zeros((size, layer.out_features), dtype), jnp.zeros((), jnp.int32),
                         jnp.zeros((), jnp.int32))

    def step(self, layer, x, state):
        size = layer.max_delay + 1
        contrib = layer.weight * x[None, :]
        buffer = state.buffer.astype(jnp.result_type(state.buffer, contrib))
        slots = (state.position + layer.delay) % size
        rows = jnp.broadcast_to(jnp.arange(layer.out_features)[:, None], layer.delay.shape)
        buffer = buffer.at[slots, rows].add(contrib.astype(buffer.dtype))
        y = buffer[state.position]
        buffer = buffer.at[state.position].set(0)
        return y, RingState(buffer, (state.position + 1) % size, state.dropped)

    def all_steps(self, layer, xs, state, *, keys, context):
        if context.record:
            return context.scan(layer, xs, state, keys)
        size, M, T = layer.max_delay + 1, layer.max_delay, xs.shape[0]
        dtype = jnp.result_type(state.buffer, layer.weight, xs)
        # Everything that arrives at steps 0 .. T+M-1 from these inputs, then what was
        # already in flight (slot `j` ahead arrives at step `j`).
        y_ext = delayed_sum(layer.weight, layer.delay, xs.astype(dtype), T + M, M)
        pending = state.buffer[(state.position + jnp.arange(size)) % size]
        y_ext = y_ext.at[:size].add(pending.astype(y_ext.dtype))
        ys = y_ext[:T]
        slots = (state.position + T + jnp.arange(M)) % size
        buffer = jnp.zeros(state.buffer.shape, dtype).at[slots].set(y_ext[T:].astype(dtype))
        position = ((state.position + T) % size).astype(state.position.dtype)
        return ys, RingState(buffer, position, state.dropped), None


def delayed_sum(weight, delay, xs, length, max_delay):
    """`y[t, o] = sum_i W[o, i] xs[t - D[o, i], i]` for `t < length` (zero before step 0).

    One gather of the delayed inputs `(length, out, in)` and one weighted sum; exact in
    the weights and the inputs (delays are whole steps).
    """
    T, n = xs.shape
    history = jnp.concatenate(
        [jnp.zeros((max_delay, n), xs.dtype), xs, jnp.zeros((max(length - T, 0), n), xs.dtype)]
    )
    t = jnp.arange(length).reshape(length, 1, 1)
    index = max_delay + t - delay[None]                     # (length, out, in)
    gathered = history[index, jnp.arange(n).reshape(1, 1, n)]
    return jnp.einsum("toi,oi->to", gathered, weight.astype(xs.dtype))


class FIFO(AbstractQueue):
    """A first-in first-out queue of presynaptic spikes (emission step, source, value).

    Each step the new spikes are appended, those older than `max_delay` leave from the
    head, and every queued spike delivers `W[o, i] x` to output `o` when its age equals
    `D[o, i]`: work per step grows with the spikes in flight, not with the delay range.

    **Arguments:**

    - `capacity`: spikes held at once. Default None: `in_features * (max_delay + 1)`, which
        never drops. A smaller capacity drops by `policy` and counts the drops.
    - `policy`: `DropNewest()` (default) or `DropOldest()`.
    """

    capacity: int | None = eqx.field(static=True)
    policy: AbstractDropPolicy

    def __init__(self, capacity: int | None = None, *, policy: AbstractDropPolicy = DropNewest()):
        self.capacity = _check_capacity("FIFO", capacity)
        self.policy = _check_policy("FIFO", policy)

    def size(self, layer) -> int:
        """The capacity in events for `layer`."""
        full = layer.in_features * (layer.max_delay + 1)
        return full if self.capacity is None else self.capacity

    def init_state(self, layer, dtype):
        C = self.size(layer)
        i32 = jnp.zeros((C,), jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        return FIFOState(i32, i32, jnp.zeros((C,), dtype), zero, zero, zero, zero)

    def step(self, layer, x, state):
        C, M = self.size(layer), layer.max_delay
        t = state.step
        slot = jnp.arange(C, dtype=jnp.int32)
        offset = (slot - state.head) % C                      # position from the head
        valid = offset < state.length
        # Spikes emitted before t - M can no longer arrive; emission order makes them a prefix.
        expired = jnp.sum(valid & (state.emitted < t - M)).astype(jnp.int32)
        head, length = (state.head + expired) % C, state.length - expired

        active = x != 0
        n_new = jnp.sum(active).astype(jnp.int32)
        rank = (jnp.cumsum(active) - 1).astype(jnp.int32)
        if isinstance(self.policy, DropOldest):
            admitted = jnp.minimum(n_new, C)
            skip = n_new - admitted                            # earliest-indexed of this step
            keep = active & (rank >= skip)
            evict = jnp.maximum(length + admitted - C, 0)
            head, length = (head + evict) % C, length - evict
            pos = rank - skip
            dropped = skip + evict
        else:
            admitted = jnp.minimum(n_new, C - length)
            keep = active & (rank < admitted)
            pos = rank
            dropped = n_new - admitted
        where = jnp.where(keep, (head + length + pos) % C, C)  # C: out of range, not written
        src = jnp.arange(layer.in_features, dtype=jnp.int32)
        emitted = state.emitted.at[where].set(t, mode="drop")
        source = state.source.at[where].set(src, mode="drop")
        dtype = jnp.result_type(state.value, layer.weight, x)
        value = state.value.astype(dtype).at[where].set(x.astype(dtype), mode="drop")
        length = length + admitted

        offset = (slot - head) % C
        valid = offset < length
        w = layer.weight[:, source].astype(value.dtype)        # (out, C)
        d = layer.delay[:, source]
        hit = valid[None, :] & (d == (t - emitted)[None, :])
        y = jnp.sum(jnp.where(hit, w * value[None, :], 0), axis=1)
        return y, FIFOState(emitted, source, value, head, length, t + 1,
                            state.dropped + dropped.astype(jnp.int32))


class SortedQueue(AbstractQueue):
    """A fixed-capacity table of synapse events (arrival step, target, value), merged by sort.

    Each step every active input adds one event per synapse, `(t + D[o, i], o, W[o, i] x_i)`;
    the table and the new events are sorted by emission (the policy's order) and the first
    `capacity` kept; events whose arrival is now are summed per target and removed. The
    structure suited to accelerators whose fastest primitive is a sort (EventQueues: TPU).

    **Arguments:**

    - `capacity`: synapse events held at once. Default None:
        `out_features * in_features * (max_delay + 1)`, which never drops. A smaller
        capacity drops by `policy` and counts the dropped synapse events.
    - `policy`: `DropNewest()` (default) or `DropOldest()`.
    """

    capacity: int | None = eqx.field(static=True)
    policy: AbstractDropPolicy

    def __init__(self, capacity: int | None = None, *, policy: AbstractDropPolicy = DropNewest()):
        self.capacity = _check_capacity("SortedQueue", capacity)
        self.policy = _check_policy("SortedQueue", policy)

    def size(self, layer) -> int:
        """The capacity in synapse events for `layer`."""
        full = layer.out_features * layer.in_features * (layer.max_delay + 1)
        return full if self.capacity is None else self.capacity

    def init_state(self, layer, dtype):
        C = self.size(layer)
        zero = jnp.zeros((), jnp.int32)
        return SortedState(jnp.full((C,), _NEVER, jnp.int32), jnp.zeros((C,), jnp.int32),
                           jnp.zeros((C,), dtype), jnp.zeros((C,), jnp.int32), zero, zero)

    def step(self, layer, x, state):
        C, t = self.size(layer), state.step
        active = jnp.broadcast_to((x != 0)[None, :], layer.delay.shape).reshape(-1)
        arrival = jnp.where(active, t + layer.delay.reshape(-1), _NEVER).astype(jnp.int32)
        target = jnp.broadcast_to(jnp.arange(layer.out_features, dtype=jnp.int32)[:, None],
                                  layer.delay.shape).reshape(-1)
        value = (layer.weight * x[None, :]).reshape(-1)
        value = value.astype(jnp.result_type(value, state.value))
        all_arrival = jnp.concatenate([state.arrival, arrival])
        all_target = jnp.concatenate([state.target, target])
        all_value = jnp.concatenate([state.value.astype(value.dtype), value])
        all_emitted = jnp.concatenate([state.emitted, jnp.full(arrival.shape, t, jnp.int32)])
        empty = all_arrival == _NEVER
        # Stable sort: occupied first, by emission (oldest or newest first), then as queued.
        order_key = all_emitted if isinstance(self.policy, DropNewest) else -all_emitted
        order = jnp.lexsort((order_key, empty))
        keep, lost = order[:C], order[C:]
        dropped = jnp.sum(~empty[lost]).astype(jnp.int32)
        arrival, target = all_arrival[keep], all_target[keep]
        value, emitted = all_value[keep], all_emitted[keep]
        now = arrival == t
        y = jax.ops.segment_sum(jnp.where(now, value, 0), target,
                                num_segments=layer.out_features)
        arrival = jnp.where(now, _NEVER, arrival)
        return y, SortedState(arrival, target, value, emitted, t + 1, state.dropped + dropped)


def check_dropped(state: PyTree[Array], *, what: str = "state") -> int:
    """Total spikes dropped by the queues in a state PyTree; warns on the host if any.

    Call it on the state `snnx.run` returns (or any PyTree holding queue states): the
    queues count drops inside compiled code, this turns the count into a warning.

    **Arguments:**

    - `state`: a state PyTree (batched or not) containing `FIFOState`/`SortedState`/`RingState`.
    - `what`: how the warning names the state. Default "state".

    **Returns:**

    The total number of dropped events (0 if there are no queue states).
    """
    states = (RingState, FIFOState, SortedState)
    leaves = jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, states))
    total = sum(int(np.sum(np.asarray(s.dropped))) for s in leaves if isinstance(s, states))
    if total:
        warnings.warn(
            f"`{what}`: spike queues dropped {total} events (capacity too small for the "
            f"activity); raise the queue's `capacity`, or use `snnx.layers.RingBuffer()`, "
            f"which never drops.",
            stacklevel=2,
        )
    return total


def default_queue() -> AbstractQueue:
    """The queue a `DelayedLinear` gets with `queue=None`, chosen per backend.

    - CPU: `RingBuffer`, measured (bench/delays.py, 16x16 synapses, max delay 10-1000,
        activity 1-10%): it trains fastest or tied in every cell, since its all-steps form
        needs no scan, and never drops. `FIFO` is the one to choose for step-by-step
        inference at low activity (0.2-0.7x the ring's forward time at 1%, less memory);
        `SortedQueue` is 50-1000x slower on CPU.
    - GPU: `RingBuffer` (EventQueues: ring buffers are fastest on GPU for small
        simulations); a documented guess, not measured here.
    - TPU: `RingBuffer` too. EventQueues finds sort-based queues best on TPU, but a
        `SortedQueue` needs a capacity chosen for the activity (or drops), so it is never
        picked silently; pass `queue=snnx.layers.SortedQueue(capacity)` to use it.

    **Returns:**

    An `AbstractQueue`; every layer takes `queue=` to override it.
    """
    return RingBuffer()
