r"""Pair-based spike-timing-dependent plasticity (STDP) with pre- and postsynaptic traces.

For one pre spike at $t_\text{pre}$ and one post spike at $t_\text{post}$, $\Delta t =
t_\text{post} - t_\text{pre}$, the weight changes by

$$ \Delta w = \begin{cases} A_+ e^{-\Delta t/\tau_+} & \Delta t > 0 \\
                            -A_- e^{\Delta t/\tau_-} & \Delta t < 0 \end{cases} $$

(Bi & Poo 1998; Song, Miller & Abbott 2000), computed online from exponential traces
(Morrison, Diesmann & Gerstner 2008). Spikes in the same step do not pair.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import shape_tuple
from ..layers._abstract import AbstractStatefulLayer
from ..layers._util import init_layer_state, is_stateful


def _positive(where: str, name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where} `{name}` must be a finite number > 0, got {value}.")
    return value


def _non_negative(where: str, name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where} `{name}` must be a finite number >= 0, got {value}.")
    return value


class AbstractPairing(eqx.Module):
    """Which spike pairs interact: how a spike updates its trace."""

    @abc.abstractmethod
    def update(self, trace: Array, spikes: Array) -> Array:
        """The trace after this step's `spikes` (the trace is already decayed)."""


class AllToAll(AbstractPairing):
    r"""Every pre spike pairs with every post spike: a spike adds 1 to its trace.

    The weight change is the sum of the pair window over all pairs
    $\sum_{\text{pre}}\sum_{\text{post}} W(t_\text{post} - t_\text{pre})$.
    """

    def update(self, trace, spikes):
        return trace + spikes


class Nearest(AbstractPairing):
    r"""Symmetric nearest-spike pairing: a spike sets its trace to 1.

    Each post spike pairs (potentiation) with the latest earlier pre spike only, and each
    pre spike pairs (depression) with the latest earlier post spike only (Morrison et al.
    2008, "symmetric nearest-spike").
    """

    def update(self, trace, spikes):
        return jnp.where(spikes > 0, jnp.ones_like(trace), trace)


class AbstractBound(eqx.Module):
    """How the weights are kept in `[w_min, w_max]`."""

    w_min: eqx.AbstractVar[float]
    w_max: eqx.AbstractVar[float]

    @abc.abstractmethod
    def apply(self, weight: Array, potentiation: Array, depression: Array) -> Array:
        """The new weight from the unscaled potentiation and depression (both >= 0)."""


def _check_bounds(cls: str, w_min: float, w_max: float) -> tuple[float, float]:
    w_min, w_max = float(w_min), float(w_max)
    if not w_min < w_max:
        raise ValueError(f"{cls} needs `w_min` < `w_max`, got {w_min} and {w_max}.")
    return w_min, w_max


class Additive(AbstractBound):
    r"""Additive STDP: $w \leftarrow \mathrm{clip}(w + \Delta w_+ - \Delta w_-, w_\min, w_\max)$.

    The change does not depend on the weight (hard bounds; Song et al. 2000). The defaults
    (infinite bounds) leave the weight unbounded.
    """

    w_min: float = eqx.field(default=-math.inf, static=True)
    w_max: float = eqx.field(default=math.inf, static=True)

    def __check_init__(self):
        _check_bounds("Additive", self.w_min, self.w_max)

    def apply(self, weight, potentiation, depression):
        return jnp.clip(weight + potentiation - depression, self.w_min, self.w_max)


class Multiplicative(AbstractBound):
    r"""Multiplicative (soft-bound) STDP (van Rossum, Bi & Turrigiano 2000; Rubin et al. 2001).

    $$ w \leftarrow w + (w_\max - w)\,\Delta w_+ - (w - w_\min)\,\Delta w_- $$

    so the weight approaches its bounds but never crosses them while $A_+ p \le 1$ and
    $A_- q \le 1$ (the amplitude times the trace; larger steps overshoot).
    """

    w_min: float = eqx.field(default=0.0, static=True)
    w_max: float = eqx.field(default=1.0, static=True)

    def __check_init__(self):
        _check_bounds("Multiplicative", self.w_min, self.w_max)

    def apply(self, weight, potentiation, depression):
        return weight + (self.w_max - weight) * potentiation - (weight - self.w_min) * depression


class STDPState(eqx.Module):
    """State of an `STDP` layer: the current weights, both traces and the neuron's state.

    - `weight`: `(out, in)`, the weights as they are now (they change every step).
    - `pre_trace`: `(in,)`, $\\sum_\\text{pre} e^{-(t - t_\\text{pre})/\\tau_+}$ (or nearest).
    - `post_trace`: `(out,)`, likewise with $\\tau_-$.
    - `neuron`: the postsynaptic neuron's state.
    """

    weight: Array
    pre_trace: Array
    post_trace: Array
    neuron: PyTree[Array]


