"""Schedules: which pending spikes an `Unlayered` network delivers in each micro-step."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["AbstractSchedule", "Random", "ByMembrane"]


class AbstractSchedule(eqx.Module):
    """Base class of forward-group schedules (Koopman et al. 2024, "spike schedulers").

    In every micro-step an `snnx.asynchronous.Unlayered` network delivers the spikes of
    at most `group_size` neurons from its queue of neurons that have fired but whose spike
    has not reached its targets yet. A schedule gives every queued neuron a priority; the
    `group_size` highest are delivered (ties go to the lower index, as `jax.lax.top_k`).

    Subclasses implement `priority`, which receives a fresh PRNG key for every micro-step
    (from the key given to `snnx.run`, or from the network's `seed` without one).
    """

    @abc.abstractmethod
    def priority(
        self, pre_spike: Float[Array, " neurons"], key: PRNGKeyArray
    ) -> Float[Array, " neurons"]:
        """One priority per schedulable neuron; higher is delivered first.

        **Arguments:**

        - `pre_spike`: each neuron's membrane potential at its latest spike, before the
            reset (no gradient flows through it).
        - `key`: a PRNG key for this micro-step (a deterministic schedule ignores it).

        **Returns:**

        An array of the same shape as `pre_spike`.
        """


class Random(AbstractSchedule):
    """Queued spikes are delivered in a uniformly random order (the paper's "random").

    Every micro-step draws fresh uniform priorities, so the forward group is a uniform
    random subset of `min(group_size, queued)` queued neurons.

    Micro-step `k` of a time step draws from `fold_in(step_key, k)`, where `step_key` is
    the step's key from `snnx.run(..., key=...)` or, without one (`snnx.fit` without
    `stochastic=True`), `fold_in(key(seed), t)` from the network's `seed` and the time
    step `t`: then the order is the same for every sample.
    """

    def priority(self, pre_spike, key):
        return jax.random.uniform(key, pre_spike.shape, pre_spike.dtype)


class ByMembrane(AbstractSchedule):
    """Queued spikes of the neurons that fired with the highest membrane go first.

    The paper's "momentum" scheduler: the priority of a queued neuron is its membrane
    potential at the moment it fired (before the reset), so the most strongly driven
    neurons reach their targets first. Deterministic; ties go to the lower index.
    """

    def priority(self, pre_spike, key):
        return jnp.asarray(pre_spike)
