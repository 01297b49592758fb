"""Current-based LIF neurons: a synaptic current filter in front of the membrane."""

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
    check_reset_delay,
    delayed_reset,
    from_beta_arguments,
    reset_membrane,
)
from ._params import AbstractParametrisedNeuron, log_parameter


class CuBaState(NamedTuple):
    """State of a current-based population: synaptic current `i`, membrane `v`."""

    i: Array
    v: Array


def _cuba_step(neuron, x, state: CuBaState) -> CuBaState:
    r"""Advance the linear synapse-membrane system by one step (no spike, no reset).

    Exact (`method="exact"`, input held over the step), with $u = v - v_\text{leak}$,
    $\alpha = e^{-dt/\tau_s}$, $\beta = e^{-dt/\tau_m}$:

    $$ i' = \alpha i + (1-\alpha) w x, \qquad
       u' = \beta u + r \kappa i + r w x (1 - \beta - \kappa), \qquad
       \kappa = \frac{\tau_s (\alpha - \beta)}{\tau_s - \tau_m} $$

    ($\kappa = (dt/\tau) e^{-dt/\tau}$ when $\tau_s = \tau_m$). `method="euler"` is the
    semi-implicit Euler step of snnTorch's `Synaptic`: the current first, then the membrane
    driven by the new current.
    """
    tau_syn, tau_mem = neuron._get("tau_syn"), neuron._get("tau_mem")
    r, v_leak, w_in = neuron._get("r"), neuron._get("v_leak"), neuron._get("w_in")
    dt = neuron.dt
    drive = w_in * x
    if neuron.method == "euler":
        i = state.i + (dt / tau_syn) * (drive - state.i)
        v = state.v + (dt / tau_mem) * (v_leak - state.v + r * i)
        return CuBaState(i, v)
    alpha = jnp.exp(-dt / tau_syn)
    beta = jnp.exp(-dt / tau_mem)
    diff = tau_syn - tau_mem
    same = jnp.abs(diff) <= 1e-6 * tau_mem
    kappa = jnp.where(
        same, (dt / tau_mem) * beta, tau_syn * (alpha - beta) / jnp.where(same, 1.0, diff)
    )
    i = alpha * state.i + (1.0 - alpha) * drive
    u = beta * (state.v - v_leak) + r * kappa * state.i + r * drive * (1.0 - beta - kappa)
    return CuBaState(i, v_leak + u)


def _cuba_vector_field(neuron, state: CuBaState, x) -> CuBaState:
    tau_syn, tau_mem = neuron._get("tau_syn"), neuron._get("tau_mem")
    r, v_leak, w_in = neuron._get("r"), neuron._get("v_leak"), neuron._get("w_in")
    di = (w_in * x - state.i) / tau_syn
    dv = (v_leak - state.v + r * state.i) / tau_mem
    return CuBaState(jnp.broadcast_to(di, jnp.shape(state.i)), dv)


def _betas_to_taus(cls, alpha, beta, dt):
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    for name, val in (("alpha", a), ("beta", b)):
        if not np.all((val > 0) & (val < 1)):
            raise ValueError(
                f"{cls}.from_beta `{name}` must lie strictly between 0 and 1, got {val}."
            )
    return dt / (1.0 - a), dt / (1.0 - b)


