"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005)."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import shape_tuple
from ..spikes import AbstractSurrogate, FastSigmoid
from ._abstract import AbstractContinuousNeuron
from ._params import AbstractParametrisedNeuron


class AdExState(NamedTuple):
    """State of an `AdEx` population: membrane `v` (mV) and adaptation current `w` (pA)."""

    v: Array
    w: Array


class AdEx(AbstractParametrisedNeuron, AbstractContinuousNeuron):
    r"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005).

    Units: mV, ms, pF, nS, pA (these are consistent: nS·mV = pA, pF·mV/ms = pA).

    $$ C \frac{dv}{dt} = -g_L (v - E_L) + g_L \Delta_T e^{(v - V_T)/\Delta_T} - w + I, \qquad
       \tau_w \frac{dw}{dt} = a (v - E_L) - w $$

    with a spike when $v > V_\text{peak}$, then $v \leftarrow V_r$, $w \leftarrow w + b$.
    The exponent is capped at its value at $V_\text{peak}$ so that the field stays finite.
    The discrete step is forward Euler. Defaults are Brette & Gerstner's cortical cell.

    **Arguments:**

    - `c_m` (281 pF), `g_l` (30 nS), `e_l` (-70.6 mV), `v_t` (-50.4 mV), `delta_t` (2 mV),
        `tau_w` (144 ms), `a` (4 nS), `b` (80.5 pA), `v_reset` (-70.6 mV), `v_peak` (20 mV).
    - `dt`: step in ms, > 0. Default 0.1.
    - `surrogate`: applied to $v - V_\text{peak}$; default `FastSigmoid(alpha=0.5)`.
    - `trainable`: parameters that learn.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "c_m": "log_c_m", "g_l": "g_l", "e_l": "e_l", "v_t": "v_t", "delta_t": "log_delta_t",
        "tau_w": "log_tau_w", "a": "a", "b": "b", "v_reset": "v_reset", "v_peak": "v_peak",
    }

    log_c_m: Float[Array, "*shape"]
    g_l: Float[Array, "*shape"]
    e_l: Float[Array, "*shape"]
    v_t: Float[Array, "*shape"]
    log_delta_t: Float[Array, "*shape"]
    log_tau_w: Float[Array, "*shape"]
    a: Float[Array, "*shape"]
    b: Float[Array, "*shape"]
    v_reset: Float[Array, "*shape"]
    v_peak: Float[Array, "*shape"]
    surrogate: AbstractSurrogate
    dt: float = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        c_m: Float[ArrayLike, "*shape"] = 281.0,
        g_l: Float[ArrayLike, "*shape"] = 30.0,
        e_l: Float[ArrayLike, "*shape"] = -70.6,
        v_t: Float[ArrayLike, "*shape"] = -50.4,
        delta_t: Float[ArrayLike, "*shape"] = 2.0,
        tau_w: Float[ArrayLike, "*shape"] = 144.0,
        a: Float[ArrayLike, "*shape"] = 4.0,
        b: Float[ArrayLike, "*shape"] = 80.5,
        v_reset: Float[ArrayLike, "*shape"] = -70.6,
        v_peak: Float[ArrayLike, "*shape"] = 20.0,
        *,
        dt: float = 0.1,
        surrogate: AbstractSurrogate | None = None,
        trainable=(),
    ):
        self._set_parameters(
            c_m=c_m, g_l=g_l, e_l=e_l, v_t=v_t, delta_t=delta_t, tau_w=tau_w, a=a, b=b,
            v_reset=v_reset, v_peak=v_peak,
        )
        self._set_options(
            dt=dt, surrogate=FastSigmoid(alpha=0.5) if surrogate is None else surrogate,
            trainable=trainable,
        )

    def init_state(self, shape, dtype=jnp.float32) -> AdExState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return AdExState(jnp.broadcast_to(self.e_l, shape).astype(dtype), jnp.zeros(shape, dtype))

    def vector_field(self, t, state: AdExState, x) -> AdExState:
        v, w = state
        g_l, e_l, v_t = self._get("g_l"), self._get("e_l"), self._get("v_t")
        delta_t = self._get("delta_t")
        exponent = jnp.minimum((v - v_t) / delta_t, (self._get("v_peak") - v_t) / delta_t)
        dv = (-g_l * (v - e_l) + g_l * delta_t * jnp.exp(exponent) - w + x) / self._get("c_m")
        dw = (self._get("a") * (v - e_l) - w) / self._get("tau_w")
        return AdExState(dv, dw)

    def __call__(self, x, state: AdExState, *, key=None):
        dv, dw = self.vector_field(None, state, x)
        v = state.v + self.dt * dv
        w = state.w + self.dt * dw
        spikes = self.surrogate(v - self._get("v_peak"), key=key)
        return spikes, self._jump(AdExState(v, w), spikes)

    def _jump(self, state: AdExState, s) -> AdExState:
        v = state.v + s * (self._get("v_reset") - state.v)
        return AdExState(v, state.w + s * self._get("b"))

    def spike_condition(self, state: AdExState) -> Array:
        return state.v - self._get("v_peak")

    def reset(self, state: AdExState, spiked) -> AdExState:
        return self._jump(state, jnp.asarray(spiked, state.v.dtype))
