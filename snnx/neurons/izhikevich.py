"""Izhikevich neuron (Izhikevich 2003)."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import shape_tuple
from ..spikes import AbstractSurrogate, FastSigmoid
from ._abstract import AbstractContinuousNeuron
from ._params import AbstractParametrisedNeuron


class IzhikevichState(NamedTuple):
    """State of an `Izhikevich` population: membrane `v` (mV) and recovery `u`."""

    v: Array
    u: Array


class Izhikevich(AbstractParametrisedNeuron, AbstractContinuousNeuron):
    r"""Izhikevich's simple model (2003), in mV and ms.

    $$ \frac{dv}{dt} = 0.04 v^2 + 5 v + 140 - u + I, \qquad
       \frac{du}{dt} = a (b v - u) $$

    with a spike when $v > v_\text{peak}$ (30 mV), after which $v \leftarrow c$,
    $u \leftarrow u + d$. The discrete step is forward Euler over `dt` (ms), both variables
    from the old state. The defaults are the regular-spiking (RS) cortical cell; intrinsically
    bursting is `c=-55, d=4`, chattering `c=-50, d=2`, fast spiking `a=0.1, d=2`.

    **Arguments:**

    - `a`, `b`, `c`, `d`: the model's four parameters (defaults 0.02, 0.2, -65, 8: RS).
    - `v_peak`: spike cut-off in mV. Default 30.
    - `dt`: step in ms, > 0. Default 0.5 (Izhikevich's own code uses two 0.5 ms steps).
    - `surrogate`: applied to $v - v_\text{peak}$; default `FastSigmoid(alpha=0.5)` to suit
        the mV scale.
    - `trainable`: parameters that learn.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "a": "a", "b": "b", "c": "c", "d": "d", "v_peak": "v_peak"
    }

    a: Float[Array, "*shape"]
    b: Float[Array, "*shape"]
    c: Float[Array, "*shape"]
    d: Float[Array, "*shape"]
    v_peak: Float[Array, "*shape"]
    surrogate: AbstractSurrogate
    dt: float = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        a: Float[ArrayLike, "*shape"] = 0.02,
        b: Float[ArrayLike, "*shape"] = 0.2,
        c: Float[ArrayLike, "*shape"] = -65.0,
        d: Float[ArrayLike, "*shape"] = 8.0,
        v_peak: Float[ArrayLike, "*shape"] = 30.0,
        *,
        dt: float = 0.5,
        surrogate: AbstractSurrogate | None = None,
        trainable=(),
    ):
        self._set_parameters(a=a, b=b, c=c, d=d, v_peak=v_peak)
        self._set_options(
            dt=dt, surrogate=FastSigmoid(alpha=0.5) if surrogate is None else surrogate,
            trainable=trainable,
        )

    def init_state(self, shape, dtype=jnp.float32) -> IzhikevichState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        v = jnp.broadcast_to(self.c, shape).astype(dtype)
        return IzhikevichState(v, (jnp.broadcast_to(self.b, shape) * v).astype(dtype))

    def vector_field(self, t, state: IzhikevichState, x) -> IzhikevichState:
        v, u = state
        dv = 0.04 * v**2 + 5.0 * v + 140.0 - u + x
        du = self._get("a") * (self._get("b") * v - u)
        return IzhikevichState(dv, du)

    def __call__(self, x, state: IzhikevichState, *, key=None):
        dv, du = self.vector_field(None, state, x)
        v = state.v + self.dt * dv
        u = state.u + self.dt * du
        spikes = self.surrogate(v - self._get("v_peak"), key=key)
        return spikes, self._jump(IzhikevichState(v, u), spikes)

    def _jump(self, state: IzhikevichState, s) -> IzhikevichState:
        v = state.v + jnp.asarray(s, state.v.dtype) * (self._get("c") - state.v)
        return IzhikevichState(v, state.u + s * self._get("d"))

    def spike_condition(self, state: IzhikevichState) -> Array:
        return state.v - self._get("v_peak")

    def reset(self, state: IzhikevichState, spiked) -> IzhikevichState:
        return self._jump(state, jnp.asarray(spiked, state.v.dtype))
