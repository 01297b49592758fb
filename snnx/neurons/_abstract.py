"""The neuron contract: discrete-time neurons, and those with a continuous-time form."""

import abc
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ..layers._abstract import AbstractStatefulLayer


class AbstractNeuron(AbstractStatefulLayer):
    """Base class of all neurons: one population stepped over one time step `dt`.

    A neuron acts on **one sample**; batch with `jax.vmap`. Its state is an explicit PyTree
    that the caller threads through time (`snnx.run` does this for you). Subclasses
    implement the discrete-time pair

    - `init_state(shape, dtype=jnp.float32)`: the resting state of a population of that
        shape (a neuron that only runs in float32 may leave `dtype` out);
    - `__call__(x, state, *, key=None) -> (output, new_state)`: advance one step, where `x`
        is the input current over the step and `output` is usually spikes in `{0., 1.}`.

    To run in continuous time too (`snnx.ode`, `snnx.eventprop`), subclass
    `snnx.AbstractContinuousNeuron` instead.
    """

    @abc.abstractmethod
    def init_state(self, shape: int | tuple[int, ...], dtype: Any = jnp.float32) -> PyTree[Array]:
        """Return the resting state of a population of the given shape (one sample)."""

    @abc.abstractmethod
    def __call__(
        self, x: ArrayLike, state: PyTree[Array], *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, PyTree[Array]]:
        """Advance one time step; return `(output, new_state)`."""


class AbstractContinuousNeuron(AbstractNeuron):
    """A neuron with a continuous-time form, as `snnx.ode` integrates it with diffrax.

    Besides the discrete step, subclasses implement the trio

    - `vector_field(t, state, x)`: $d(\\text{state})/dt$ between spikes, for input `x`;
    - `spike_condition(state)`: an array (one entry per neuron) that crosses zero upwards
        where a neuron spikes (a non-spiking readout returns `-inf`);
    - `reset(state, spiked)`: the jump applied to the state where the boolean `spiked` is
        True.

    As $dt \\to 0$ the discrete step and the integrated vector field agree.
    """

    @abc.abstractmethod
    def vector_field(self, t: float, state: PyTree[Array], x: ArrayLike) -> PyTree[Array]:
        """The time derivative of every state variable between spikes."""

    @abc.abstractmethod
    def spike_condition(self, state: PyTree[Array]) -> Array:
        """Crosses zero upwards at a spike, one entry per neuron."""

    @abc.abstractmethod
    def reset(self, state: PyTree[Array], spiked: Array) -> PyTree[Array]:
        """The state after the spikes in `spiked` (boolean, one per neuron)."""
