"""Unlayered, asynchronous execution of a feed-forward LIF network (Koopman et al. 2024)."""

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._checks import shape_tuple
from ..layers._abstract import AbstractAllSteps, AbstractStatefulLayer
from ..layers.sequential import Sequential
from ..neurons import LIF
from ..neurons._dynamics import apply_reset, decay_and_gain
from ._schedule import AbstractSchedule, Random
from ._structure import _as_list, _check_layers, _is_int, default_micro_steps

__all__ = ["Unlayered", "UnlayeredState", "default_micro_steps"]


class UnlayeredState(NamedTuple):
    """State of an `Unlayered` network for one sample: every neuron in one vector.

    Neurons are numbered layer by layer (the readout last); `N` of them (all but the
    readout) are *schedulable*: their spikes wait in a queue until a forward group
    delivers them.

    - `v`: membrane potentials of all neurons, `(n_total,)`.
    - `pending`: spikes fired and not yet delivered, `(n_total,)` (readout entries stay 0).
        After a time step this is what was carried over to the next step (zero in every
        run of the tests with the default `micro_steps`); after a run, what never arrived.
    - `pre_spike`: each neuron's membrane at its latest spike, before the reset (what
        `ByMembrane` ranks by).
    - `spikes`: spikes fired in the latest time step, `(n_total,)`, each 0 or 1 (a neuron
        fires at most once per step); zero for an `LI` readout.
    - `delivered`: the spikes each micro-step of the latest step delivered,
        `(micro_steps, N)`.
    - `readout`: the network's output after each micro-step of the latest step,
        `(micro_steps, n_out)` (the readout membrane, or the output spikes so far).
    - `step`: time steps taken.
    """

    v: Array
    pending: Array
    pre_spike: Array
    spikes: Array
    delivered: Array
    readout: Array
    step: Array


class _Population(eqx.Module):
    """Per-neuron constants of one layer's neurons, broadcast to `(n,)`."""

    decay: Array
    drive: Array  # gain * r: how much one unit of input current moves the membrane
    v_leak: Array
    threshold: Array | None
    v_reset: Array | None