class CuBaLIF(AbstractParametrisedNeuron, AbstractContinuousNeuron, AbstractFusedNeuron):
    r"""Current-based leaky integrate-and-fire neuron (NIR `CubaLIF`).

    $$ \tau_s \frac{di}{dt} = -i + w_\text{in} I(t), \qquad
       \tau_m \frac{dv}{dt} = (v_\text{leak} - v) + r\, i $$

    spiking when $v > v_\text{threshold}$, then reset like `snnx.LIF`. A unit input impulse
    gives the classic two-exponential (difference of exponentials) membrane response. The
    discrete step is exact for input held over each step (see `_cuba_step`).

    **Arguments:**

    - `tau_syn`, `tau_mem`: synaptic and membrane time constants, > 0.
    - `r`, `v_leak`, `v_threshold`, `v_reset`: as for `snnx.LIF`.
    - `w_in`: input weight of the synapse. Default 1.
    - `dt`, `reset_mode`, `surrogate`, `method`, `detach_reset`, `trainable`,
        `reset_delay`: as for `snnx.LIF` (`reset_delay=True` reproduces snnTorch's
        `Synaptic`, whose default subtracts the threshold one step late).

    Its all-steps form can run as one fused Pallas kernel (opt-in, see `snnx.LIF`), except
    with the stochastic `EscapeNoise` surrogate.
    """

    _parameters: ClassVar[dict[str, str]] = {
        "tau_syn": "log_tau_syn",
        "tau_mem": "log_tau_mem",
        "r": "r",
        "v_leak": "v_leak",
        "v_threshold": "v_threshold",
        "v_reset": "v_reset",
        "w_in": "w_in",
    }

    log_tau_syn: Float[Array, "*shape"]
    log_tau_mem: Float[Array, "*shape"]
    r: Float[Array, "*shape"]
    v_leak: Float[Array, "*shape"]
    v_threshold: Float[Array, "*shape"]
    v_reset: Float[Array, "*shape"]
    w_in: Float[Array, "*shape"]
    surrogate: AbstractSurrogate
    dt: float = eqx.field(static=True)
    reset_mode: ResetMode = eqx.field(static=True)
    method: Method = eqx.field(static=True)
    detach_reset: bool = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)
    reset_delay: bool = eqx.field(static=True)

    def __init__(
        self,
        tau_syn: Float[ArrayLike, "*shape"],
        tau_mem: Float[ArrayLike, "*shape"],
        r: Float[ArrayLike, "*shape"] = 1.0,
        v_leak: Float[ArrayLike, "*shape"] = 0.0,
        v_threshold: Float[ArrayLike, "*shape"] = 1.0,
        v_reset: Float[ArrayLike, "*shape"] = 0.0,
        w_in: Float[ArrayLike, "*shape"] = 1.0,
        *,
        dt: float = 1.0,
        reset_mode: ResetMode = "subtract",
        surrogate: AbstractSurrogate | None = None,
        method: Method = "exact",
        detach_reset: bool = True,
        trainable=(),
        reset_delay: bool = False,
    ):
        self._set_parameters(
            tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, v_threshold=v_threshold,
            v_reset=v_reset, w_in=w_in,
        )
        self._set_options(
            dt=dt, reset_mode=reset_mode, method=method, surrogate=surrogate,
            detach_reset=detach_reset, trainable=trainable,
        )
        self.reset_delay = check_reset_delay("CuBaLIF", reset_delay, self.reset_mode,
                                             self.surrogate)

    @classmethod
    def from_beta(cls, alpha, beta, v_threshold=1.0, *, dt: float = 1.0, **kwargs) -> "CuBaLIF":
        r"""A CuBaLIF stepping exactly like snnTorch's `Synaptic`:
        $i_{t+1} = \alpha i_t + x_t$, $v_{t+1} = \beta v_t + i_{t+1}$.

        This uses `method="euler"` with $\tau_s = dt/(1-\alpha)$, $\tau_m = dt/(1-\beta)$,
        $w_\text{in} = 1/(1-\alpha)$, $r = 1/(1-\beta)$: the values snnTorch writes to NIR.

        **Arguments:**

        - `alpha`, `beta`: synaptic and membrane decay per step, in (0, 1).
        - `v_threshold`: threshold (default 1). `dt`: time unit (default 1).
        - `**kwargs`: other `CuBaLIF` arguments (`v_reset`, `reset_mode`, `surrogate`...);
            `reset_delay=True` reproduces snnTorch's `Synaptic` spike for spike (its default
            subtracts the threshold one step after the spike).

        **Returns:**

        A `CuBaLIF`.
        """
        dt = check_dt("CuBaLIF.from_beta", dt)
        tau_syn, tau_mem = _betas_to_taus("CuBaLIF", alpha, beta, dt)
        kwargs.setdefault("method", "euler")
        fixed = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": tau_mem / dt, "v_leak": 0.0,
                 "v_threshold": v_threshold, "w_in": tau_syn / dt}
        return cls(**from_beta_arguments("CuBaLIF", fixed, dict(kwargs, dt=dt)))

    tau_syn = log_parameter("log_tau_syn", "The synaptic time constant.")
    tau_mem = log_parameter("log_tau_mem", "The membrane time constant.")

    def fused_supported(self) -> bool:
        return not isinstance(self.surrogate, EscapeNoise)

    def init_state(self, shape, dtype=jnp.float32) -> CuBaState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return CuBaState(
            jnp.zeros(shape, dtype), jnp.broadcast_to(self.v_leak, shape).astype(dtype)
        )

    def __call__(self, x, state: CuBaState, *, key=None):
        i, v = _cuba_step(self, x, state)
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        if self.reset_delay:
            v = v - delayed_reset(state.v, threshold, v_reset)
        spikes = self.surrogate(v - threshold, key=key)
        if not self.reset_delay:
            v = apply_reset(v, spikes, self.reset_mode, threshold, v_reset, self.detach_reset)
        return spikes, CuBaState(i, v)

    def vector_field(self, t, state: CuBaState, x) -> CuBaState:
        return _cuba_vector_field(self, state, x)

    def spike_condition(self, state: CuBaState) -> Array:
        return state.v - self._get("v_threshold")

    def reset(self, state: CuBaState, spiked) -> CuBaState:
        threshold, v_reset = self._get("v_threshold"), self._get("v_reset")
        return CuBaState(state.i, reset_membrane(state.v, spiked, self.reset_mode, threshold,
                                                 v_reset))


