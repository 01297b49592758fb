"""Integrate-and-fire neuron (no leak)."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import shape_tuple
from ..spikes import AbstractSurrogate
from ._abstract import AbstractContinuousNeuron
from ._dynamics import ResetMode, apply_reset, reset_membrane
from ._params import AbstractParametrisedNeuron


class IFState(NamedTuple):
    """State of an `IF` population: the membrane potential `v`."""

    v: Array


class IF(AbstractParametrisedNeuron, AbstractContinuousNeuron):
    r"""Integrate-and-fire neuron (NIR `IF` conventions).

    $$ \frac{dv}{dt} = r\, I(t) $$

    spiking when $v > v_\text{threshold}$. In discrete time (exact for input held over the
    step): $v_{t+1} = v_t + dt\, r\, x_t$. With the defaults (`dt=1`, `r=1`) this is Spyx's
    and snnTorch's IF: $v_{t+1} = v_t + x_t$.

    **Arguments:**

    - `r`: input resistance (gain). Default 1.
    - `v_threshold`: firing threshold. Default 1.
    - `v_reset`: reset potential. Default 0.
    - `dt`, `reset_mode`, `surrogate`, `detach_reset`, `trainable`: as for `snnx.LIF`.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "r": "r",
        "v_threshold": "v_threshold",
        "v_reset": "v_reset",
    }

    r: Float[Array, "*shape"]
    v_threshold: Float[Array, "*shape"]
    v_reset: Float[Array, "*shape"]
    surrogate: AbstractSurrogate
    dt: float = eqx.field(static=True)
    reset_mode: ResetMode = eqx.field(static=True)
    detach_reset: bool = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        r: Float[ArrayLike, "*shape"] = 1.0,
        v_threshold: Float[ArrayLike, "*shape"] = 1.0,
        v_reset: Float[ArrayLike, "*shape"] = 0.0,
        *,
        dt: float = 1.0,
        reset_mode: ResetMode = "subtract",
        surrogate: AbstractSurrogate | None = None,
        detach_reset: bool = True,
        trainable=(),
    ):
        self._set_parameters(r=r, v_threshold=v_threshold, v_reset=v_reset)
        self._set_options(
            dt=dt, reset_mode=reset_mode, surrogate=surrogate, detach_reset=detach_reset,
            trainable=trainable,
        )

    def init_state(self, shape, dtype=jnp.float32) -> IFState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return IFState(jnp.zeros(shape, dtype))

    def __call__(self, x, state: IFState, *, key=None):
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        v = state.v + (self.dt * self._get("r")) * x
        spikes = self.surrogate(v - threshold, key=key)
        v = apply_reset(v, spikes, self.reset_mode, threshold, v_reset, self.detach_reset)
        return spikes, IFState(v)

    def vector_field(self, t, state: IFState, x) -> IFState:
        return IFState(jnp.broadcast_to(self._get("r") * x, jnp.shape(state.v)))

    def spike_condition(self, state: IFState) -> Array:
        return state.v - self._get("v_threshold")

    def reset(self, state: IFState, spiked) -> IFState:
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        return IFState(reset_membrane(state.v, spiked, self.reset_mode, threshold, v_reset))
