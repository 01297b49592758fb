"""Losses for spiking classifiers and activity regularisers.

**Time-axis convention.** Every loss takes a batch of model outputs `outputs` of shape
`(batch, time, classes)` — what `jax.vmap(lambda x: snnx.run(model, x)[0])(xb)` returns for a
batch `xb` of shape `(batch, time, *input_shape)` — and `labels`: integer classes of shape
`(batch,)` (or, for `mse_count`, float target rates of shape `(batch, classes)`). Arrays laid
out differently say so with `time_axis=`. Shapes are checked, and `num_classes=` (optional)
catches a swapped time/class axis even when the two lengths differ by nothing else.

Each loss is the mean over the batch of a per-sample term, and has a matching accuracy in
`snnx.metrics` (`snnx.metrics.predictor_for(loss)`).
"""

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from ._rates import spike_rates

__all__ = [
    "ce_rate",
    "ce_count",
    "ce_max_membrane",
    "ce_mean_membrane",
    "mse_count",
    "ce_first_spike",
    "first_spike_times",
    "rate_upper",
    "rate_lower",
]


def _time_major(outputs, labels, time_axis, num_classes, *, float_targets=False):
    """Bring `outputs` to (batch, time, classes) and check `labels` against it."""
    outputs = jnp.asarray(outputs)
    if outputs.ndim != 3:
        raise ValueError(
            f"`outputs` must have shape (batch, time, classes), got {outputs.shape}. For one "
            f"sample add a batch axis (`outputs[None]`); for other layouts pass `time_axis=`."
        )
    if time_axis not in (0, 1, 2, -1, -2, -3):
        raise ValueError(f"`time_axis` must be an axis of a 3-D array, got {time_axis}.")
    time_axis = time_axis % 3
    if time_axis == 0:
        outputs = jnp.swapaxes(outputs, 0, 1)
    elif time_axis == 2:
        outputs = jnp.swapaxes(outputs, 1, 2)
    B, T, C = outputs.shape
    if num_classes is not None and C != num_classes:
        raise ValueError(
            f"`outputs` has {C} entries on its class axis (shape (batch, time, classes) = "
            f"{outputs.shape} with `time_axis={time_axis}`) but `num_classes={num_classes}`; "
            f"the time and class axes are probably swapped: pass the right `time_axis`."
        )
    labels = jnp.asarray(labels)
    if float_targets and jnp.issubdtype(labels.dtype, jnp.floating):
        if labels.shape != (B, C):
            raise ValueError(
                f"float `labels` (target rates) must have shape (batch, classes) = {(B, C)}, "
                f"got {labels.shape}."
            )
        return outputs, labels
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"`labels` must be integer class indices of shape (batch,), got dtype "
            f"{labels.dtype}; convert with `labels.astype(int)`."
        )
    if labels.shape != (B,):
        raise ValueError(
            f"`labels` must have shape (batch,) = ({B},) to match `outputs` of shape "
            f"(batch, time, classes) = {outputs.shape}, got {labels.shape}."
        )
    if not isinstance(labels, jax.core.Tracer):
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= C:
            raise ValueError(
                f"`labels` must lie in [0, {C}) for {C} output classes, found values in "
                f"[{lo}, {hi}]; check the label encoding or the time/class axes (`time_axis=`)."
            )
    return outputs, labels