class STDP(AbstractStatefulLayer):
    r"""A plastic fully connected layer into a spiking neuron, learning by pair-based STDP.

    Each step, with presynaptic spikes $x_t$ (the layer's input):

    1. decay both traces: $p \leftarrow e^{-dt/\tau_+} p$, $q \leftarrow e^{-dt/\tau_-} q$;
    2. postsynaptic spikes $y_t$ from `neuron` driven by $W x_t$ (this step's weights);
    3. $\Delta w_+ = A_+\, y_t p^\top$ (potentiation at post spikes),
       $\Delta w_- = A_-\, q\, x_t^\top$ (depression at pre spikes), applied through
       `bound`;
    4. the traces take this step's spikes (`pairing`).

    So a pre spike $k$ steps before a post spike changes the weight by exactly
    $A_+ e^{-k\,dt/\tau_+}$ and a post spike $k$ steps before a pre spike by
    $-A_- e^{-k\,dt/\tau_-}$; spikes in the same step do not pair. The weights live in the
    state (`STDPState.weight`), so `snnx.run(layer, xs)` returns the learned weights in the
    final state; `self.weight` is where they start.

    **Arguments:**

    - `neuron`: the postsynaptic neuron (any `snnx.AbstractNeuron` / stateful layer on
        vectors `(out_features,)`).
    - `in_features`, `out_features`: sizes.
    - `key`: PRNG key for the initial weights, uniform in `[0, init_scale / sqrt(in)]`.
    - `weight`: initial weights `(out, in)`, instead of `key`.
    - `a_plus`, `a_minus`: amplitudes $A_\pm \ge 0$. Default 0.01 and 0.012.
    - `tau_plus`, `tau_minus`: trace time constants $\tau_\pm > 0$ (unit of `dt`).
        Default 20.
    - `dt`: time step. Default 1.
    - `bound`: `Additive(w_min, w_max)` (default: unbounded) or `Multiplicative(w_min,
        w_max)`.
    - `pairing`: `AllToAll()` (default) or `Nearest()`.
    - `init_scale`: see `key`. Default 1.
    """

    neuron: AbstractStatefulLayer
    weight: Float[Array, "out in"]
    bound: AbstractBound
    pairing: AbstractPairing
    a_plus: float = eqx.field(static=True)
    a_minus: float = eqx.field(static=True)
    tau_plus: float = eqx.field(static=True)
    tau_minus: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(
        self,
        neuron,
        in_features: int,
        out_features: int,
        *,
        key: PRNGKeyArray | None = None,
        weight=None,
        a_plus: float = 0.01,
        a_minus: float = 0.012,
        tau_plus: float = 20.0,
        tau_minus: float = 20.0,
        dt: float = 1.0,
        bound: AbstractBound | None = None,
        pairing: AbstractPairing | None = None,
        init_scale: float = 1.0,
    ):
        if not is_stateful(neuron):
            raise TypeError(
                f"STDP `neuron` must be a spiking neuron (an `snnx.AbstractNeuron`, e.g. "
                f"`snnx.LIF(tau=10.0)`), got {type(neuron).__name__}."
            )
        shape = (int(out_features), int(in_features))
        if weight is None:
            if key is None:
                raise ValueError("STDP needs `key` (random initial weights) or `weight`.")
            lim = init_scale / math.sqrt(shape[1])
            weight = jax.random.uniform(key, shape, minval=0.0, maxval=lim)
        weight = jnp.asarray(weight)
        if weight.shape != shape:
            raise ValueError(
                f"STDP `weight` must have shape (out_features, in_features) = {shape}, got "
                f"{weight.shape}."
            )
        bound = Additive() if bound is None else bound
        pairing = AllToAll() if pairing is None else pairing
        if not isinstance(bound, AbstractBound):
            raise TypeError(
                f"STDP `bound` must be `snnx.learn.Additive(...)` or "
                f"`snnx.learn.Multiplicative(...)`, got {type(bound).__name__}."
            )
        if not isinstance(pairing, AbstractPairing):
            raise TypeError(
                f"STDP `pairing` must be `snnx.learn.AllToAll()` or `snnx.learn.Nearest()`, "
                f"got {type(pairing).__name__}."
            )
        if not isinstance(weight, jax.core.Tracer) and not bool(
            jnp.all((weight >= bound.w_min) & (weight <= bound.w_max))
        ):
            raise ValueError(
                f"STDP initial `weight` must lie within the bounds [{bound.w_min}, "
                f"{bound.w_max}] of `bound`; clip it or widen the bounds."
            )
        self.neuron = neuron
        self.weight = weight
        self.bound = bound
        self.pairing = pairing
        self.a_plus = _non_negative("STDP", "a_plus", a_plus)
        self.a_minus = _non_negative("STDP", "a_minus", a_minus)
        self.tau_plus = _positive("STDP", "tau_plus", tau_plus)
        self.tau_minus = _positive("STDP", "tau_minus", tau_minus)
        self.dt = _positive("STDP", "dt", dt)

    def init_state(self, shape, dtype=jnp.float32) -> STDPState:
        shape = shape_tuple(shape)
        n_out, n_in = self.weight.shape
        if shape != (n_in,):
            raise ValueError(
                f"STDP layer with in_features={n_in} needs inputs of shape ({n_in},), got "
                f"{shape}; set `in_features` to match the layer before it."
            )
        return STDPState(
            self.weight.astype(dtype),
            jnp.zeros((n_in,), dtype),
            jnp.zeros((n_out,), dtype),
            init_layer_state(self.neuron, (n_out,), dtype),
        )

    def __call__(self, x, state: STDPState, *, key=None):
        dtype = state.weight.dtype
        x = jnp.asarray(x, dtype)
        pre = state.pre_trace * jnp.asarray(math.exp(-self.dt / self.tau_plus), dtype)
        post = state.post_trace * jnp.asarray(math.exp(-self.dt / self.tau_minus), dtype)
        y, neuron_state = self.neuron(state.weight @ x, state.neuron, key=key)
        y_ = jax.lax.stop_gradient(y).astype(dtype)
        potentiation = self.a_plus * jnp.outer(y_, pre)
        depression = self.a_minus * jnp.outer(post, x)
        weight = self.bound.apply(state.weight, potentiation, depression)
        return y, STDPState(
            weight.astype(dtype),
            self.pairing.update(pre, x),
            self.pairing.update(post, y_),
            neuron_state,
        )