class Unlayered(AbstractStatefulLayer, AbstractAllSteps):
    r"""A feed-forward LIF network run without layer synchronisation (Koopman et al. 2024).

    All neurons share one state; within each time step spikes travel through the network
    in *micro-steps* (the paper's forward steps) instead of layer by layer:

    1. Every membrane leaks, `v = v_leak + beta (v - v_leak)`, and receives its constant
        current: the input `W_1 x_t + b_1` for the first layer, the bias `b_l` for the
        others (times the neuron's input gain `(1 - beta) r`, as `snnx.LIF`).
        The first layer is evaluated: a neuron with `v > v_threshold` fires, is reset as
        its `LIF` says, and its spike joins the queue.
    2. Each of `micro_steps` micro-steps picks a *forward group*: the `group_size` queued
        spikes ranked highest by `schedule` (`Random()`, `ByMembrane()`), and delivers
        them all at once, `v += (1 - beta) r W s`. Every layer that current reached in
        this micro-step is then evaluated (the paper's rule: a neuron is evaluated when
        current reaches it); its new spikes join the queue. Current reaches layer `l+1`
        when a spike of layer `l` is delivered, and also in the micro-step after layer `l`
        was evaluated (the zero-valued delivery that carries the surrogate slope of its
        silent neurons, see below), so every layer is evaluated at least once per step.

    A neuron fires at most once per time step (the paper's refractoriness; it keeps
    integrating), so outputs and `state.spikes` are 0 or 1 per step. The output of a
    step is the readout after the last micro-step: an `LI` readout's membrane or an `LIF`
    output layer's spikes, as `snnx.Sequential` gives it, so `snnx.run`, `snnx.fit` and
    `snnx.evaluate` take an `Unlayered` network unchanged.

    **Layered equality.** With `group_size = N` every queued spike is delivered in the
    next micro-step, so layer `l` is evaluated exactly once per step, in micro-step
    `l - 1` (step 1 counting as micro-step 0), with all of its input: the run equals
    `snnx.run(network.to_sequential(), xs)` (spikes exactly, membranes and gradients up
    to float rounding; the bias is added before, not with, the spikes).

    With a single hidden layer and an `LI` readout, every hidden neuron gets all of its
    input at once and the linear readout sums the same spikes in any order, so the
    outputs at the end of each step equal the layered ones for every `group_size` (only
    `state.readout`, within the step, differs): asynchrony needs two spiking layers.

    **Gradients** are surrogate-gradient BPTT through a fixed-length `lax.scan` over
    micro-steps. The group choice carries no gradient. The surrogate derivative of an
    evaluation that did not fire is passed to the targets with the next micro-step (its
    value is zero, so nothing changes forward): without it silent neurons would get no
    gradient from above, and with it the gradients equal BPTT of the layered network at
    `group_size = N`.

    ```python
    seq = snnx.Sequential([eqx.nn.Linear(64, 128, key=k1), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(128, 64, key=k2), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(64, 10, key=k3), snnx.LI(tau=5.0)])
    net = snnx.asynchronous.Unlayered(seq, group_size=24, schedule=snnx.asynchronous.Random())
    ys, state = snnx.run(net, xs)          # (T, 10), like snnx.run(seq, xs)
    ```

    **Arguments:**

    - `model`: an `snnx.Sequential` (or a list of layers) alternating `eqx.nn.Linear` and
        neurons: `[Linear, LIF, Linear, LIF, ..., Linear, LI or LIF]`, at least one hidden
        `LIF` layer. Hidden neurons are `snnx.LIF` (any reset mode, `reset_delay=False`).
    - `group_size`: `F`, spikes delivered per micro-step, `1 <= F <= N` (`N` hidden
        neurons).
    - `schedule`: an `snnx.asynchronous.AbstractSchedule`. Default `Random()`.
    - `micro_steps`: micro-steps per time step, an int >= 1; default
        `default_micro_steps(sizes, group_size)`. Spikes still queued at the end of a step
        are delivered in the next one and counted in `state.pending` (fewer micro-steps
        than the default also give a warning).
    - `seed`: the seed of the schedule's keys when no key is passed. Default 0.

    **Raises:**

    `TypeError` for a layer kind that is not supported, `ValueError` for mismatched
    sizes or a `group_size`/`micro_steps` out of range.
    """

    layers: tuple[Any, ...]
    schedule: AbstractSchedule
    group_size: int = eqx.field(static=True)
    micro_steps: int = eqx.field(static=True)
    sizes: tuple[int, ...] = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)

    def __init__(
        self,
        model: Sequential | Sequence[Any],
        *,
        group_size: int,
        schedule: AbstractSchedule | None = None,
        micro_steps: int | None = None,
        seed: int = 0,
    ):
        layers = tuple(model.layers if isinstance(model, Sequential) else _as_list(model))
        self.sizes, self.n_in = _check_layers(layers)
        self.layers = layers
        n = sum(self.sizes[:-1])
        if not _is_int(group_size):
            raise TypeError(f"`group_size` must be an int (spikes per micro-step), got "
                            f"{group_size!r}.")
        if not 1 <= group_size <= n:
            raise ValueError(
                f"`group_size` must lie in [1, {n}] (the network has N={n} hidden neurons "
                f"whose spikes are scheduled), got {group_size}; use {n} to deliver every "
                f"queued spike at once."
            )
        self.group_size = int(group_size)
        schedule = Random() if schedule is None else schedule
        if not isinstance(schedule, AbstractSchedule):
            raise TypeError(
                f"`schedule` must be an `snnx.asynchronous.AbstractSchedule` such as "
                f"`Random()` or `ByMembrane()`, got {type(schedule).__name__}."
            )
        self.schedule = schedule
        enough = default_micro_steps(self.sizes, self.group_size)
        if micro_steps is None:
            micro_steps = enough
        if not _is_int(micro_steps) or micro_steps < 1:
            raise ValueError(f"`micro_steps` must be an int >= 1 or None (default {enough}), "
                             f"got {micro_steps!r}.")
        if micro_steps < enough:
            warnings.warn(
                f"`micro_steps={micro_steps}` is below the default {enough} "
                f"(`default_micro_steps`); spikes left in the queue at the end of a step are "
                f"delivered in the next step instead (counted in `state.pending`).",
                stacklevel=2,
            )
        self.micro_steps = int(micro_steps)
        if not _is_int(seed):
            raise TypeError(f"`seed` must be an int, got {seed!r}.")
        self.seed = int(seed)

    # --- structure -------------------------------------------------------------------

    @property
    def n_neurons(self) -> int:
        """`N`, the number of schedulable (hidden) neurons."""
        return sum(self.sizes[:-1])

    @property
    def n_total(self) -> int:
        """All neurons, readout included."""
        return sum(self.sizes)

    def to_sequential(self) -> Sequential:
        """The same layers as an `snnx.Sequential`: the layer-synchronous network."""
        return Sequential(self.layers)

    def block_weights(self) -> tuple[Array, Array]:
        """The network as one block matrix over all neurons, for inspection and tests.

        **Returns:**

        `(W, b)`: `W` of shape `(n_total, n_in + n_total)`, the weight from every input
        and neuron (columns: inputs first, then neurons in state order) to every neuron
        (rows); only the blocks below the diagonal of consecutive layers are nonzero.
        `b`, `(n_total,)`, the biases.
        """
        rows = self.n_total
        offsets = np.cumsum((0,) + self.sizes)
        W = jnp.zeros((rows, self.n_in + rows))
        b = []
        for i, lin in enumerate(self.layers[::2]):
            c0 = 0 if i == 0 else self.n_in + offsets[i - 1]
            W = W.at[offsets[i]:offsets[i + 1], c0:c0 + lin.weight.shape[1]].set(lin.weight)
            b.append(jnp.zeros(self.sizes[i]) if lin.bias is None else lin.bias)
        return W, jnp.concatenate(b)

    # --- the contract ------------------------------------------------------------------

    def init_state(self, shape, dtype=jnp.float32) -> UnlayeredState:
        """The resting state for one sample whose per-step input has `shape`.

        **Arguments:**

        - `shape`: `(n_in,)`.
        - `dtype`: the floating dtype. Default float32.

        **Returns:**

        An `UnlayeredState`.
        """
        shape = shape_tuple(shape)
        if shape != (self.n_in,):
            raise ValueError(f"Unlayered network expects inputs of shape ({self.n_in},) per "
                             f"step, got `shape={shape}`.")
        # the neurons' own resting states (as `snnx.Sequential.init_state` gives them)
        v = jnp.concatenate([neuron.init_state((n,), dtype).v
                             for n, neuron in zip(self.sizes, self.layers[1::2])])
        zeros = jnp.zeros(self.n_total, dtype)
        return UnlayeredState(
            v, zeros, zeros, zeros,
            jnp.zeros((self.micro_steps, self.n_neurons), dtype),
            jnp.zeros((self.micro_steps, self.sizes[-1]), dtype),
            jnp.zeros((), jnp.int32),
        )

    def __call__(
        self, x: Array, state: UnlayeredState, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, UnlayeredState]:
        """One time step: leak, input, then `micro_steps` forward groups.

        **Arguments:**

        - `x`: one step's input, `(n_in,)`.
        - `state`: an `UnlayeredState`.
        - `key`: optional PRNG key for the schedule (see `Random`).

        **Returns:**

        `(output, new_state)`, the output as the equivalent `snnx.Sequential` gives it.
        """
        return self._step(self.layers[0](x), state, key)

    def all_steps(self, xs, state, *, keys, context):
        """The input projection for all steps at once (one matmul), then a scan of steps."""
        currents = jax.vmap(self.layers[0])(xs)
        # the engine's scan of a one-step call, here the step after the input projection
        return context.scan(lambda c, s, *, key: self._step(c, s, key), currents, state, keys)

    # --- one time step -----------------------------------------------------------------

    def _populations(self) -> list[_Population]:
        pops = []
        for n, neuron in zip(self.sizes, self.layers[1::2]):
            decay, gain = decay_and_gain(neuron._get("tau"), neuron.dt, neuron.method)

            def full(a):
                return jnp.broadcast_to(a, (n,))

            spiking = isinstance(neuron, LIF)
            pops.append(_Population(
                full(decay), full(gain * neuron._get("r")), full(neuron._get("v_leak")),
                full(neuron._get("v_threshold")) if spiking else None,
                full(neuron._get("v_reset")) if spiking else None,
            ))
        return pops

    def _evaluate(self, layer, pop, v, mask):
        """Threshold test of one layer where `mask`; returns `(v, s)` with s = fired."""
        neuron = self.layers[2 * layer + 1]
        s = neuron.surrogate(v - pop.threshold) * mask
        v = apply_reset(v, s, neuron.reset_mode, pop.threshold, pop.v_reset,
                        neuron.detach_reset)
        return v, s

    def _step(self, current, state: UnlayeredState, key):
        sg = jax.lax.stop_gradient
        L, H = len(self.sizes), len(self.sizes) - 1
        bounds = np.cumsum((0,) + self.sizes)
        pops = self._populations()
        lins = self.layers[::2]

        def split(a):
            return [a[bounds[i]:bounds[i + 1]] for i in range(L)]

        # the step's dtype: the state's, widened by float64 parameters or inputs (a scan
        # carry keeps one dtype)
        dtype = jnp.result_type(state.v, current, *(p.decay for p in pops),
                                *(lin.weight for lin in lins))
        vs = split(state.v.astype(dtype))
        pend = split(state.pending.astype(dtype))[:H]
        pre = split(state.pre_spike.astype(dtype))[:H]
        for i, p in enumerate(pops):
            inp = current if i == 0 else lins[i].bias
            vs[i] = (p.v_leak + p.decay * (vs[i] - p.v_leak)).astype(dtype)
            if inp is not None:
                vs[i] = (vs[i] + p.drive * inp).astype(dtype)
        fired = [jnp.zeros_like(v) for v in vs]
        ghost = [jnp.zeros_like(v) for v in vs[:H]]
        # whether each hidden layer was evaluated in the latest micro-step: its zero-valued
        # surrogate delivery then reaches the next layer in the next micro-step
        evaluated = [jnp.zeros((), dtype) for _ in range(H)]

        def evaluate(i, vs, pend, pre, fired, ghost, mask):
            v_before = vs[i]
            vs[i], s = self._evaluate(i, pops[i], v_before, mask * (1 - sg(fired[i])))
            fired[i] = fired[i] + s
            if i < H:
                spiked = sg(s)
                pend[i] = pend[i] + s * spiked  # the spikes; their value and gradient
                ghost[i] = s * (1 - spiked)  # value 0: the surrogate slope of the non-spikes
                pre[i] = jnp.where(spiked > 0, sg(v_before), pre[i])

        evaluate(0, vs, pend, pre, fired, ghost, jnp.ones((), dtype))
        evaluated[0] = jnp.ones((), dtype)
        if key is None:
            key = jax.random.fold_in(jax.random.key(self.seed), state.step)
        F, N = self.group_size, self.n_neurons

        def micro(carry, k):
            vs, pend, pre, fired, ghost, evaluated = (list(c) for c in carry)
            queue = jnp.concatenate(pend)
            queued = sg(queue) > 0
            if F < N:
                prio = self.schedule.priority(sg(jnp.concatenate(pre)),
                                              jax.random.fold_in(key, k))
                _, idx = jax.lax.top_k(jnp.where(queued, prio, -jnp.inf), F)
                group = jnp.zeros(N, dtype).at[idx].set(1) * queued
            else:
                group = queued.astype(dtype)
            sent = group * queue
            pend = split(jnp.concatenate([queue - sent, jnp.zeros(self.sizes[-1], dtype)]))[:H]
            d = split(jnp.concatenate([sent, jnp.zeros(self.sizes[-1], dtype)]))[:H]
            reached = []
            for i in range(H):
                current_in = lins[i + 1].weight @ (d[i] + ghost[i])
                vs[i + 1] = (vs[i + 1] + pops[i + 1].drive * current_in).astype(dtype)
                got = (jnp.sum(sg(d[i])) > 0).astype(dtype)
                reached.append(jnp.maximum(got, evaluated[i]))
            ghost = [jnp.zeros_like(g) for g in ghost]
            evaluated = [jnp.zeros((), dtype) for _ in range(H)]
            for i in range(H):
                if pops[i + 1].threshold is not None:
                    evaluate(i + 1, vs, pend, pre, fired, ghost, reached[i])
                    if i + 1 < H:
                        evaluated[i + 1] = reached[i]
            out = vs[-1] if pops[-1].threshold is None else fired[-1]
            return tuple(map(tuple, (vs, pend, pre, fired, ghost, evaluated))), (sent, out)

        carry = tuple(map(tuple, (vs, pend, pre, fired, ghost, evaluated)))
        carry, (delivered, readout) = jax.lax.scan(micro, carry, jnp.arange(self.micro_steps))
        vs, pend, pre, fired, _, _ = carry
        zero_out = [jnp.zeros(self.sizes[-1], dtype)]
        y = vs[-1] if pops[-1].threshold is None else fired[-1]
        return y, UnlayeredState(
            jnp.concatenate(vs), jnp.concatenate(list(pend) + zero_out),
            jnp.concatenate(list(pre) + zero_out), jnp.concatenate(fired),
            delivered.astype(dtype), readout.astype(dtype), state.step + 1,
        )
