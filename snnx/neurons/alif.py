"""Adaptive-threshold leaky integrate-and-fire neuron (Bellec et al. 2018, LSNN)."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import shape_tuple
from ..spikes import AbstractSurrogate
from ._abstract import AbstractContinuousNeuron
from ._dynamics import Method, ResetMode, apply_reset, decay_and_gain, reset_membrane
from ._params import AbstractParametrisedNeuron, log_parameter


class ALIFState(NamedTuple):
    """State of an `ALIF` population: membrane `v` and threshold adaptation `a`."""

    v: Array
    a: Array


class ALIF(AbstractParametrisedNeuron, AbstractContinuousNeuron):
    r"""LIF with a spike-triggered adaptive threshold (Bellec et al. 2018).

    $$ \tau \frac{dv}{dt} = (v_\text{leak} - v) + r I(t), \qquad
       \tau_a \frac{da}{dt} = -a, \qquad
       \vartheta(t) = v_\text{threshold} + b\, a(t) $$

    A spike is emitted when $v > \vartheta$; then $a \mathrel{+}= 1$ and the membrane is reset
    (`"subtract"` lowers it by $\vartheta - v_\text{reset}$). Each step: decay $a$, update
    $v$ (exactly, as `snnx.LIF`), spike against the adapted threshold, reset, add the spike
    to $a$.

    **Arguments:**

    - `tau`: membrane time constant, > 0. `tau_adapt`: adaptation time constant, > 0.
    - `adapt_strength`: $b$, threshold increase per unit adaptation. Default 1.8 (LSNN).
    - `r`, `v_leak`, `v_threshold`, `v_reset`, `dt`, `reset_mode`, `surrogate`, `method`,
        `detach_reset`, `trainable`: as for `snnx.LIF`.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "tau": "log_tau",
        "tau_adapt": "log_tau_adapt",
        "adapt_strength": "adapt_strength",
        "r": "r",
        "v_leak": "v_leak",
        "v_threshold": "v_threshold",
        "v_reset": "v_reset",
    }

    log_tau: Float[Array, "*shape"]
    log_tau_adapt: Float[Array, "*shape"]
    adapt_strength: Float[Array, "*shape"]
    r: Float[Array, "*shape"]
    v_leak: Float[Array, "*shape"]
    v_threshold: Float[Array, "*shape"]
    v_reset: Float[Array, "*shape"]
    surrogate: AbstractSurrogate
    dt: float = eqx.field(static=True)
    reset_mode: ResetMode = eqx.field(static=True)
    method: Method = eqx.field(static=True)
    detach_reset: bool = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        tau: Float[ArrayLike, "*shape"],
        tau_adapt: Float[ArrayLike, "*shape"],
        adapt_strength: Float[ArrayLike, "*shape"] = 1.8,
        r: Float[ArrayLike, "*shape"] = 1.0,
        v_leak: Float[ArrayLike, "*shape"] = 0.0,
        v_threshold: Float[ArrayLike, "*shape"] = 1.0,
        v_reset: Float[ArrayLike, "*shape"] = 0.0,
        *,
        dt: float = 1.0,
        reset_mode: ResetMode = "subtract",
        surrogate: AbstractSurrogate | None = None,
        method: Method = "exact",
        detach_reset: bool = True,
        trainable=(),
    ):
        self._set_parameters(
            tau=tau, tau_adapt=tau_adapt, adapt_strength=adapt_strength, r=r, v_leak=v_leak,
            v_threshold=v_threshold, v_reset=v_reset,
        )
        self._set_options(
            dt=dt, reset_mode=reset_mode, method=method, surrogate=surrogate,
            detach_reset=detach_reset, trainable=trainable,
        )

    tau = log_parameter("log_tau", "The membrane time constant.")
    tau_adapt = log_parameter("log_tau_adapt", "The adaptation time constant.")

    def init_state(self, shape, dtype=jnp.float32) -> ALIFState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return ALIFState(
            jnp.broadcast_to(self.v_leak, shape).astype(dtype), jnp.zeros(shape, dtype)
        )

    def __call__(self, x, state: ALIFState, *, key=None):
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        v_reset = self._get("v_reset")
        decay, gain = decay_and_gain(tau, self.dt, self.method)
        decay_a, _ = decay_and_gain(self._get("tau_adapt"), self.dt, self.method)
        a = decay_a * state.a
        threshold = self._get("v_threshold") + self._get("adapt_strength") * a
        v = v_leak + decay * (state.v - v_leak) + gain * r * x
        spikes = self.surrogate(v - threshold, key=key)
        v = apply_reset(v, spikes, self.reset_mode, threshold, v_reset, self.detach_reset)
        return spikes, ALIFState(v, a + spikes)

    def vector_field(self, t, state: ALIFState, x) -> ALIFState:
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        return ALIFState((v_leak - state.v + r * x) / tau, -state.a / self._get("tau_adapt"))

    def spike_condition(self, state: ALIFState) -> Array:
        return state.v - (self._get("v_threshold") + self._get("adapt_strength") * state.a)

    def reset(self, state: ALIFState, spiked) -> ALIFState:
        s = jnp.asarray(spiked, state.v.dtype)
        threshold = self._get("v_threshold") + self._get("adapt_strength") * state.a
        v = reset_membrane(state.v, s, self.reset_mode, threshold, self._get("v_reset"))
        return ALIFState(v, state.a + s)
