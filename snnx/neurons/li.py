"""Leaky integrator: the non-spiking readout."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_dt, shape_tuple
from ..kernels._abstract import AbstractFusedNeuron
from ._abstract import AbstractContinuousNeuron
from ._dynamics import Method, beta_to_tau, decay_and_gain
from ._params import AbstractParametrisedNeuron, log_parameter


class LIState(NamedTuple):
    """State of an `LI` population: the membrane potential `v`."""

    v: Array


class LI(AbstractParametrisedNeuron, AbstractContinuousNeuron, AbstractFusedNeuron):
    r"""Leaky integrator (NIR `LI`): a non-spiking readout whose output is its membrane.

    $$ \tau \frac{dv}{dt} = (v_\text{leak} - v) + r\, I(t) $$

    Discretised like `snnx.LIF` (`method="exact"`:
    $v_{t+1} = v_\text{leak} + \beta (v_t - v_\text{leak}) + (1-\beta) r x_t$). The output of
    a step is the new membrane $v_{t+1}$.

    **Arguments:**

    - `tau`: time constant, > 0. `r`: gain (default 1). `v_leak`: rest (default 0).
    - `dt`, `method`, `trainable`: as for `snnx.LIF`.

    Its all-steps form can run as one fused Pallas kernel (opt-in, see `snnx.LIF`).
    """

    _parameters: ClassVar[dict[str, str]] = {"tau": "log_tau", "r": "r", "v_leak": "v_leak"}

    log_tau: Float[Array, "*shape"]
    r: Float[Array, "*shape"]
    v_leak: Float[Array, "*shape"]
    dt: float = eqx.field(static=True)
    method: Method = eqx.field(static=True)
    trainable: frozenset[str] = eqx.field(static=True)

    def __init__(
        self,
        tau: Float[ArrayLike, "*shape"],
        r: Float[ArrayLike, "*shape"] = 1.0,
        v_leak: Float[ArrayLike, "*shape"] = 0.0,
        *,
        dt: float = 1.0,
        method: Method = "exact",
        trainable=(),
    ):
        self._set_parameters(tau=tau, r=r, v_leak=v_leak)
        self._set_options(dt=dt, method=method, trainable=trainable)

    @classmethod
    def from_beta(cls, beta: Float[ArrayLike, "*shape"], *, dt: float = 1.0, **kwargs) -> "LI":
        r"""An LI stepping $v_{t+1} = \beta v_t + x_t$ (snnTorch `Leaky` without spikes).

        **Arguments:**

        - `beta`: decay per step, in (0, 1). `dt`: time unit (default 1).
        - `**kwargs`: other `LI` arguments (`trainable`, ...).

        **Returns:**

        An `LI` with $\tau = -dt/\ln\beta$, $r = 1/(1-\beta)$.
        """
        dt = check_dt("LI.from_beta", dt)
        tau = beta_to_tau("LI", beta, dt)
        return cls(tau, 1.0 / (1.0 - np.asarray(beta, dtype=np.float64)), 0.0, dt=dt, **kwargs)

    tau = log_parameter("log_tau", "The time constant.")

    def init_state(self, shape, dtype=jnp.float32) -> LIState:
        shape = shape_tuple(shape)
        self._check_layer_shape(shape)
        return LIState(jnp.broadcast_to(self.v_leak, shape).astype(dtype))

    def __call__(self, x, state: LIState, *, key=None):
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        decay, gain = decay_and_gain(tau, self.dt, self.method)
        v = v_leak + decay * (state.v - v_leak) + gain * r * x
        return v, LIState(v)

    def vector_field(self, t, state: LIState, x) -> LIState:
        tau, r, v_leak = self._get("tau"), self._get("r"), self._get("v_leak")
        return LIState((v_leak - state.v + r * x) / tau)

    def spike_condition(self, state: LIState) -> Array:
        # A readout never spikes: the condition never crosses zero.
        return jnp.full_like(state.v, -jnp.inf)

    def reset(self, state: LIState, spiked) -> LIState:
        return state
