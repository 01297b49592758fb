"""Integrator: the non-leaky, non-spiking neuron (NIR `I`)."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import shape_tuple
from ._abstract import AbstractContinuousNeuron
from ._params import AbstractParametrisedNeuron


class IntegratorState(NamedTuple):
    """State of an `Integrator` population: the integrated value `v`."""

    v: Array


class Integrator(AbstractParametrisedNeuron, AbstractContinuousNeuron):
    r"""Integrator (NIR `I`): a non-spiking neuron whose output is its integrated input.

    $$ \frac{dv}{dt} = r\, I(t) $$

    In discrete time, exact for input held over the step: $v_{t+1} = v_t + dt\, r\, x_t$.
    The output of a step is the new value $v_{t+1}$. `v` starts at 0.

    **Arguments:**

    - `r`: gain (resistance). Default 1. Scalar or per-neuron.
    - `dt`: the discrete time step, > 0. Default 1.
    - `trainable`: names of parameters that learn (`("r",)` or `True`). Default none.
    """

    _parameters: ClassVar[dict[str, str]] = {"r": "r"}

    r: Float[Array, "*shape"]
    dt: float = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(self, r: Float[ArrayLike, "*shape"] = 1.0, *, dt: float = 1.0, trainable=()):
        self._set_parameters(r=r)
        self._set_options(dt=dt, trainable=trainable)

    def init_state(self, shape, dtype=jnp.float32) -> IntegratorState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return IntegratorState(jnp.zeros(shape, dtype))

    def __call__(self, x, state: IntegratorState, *, key=None):
        v = state.v + (self.dt * self._get("r")) * x
        return v, IntegratorState(v)

    def vector_field(self, t, state: IntegratorState, x) -> IntegratorState:
        return IntegratorState(jnp.broadcast_to(self._get("r") * x, jnp.shape(state.v)))

    def spike_condition(self, state: IntegratorState) -> Array:
        # Never spikes: the condition never crosses zero.
        return jnp.full_like(state.v, -jnp.inf)

    def reset(self, state: IntegratorState, spiked) -> IntegratorState:
        return state