class CuBaLI(AbstractParametrisedNeuron, AbstractContinuousNeuron, AbstractFusedNeuron):
    r"""Current-based leaky integrator (NIR `CubaLI`): `snnx.CuBaLIF` without spikes.

    $$ \tau_s \frac{di}{dt} = -i + w_\text{in} I(t), \qquad
       \tau_m \frac{dv}{dt} = (v_\text{leak} - v) + r\, i $$

    The output of a step is the membrane $v$.

    **Arguments:**

    - `tau_syn`, `tau_mem`, `r`, `v_leak`, `w_in`, `dt`, `method`, `trainable`: as for
        `snnx.CuBaLIF`.

    Its all-steps form can run as one fused Pallas kernel (opt-in, see `snnx.LIF`).
    """

    _parameters: ClassVar[dict[str, str]] = {
        "tau_syn": "log_tau_syn",
        "tau_mem": "log_tau_mem",
        "r": "r",
        "v_leak": "v_leak",
        "w_in": "w_in",
    }

    log_tau_syn: Float[Array, "*shape"]
    log_tau_mem: Float[Array, "*shape"]
    r: Float[Array, "*shape"]
    v_leak: Float[Array, "*shape"]
    w_in: Float[Array, "*shape"]
    dt: float = eqx.field(static=True)
    method: Method = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        tau_syn: Float[ArrayLike, "*shape"],
        tau_mem: Float[ArrayLike, "*shape"],
        r: Float[ArrayLike, "*shape"] = 1.0,
        v_leak: Float[ArrayLike, "*shape"] = 0.0,
        w_in: Float[ArrayLike, "*shape"] = 1.0,
        *,
        dt: float = 1.0,
        method: Method = "exact",
        trainable=(),
    ):
        self._set_parameters(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in)
        self._set_options(dt=dt, method=method, trainable=trainable)

    tau_syn = log_parameter("log_tau_syn", "The synaptic time constant.")
    tau_mem = log_parameter("log_tau_mem", "The membrane time constant.")

    def init_state(self, shape, dtype=jnp.float32) -> CuBaState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return CuBaState(
            jnp.zeros(shape, dtype), jnp.broadcast_to(self.v_leak, shape).astype(dtype)
        )

    def __call__(self, x, state: CuBaState, *, key=None):
        new = _cuba_step(self, x, state)
        return new.v, new

    def vector_field(self, t, state: CuBaState, x) -> CuBaState:
        return _cuba_vector_field(self, state, x)

    def spike_condition(self, state: CuBaState) -> Array:
        return jnp.full_like(state.v, -jnp.inf)

    def reset(self, state: CuBaState, spiked) -> CuBaState:
        return state
