"""Leaky integrate-and-fire neuron."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_dt, shape_tuple
from ..kernels._abstract import AbstractFusedNeuron
from ..spikes import AbstractSurrogate, EscapeNoise
from ._abstract import AbstractContinuousNeuron
from ._dynamics import (
    Method,
    ResetMode,
    apply_reset,
    beta_to_tau,
    check_reset_delay,
    decay_and_gain,
    delayed_reset,
    from_beta_arguments,
    reset_membrane,
)
from ._params import AbstractParametrisedNeuron, log_parameter


class LIFState(NamedTuple):
    """State of an `LIF` population: the membrane potential `v`."""

    v: Array


class LIF(AbstractParametrisedNeuron, AbstractContinuousNeuron, AbstractFusedNeuron):
    r"""Leaky integrate-and-fire neuron (NIR `LIF` conventions).

    $$ \tau \frac{dv}{dt} = (v_\text{leak} - v) + r\, I(t) $$

    A spike is emitted when $v > v_\text{threshold}$, after which the membrane is reset:
    `"subtract"` lowers it by $v_\text{threshold} - v_\text{reset}$, `"to_value"` sets it to
    $v_\text{reset}$, `"none"` leaves it.

    In discrete time the input is held constant over each step of length `dt` and the decay
    is exact (`method="exact"`):

    $$ v_{t+1} = v_\text{leak} + \beta (v_t - v_\text{leak}) + (1 - \beta)\, r\, x_t,
       \qquad \beta = e^{-dt/\tau} $$

    then $s_{t+1} = H(v_{t+1} - v_\text{threshold})$ and the reset. `method="euler"` uses
    $\beta = 1 - dt/\tau$ instead (what snnTorch and Norse exporters assume).

    **Arguments:**

    - `tau`: membrane time constant, > 0 (same unit as `dt`). Scalar or per-neuron.
    - `r`: input resistance (gain). Default 1.
    - `v_leak`: resting potential. Default 0.
    - `v_threshold`: firing threshold. Default 1.
    - `v_reset`: reset potential. Default 0.
    - `dt`: the discrete time step, > 0. Default 1.
    - `reset_mode`: `"subtract"` (default), `"to_value"` or `"none"`.
    - `surrogate`: an `snnx.spikes.AbstractSurrogate`; default `FastSigmoid()`.
    - `method`: `"exact"` (default) or `"euler"` discretisation.
    - `detach_reset`: if True (default), no gradient flows through the reset term
        (Zenke & Vogels 2021 found this helps surrogate-gradient training).
    - `trainable`: names of parameters that learn, e.g. `("tau",)`; `True` for all. Default
        none (like snnTorch's `learn_beta=False`).
    - `reset_delay`: if True, a spike's subtractive reset is applied one step late, after
        the next decay, as snnTorch does by default (`reset_delay=True` of its `Leaky`):
        $v_{t+1} = \beta v_t + x_t - s_t \vartheta$ with $s_t = H(v_t - \vartheta)$ from the
        unreset membrane, which is also what the state (and `record=True`) then holds.
        Default False (NIR's semantics: the reset happens at the spike).

    Its all-steps form can run as one fused Pallas kernel
    (`snnx.run(..., neuron_scan=snnx.engine.PallasScan())`, opt-in) with every option
    above except the stochastic `EscapeNoise` surrogate, which keeps the XLA scan.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "tau": "log_tau",
        "r": "r",
        "v_leak": "v_leak",
        "v_threshold": "v_threshold",
        "v_reset": "v_reset",
    }

    log_tau: Float[Array, "*shape"]
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
    reset_delay: bool = eqx.field(static=True)

    def __init__(
        self,
        tau: Float[ArrayLike, "*shape"],
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
        reset_delay: bool = False,
    ):
        self._set_parameters(tau=tau, r=r, v_leak=v_leak, v_threshold=v_threshold, v_reset=v_reset)
        self._set_options(
            dt=dt, reset_mode=reset_mode, method=method, surrogate=surrogate,
            detach_reset=detach_reset, trainable=trainable,
        )
        self.reset_delay = check_reset_delay("LIF", reset_delay, self.reset_mode,
                                             self.surrogate)

    @classmethod
    def from_beta(
        cls,
        beta: Float[ArrayLike, "*shape"],
        v_threshold: Float[ArrayLike, "*shape"] = 1.0,
        *,
        dt: float = 1.0,
        **kwargs,
    ) -> "LIF":
        r"""An LIF whose step is $v_{t+1} = \beta v_t + x_t$, then spike and reset.

        This is Spyx's `LIF` exactly. snnTorch's `Leaky` applies its subtractive reset one
        step after the spike (its default `reset_delay=True`), where snnx resets in the same
        step as NIR's continuous-time semantics do: pass `reset_delay=True` to reproduce
        snnTorch's `Leaky` spike for spike (the default agrees on 89-95% of spikes).

        **Arguments:**

        - `beta`: decay per step, in (0, 1).
        - `v_threshold`: firing threshold. Default 1.
        - `dt`: the time step that `tau` is expressed in. Default 1.
        - `**kwargs`: any other `LIF` argument (`reset_mode`, `surrogate`, `trainable`...).

        **Returns:**

        An `LIF` with $\tau = -dt / \ln\beta$ and $r = 1/(1-\beta)$.
        """
        dt = check_dt("LIF.from_beta", dt)
        tau = beta_to_tau("LIF", beta, dt)
        r = 1.0 / (1.0 - np.asarray(beta, dtype=np.float64))
        fixed = {"tau": tau, "r": r, "v_leak": 0.0, "v_threshold": v_threshold}
        return cls(**from_beta_arguments("LIF", fixed, dict(kwargs, dt=dt)))

    tau = log_parameter("log_tau", "The membrane time constant.")

    @property
    def beta(self) -> Array:
        """The per-step decay factor."""
        return decay_and_gain(self.tau, self.dt, self.method)[0]

    def fused_supported(self) -> bool:
        return not isinstance(self.surrogate, EscapeNoise)

    def init_state(self, shape, dtype=jnp.float32) -> LIFState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return LIFState(jnp.broadcast_to(self.v_leak, shape).astype(dtype))

    def __call__(self, x, state: LIFState, *, key=None):
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        decay, gain = decay_and_gain(tau, self.dt, self.method)
        v = v_leak + decay * (state.v - v_leak) + gain * r * x
        if self.reset_delay:
            v = v - delayed_reset(state.v, threshold, v_reset)
        spikes = self.surrogate(v - threshold, key=key)
        if not self.reset_delay:
            v = apply_reset(v, spikes, self.reset_mode, threshold, v_reset, self.detach_reset)
        return spikes, LIFState(v)

    def vector_field(self, t, state: LIFState, x) -> LIFState:
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        return LIFState((v_leak - state.v + r * x) / tau)

    def spike_condition(self, state: LIFState) -> Array:
        return state.v - self._get("v_threshold")

    def reset(self, state: LIFState, spiked) -> LIFState:
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        return LIFState(reset_membrane(state.v, spiked, self.reset_mode, threshold, v_reset))