def _ce(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def ce_rate(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"],
    *,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Cross-entropy on output firing rates: logits are $\frac1T\sum_t s_{t,c}$.

    **Arguments:**

    - `outputs`: spikes (or any outputs), shape `(batch, time, classes)`.
    - `labels`: integer classes, shape `(batch,)`.
    - `time_axis`: the time axis of `outputs`. Default 1.
    - `num_classes`: if given, the class axis must have this length.

    **Returns:**

    The mean cross-entropy over the batch (a scalar).
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes)
    return _ce(jnp.mean(outputs, axis=1), labels)


def ce_count(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"],
    *,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Cross-entropy on output spike counts: logits are $\sum_t s_{t,c}$.

    Arguments and return as for `ce_rate`.
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes)
    return _ce(jnp.sum(outputs, axis=1), labels)


def ce_max_membrane(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"],
    *,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Cross-entropy on the readout membrane's maximum over time: logits $\max_t v_{t,c}$.

    The usual loss for a non-spiking `snnx.LI` readout (Cramer et al. 2020 on SHD).
    Arguments and return as for `ce_rate`.
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes)
    return _ce(jnp.max(outputs, axis=1), labels)


def ce_mean_membrane(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"],
    *,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Cross-entropy on the readout membrane's mean over time: logits $\frac1T\sum_t v_{t,c}$.

    Arguments and return as for `ce_rate`.
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes)
    return _ce(jnp.mean(outputs, axis=1), labels)


def mse_count(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"] | Float[ArrayLike, "batch classes"],
    *,
    correct_rate: float = 1.0,
    incorrect_rate: float = 0.0,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Mean squared error between spike counts and target counts.

    The target count of class $c$ is $r_c T$, where the target rate $r_c$ (spikes per step)
    is `correct_rate` for the labelled class and `incorrect_rate` for the others, or is given
    directly by float `labels` of shape `(batch, classes)`. The loss is
    $\frac{1}{BC}\sum_{b,c} (\sum_t s_{b,t,c} - r_{b,c} T)^2$.

    **Arguments:**

    - `outputs`: spikes, shape `(batch, time, classes)`.
    - `labels`: integer classes `(batch,)`, or float target rates `(batch, classes)`.
    - `correct_rate`, `incorrect_rate`: target rates per step for integer labels.
    - `time_axis`, `num_classes`: as for `ce_rate`.

    **Returns:**

    The mean squared error (a scalar).
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes, float_targets=True)
    B, T, C = outputs.shape
    if jnp.issubdtype(labels.dtype, jnp.integer):
        target = jnp.where(
            jax.nn.one_hot(labels, C, dtype=bool), correct_rate, incorrect_rate
        ).astype(outputs.dtype)
    else:
        target = labels
    return jnp.mean((jnp.sum(outputs, axis=1) - target * T) ** 2)


def first_spike_times(
    spikes: Float[ArrayLike, "batch time neurons"], *, time_axis: int = 1
) -> Float[Array, "batch neurons"]:
    r"""Index of each neuron's first spike, `T` where it never spikes (differentiable).

    Computed as $\sum_{t=0}^{T-1} \prod_{t' \le t} (1 - s_{t'})$: the number of steps before
    the first spike. For 0/1 spikes this is exact; through surrogate spikes it carries
    gradients to every step up to the first spike.

    **Arguments:**

    - `spikes`: shape `(batch, time, neurons)`.
    - `time_axis`: the time axis. Default 1.

    **Returns:**

    Float first-spike indices of shape `(batch, neurons)`.
    """
    spikes = jnp.asarray(spikes)
    if spikes.ndim != 3:
        raise ValueError(
            f"`spikes` must have shape (batch, time, neurons), got {spikes.shape}."
        )
    spikes = jnp.moveaxis(spikes, time_axis, 1)
    survival = jnp.cumprod(1.0 - spikes, axis=1)
    return jnp.sum(survival, axis=1)


def ce_first_spike(
    outputs: Float[ArrayLike, "batch time classes"],
    labels: Int[ArrayLike, " batch"],
    *,
    scale: float = 1.0,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""Cross-entropy on first-spike times: the earliest output neuron should be the label.

    Logits are $-\text{scale} \cdot t^\text{first}_c$ with $t^\text{first}$ from
    `first_spike_times` (`T` for a neuron that never fires).

    **Arguments:**

    - `outputs`: output spikes, shape `(batch, time, classes)`.
    - `labels`: integer classes `(batch,)`.
    - `scale`: inverse temperature per time step. Default 1.
    - `time_axis`, `num_classes`: as for `ce_rate`.

    **Returns:**

    The mean cross-entropy (a scalar).
    """
    outputs, labels = _time_major(outputs, labels, time_axis, num_classes)
    return _ce(-scale * first_spike_times(outputs), labels)


def rate_upper(
    spikes: Float[ArrayLike, " batch time *neurons"] | PyTree,
    max_rate: float,
    *,
    per: str = "neuron",
    time_axis: int = 1,
) -> Float[Array, ""]:
    r"""Penalty on firing rates above `max_rate` (spikes per step): $\text{mean}\,
    \text{relu}(r - r_\max)^2$.

    `per="neuron"` bounds each neuron's rate $r_i$ (mean over batch and time);
    `per="layer"` bounds the layer's mean rate (Zenke & Vogels 2021 use a per-layer upper and
    a per-neuron lower bound).

    ```python
    outs, _, recs = jax.vmap(lambda x: snnx.run(model, x, record=True))(xb)
    reg = snnx.losses.rate_upper(recs[1].output, 0.2, per="layer")
    ```

    **Arguments:**

    - `spikes`: recorded spikes `(batch, time, *neurons)` or an `snnx.LayerRecord` of them.
    - `max_rate`: the bound, spikes per step.
    - `per`: `"neuron"` (default) or `"layer"`.
    - `time_axis`: the time axis. Default 1.

    **Returns:**

    A non-negative scalar, zero when every rate is within the bound.
    """
    r = spike_rates(spikes, time_axis, per)
    return jnp.mean(jax.nn.relu(r - max_rate) ** 2)


def rate_lower(
    spikes: Float[ArrayLike, " batch time *neurons"] | PyTree,
    min_rate: float,
    *,
    per: str = "neuron",
    time_axis: int = 1,
) -> Float[Array, ""]:
    r"""Penalty on firing rates below `min_rate`: $\text{mean}\,\text{relu}(r_\min - r)^2$.

    Keeps neurons from falling silent. Arguments as for `rate_upper`.

    **Returns:**

    A non-negative scalar, zero when every rate is at least `min_rate`.
    """
    r = spike_rates(spikes, time_axis, per)
    return jnp.mean(jax.nn.relu(min_rate - r) ** 2)

