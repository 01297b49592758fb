"""Losses for EventProp readouts: first-spike times and (shaped) membrane integrals.

Each takes the batched readout of `EventPropNetwork` (`jax.vmap(net.readout)(xb)`, or the
`outputs` that `snnx.fit` passes) and integer labels, and returns the batch mean.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


def _check(name, outputs, labels, rank):
    outputs = jnp.asarray(outputs)
    labels = jnp.asarray(labels)
    if outputs.ndim != rank:
        raise ValueError(
            f"`{name}` expects `outputs` of rank {rank} (batch, time or capacity, classes), got "
            f"shape {outputs.shape}; batch a single sample with `outputs[None]`."
        )
    if labels.shape != outputs.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"`labels` must be integer classes of shape {outputs.shape[:1]}, got "
            f"{labels.dtype} {labels.shape}."
        )
    return outputs, labels


def first_spike_ce(times, labels, *, tau0: float = 0.5, alpha: float = 0.01,
                   tau1: float = 6.4) -> Array:
    r"""Time-to-first-spike cross-entropy with the usual regulariser (Göltz et al. 2021,
    Wunderlich & Pehle 2021's Yin-Yang loss).

    $$ L = -\log \frac{e^{-t_y/\tau_0}}{\sum_k e^{-t_k/\tau_0}}
           + \alpha \left(e^{t_y/\tau_1} - 1\right) $$

    with $t_k$ the first spike of output $k$ (the end time `T dt` if it never fires, which
    gives no gradient: a silent output is invisible to the exact gradient).

    **Arguments:**

    - `times`: `(batch, capacity, classes)` readout spike times (row 0: first spikes).
    - `labels`: `(batch,)` integer classes.
    - `tau0`, `tau1`, `alpha`: the softmax temperature, the regulariser's time scale and
        weight (in the time unit of `dt`).

    **Returns:**

    The batch-mean loss.
    """
    times, labels = _check("first_spike_ce", times, labels, 3)
    t = times[:, 0, :]
    logp = jax.nn.log_softmax(-t / tau0, axis=-1)
    t_y = jnp.take_along_axis(t, labels[:, None], axis=1)[:, 0]
    nll = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    return jnp.mean(nll + alpha * (jnp.exp(t_y / tau1) - 1.0))


def predict_first_spike(times) -> Array:
    """The class whose output fires first (`(batch, capacity, classes)` -> `(batch,)`)."""
    return jnp.argmin(jnp.asarray(times)[:, 0, :], axis=-1)


def max_voltage_ce(v, labels) -> Array:
    """Cross-entropy on the largest readout membrane over time.

    **Arguments:**

    - `v`: `(batch, T, classes)` membrane of a `CuBaLI` readout.
    - `labels`: `(batch,)` integer classes.

    **Returns:**

    The batch-mean loss (its gradient flows through the membrane at the maximum's step).
    """
    v, labels = _check("max_voltage_ce", v, labels, 3)
    logp = jax.nn.log_softmax(jnp.max(v, axis=1), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def predict_max_voltage(v) -> Array:
    """The class with the largest membrane over time."""
    return jnp.argmax(jnp.max(jnp.asarray(v), axis=1), axis=-1)


class AbstractWeighting(eqx.Module):
    """A weighting function $w(t)$ inside an integral voltage loss (loss shaping)."""

    @abc.abstractmethod
    def __call__(self, t: Array, t_end: float) -> Array:
        """The weight at times `t` of a trial of length `t_end`."""


class Constant(AbstractWeighting):
    """$w(t) = 1 / t_\\text{end}$: the time-averaged membrane."""

    def __call__(self, t, t_end):
        return jnp.ones_like(t) / t_end


class Exponential(AbstractWeighting):
    """$w(t) = e^{-t/\\tau} / t_\\text{end}$: early membrane counts more (mlGeNN's loss
    shaping for SHD; Nowotny, Turner & Knight 2022).

    **Arguments:**

    - `tau`: the decay time of the weight (> 0), in the unit of `dt`.
    """

    tau: float = eqx.field(static=True)

    def __init__(self, tau: float):
        if not float(tau) > 0:
            raise ValueError(f"`tau` must be > 0, got {tau!r}.")
        self.tau = float(tau)

    def __call__(self, t, t_end):
        return jnp.exp(-t / self.tau) / t_end


class Weighting(AbstractWeighting):
    """A user-given weighting: `fn(t, t_end) -> weights` (vectorised over `t`)."""

    fn: Callable = eqx.field(static=True)

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"`fn` must be a function (t, t_end) -> weight, got {fn!r}.")
        self.fn = fn

    def __call__(self, t, t_end):
        return self.fn(t, t_end)


def integral_voltage(v, *, dt: float, weighting: AbstractWeighting | None = None) -> Array:
    r"""$\int w(t) v(t)\, dt$ over the trial, as the sum over the sampled membrane
    (`v[k]` at time `(k+1) dt`): `(batch, T, classes) -> (batch, classes)`."""
    weighting = Constant() if weighting is None else weighting
    if not isinstance(weighting, AbstractWeighting):
        raise TypeError(
            "`weighting` must be an `snnx.eventprop.AbstractWeighting` (`Constant()`, "
            f"`Exponential(tau)`, `Weighting(fn)`), got {type(weighting).__name__}."
        )
    T = v.shape[1]
    t = (jnp.arange(T, dtype=v.dtype) + 1) * dt
    w = jnp.asarray(weighting(t, T * dt), v.dtype)
    return jnp.einsum("btc,t->bc", v, w) * dt


def integral_voltage_ce(v, labels, *, dt: float,
                        weighting: AbstractWeighting | None = None) -> Array:
    """Cross-entropy on the weighted time integral of the readout membrane (loss shaping).

    **Arguments:**

    - `v`: `(batch, T, classes)` membrane of a `CuBaLI` readout.
    - `labels`: `(batch,)` integer classes.
    - `dt`: the network's step (`net.dt`).
    - `weighting`: `Constant()` (default), `Exponential(tau)` or `Weighting(fn)`.

    **Returns:**

    The batch-mean loss.
    """
    v, labels = _check("integral_voltage_ce", v, labels, 3)
    logits = integral_voltage(v, dt=dt, weighting=weighting)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def predict_integral_voltage(v, *, dt: float = 1.0,
                             weighting: AbstractWeighting | None = None) -> Array:
    """The class with the largest weighted membrane integral."""
    return jnp.argmax(integral_voltage(jnp.asarray(v), dt=dt, weighting=weighting), axis=-1)


def count_penalty(counts, *, lower: ArrayLike | None = None,
                  upper: ArrayLike | None = None) -> Array:
    r"""A spike-count regulariser applied in the adjoint (mlGeNN-style).

    $\sum_n \max(0, c_n - \text{upper})^2 + \max(0, \text{lower} - c_n)^2$, averaged over
    the batch. Spike counts are piecewise constant (their exact gradient is zero); an
    `EventPropNetwork` instead routes the count's cotangent $g_n$ into the adjoint as an
    extra jump $\lambda_V \mathrel{+}= g_n / (v_\text{th} - v_\text{reset})$ at each spike of
    neuron $n$, so a penalty on too many spikes lowers the membrane where the neuron fires.
    A neuron that is silent in a sample has no spike to carry it, and its exact gradient is
    zero; there the cotangent instead **lifts its incoming weights**: $\partial c_n /
    \partial W_{nm}$ is taken as $r\, w_\text{in} a_m / (v_\text{th} - v_\text{reset})$,
    with $a_m$ the input's total amplitude in the sample (its spike count; `T` for the
    bias): the steady membrane gain per unit weight over the distance to threshold. This
    is the gradient form of the "weight bumping" of Göltz et al. (2021) and the silent-
    neuron lift of Nowotny et al. (2022), and it is what keeps a first-spike readout from
    going silent: `count_regulariser(layer, lower=1)` on the outputs.

    **Arguments:**

    - `counts`: `(..., N)` counts (`EventPropState.counts[layer]` or `LayerOut.counts`).
    - `lower`, `upper`: the bounds (None for none; at least one).

    **Returns:**

    The mean penalty per sample (summed over neurons).
    """
    if lower is None and upper is None:
        raise ValueError("`count_penalty` needs `lower` or `upper` (or both).")
    counts = jnp.asarray(counts)
    pen = jnp.zeros_like(counts)
    if upper is not None:
        pen = pen + jax.nn.relu(counts - upper) ** 2
    if lower is not None:
        pen = pen + jax.nn.relu(lower - counts) ** 2
    per_sample = jnp.sum(pen.reshape(-1, counts.shape[-1]), axis=-1)
    return jnp.mean(per_sample)


def count_regulariser(layer: int = 0, *, lower=None, upper=None,
                      strength: float = 1e-3) -> Callable:
    """A `regulariser(records)` for `snnx.fit`/`snnx.make_step`: `strength *
    count_penalty` of layer `layer` of an `EventPropNetwork` (its `EventPropState`
    is the record's state).

    **Arguments:**

    - `layer`: which neuron layer (0 = first hidden).
    - `lower`, `upper`, `strength`: the bounds and the weight.

    **Returns:**

    A function `records -> scalar`.
    """
    if lower is None and upper is None:
        raise ValueError("`count_regulariser` needs `lower` or `upper` (or both).")

    def reg(records):
        counts = records[0].state.counts[layer]
        return strength * count_penalty(counts, lower=lower, upper=upper)

    return reg
