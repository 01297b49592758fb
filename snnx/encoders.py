"""Spike encoders: turn analogue data into spike trains with a leading time axis.

Every encoder acts on **one sample or a batch alike**: the data `x` of any shape `(*shape)`
becomes spikes of shape `(T, *shape)` with time FIRST (what `snnx.run` takes). For a dataset
`(N, *shape)` use `jax.vmap` or move the axis: `jnp.moveaxis(rate(x, T, key=k), 0, 1)` gives
`(N, T, *shape)`. Random encoders are deterministic given their `key`.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import check_key

__all__ = ["rate", "latency", "delta", "population"]


def _check_steps(num_steps) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise TypeError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}.")
    return int(num_steps)


def _check_unit_interval(x: Array, name: str = "x") -> Array:
    """Values outside [0, 1] (or NaN) are an error: at once when `x` is concrete, when the
    program runs (`eqx.error_if`) under `jit`."""
    msg = (f"`{name}` must lie in [0, 1] (intensities or probabilities, no NaN); rescale it "
           f"first, e.g. `x / x.max()`")
    if isinstance(x, jax.core.Tracer):
        return eqx.error_if(x, ~((x >= 0) & (x <= 1)), msg + ".")
    host = np.asarray(x)
    if host.size and not (np.all(host >= 0) and np.all(host <= 1)):
        raise ValueError(f"{msg}; got values in [{np.nanmin(host)}, {np.nanmax(host)}]"
                         + (" and NaN." if np.isnan(host).any() else "."))
    return x


def _check_finite(x: Array, name: str) -> Array:
    """NaN/inf inputs are an error (concrete: at once; traced: `eqx.error_if`)."""
    msg = f"`{name}` must be finite (no NaN or inf); repair or drop those values first"
    if isinstance(x, jax.core.Tracer):
        return eqx.error_if(x, ~jnp.isfinite(x), msg + ".")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
    if bad:
        raise ValueError(f"{msg}; found {bad} non-finite values.")
    return x


def rate(
    x: Float[ArrayLike, "*shape"],
    num_steps: int,
    *,
    key: PRNGKeyArray,
    max_rate: float = 1.0,
    dt: float = 1.0,
    method: Literal["bernoulli", "poisson"] = "bernoulli",
) -> Float[Array, " time *shape"]:
    r"""Rate coding: each value sets the spike probability (or Poisson rate) per step.

    With intensity $x \in [0, 1]$ the expected number of events per step is
    $\lambda = x \cdot \text{max\_rate} \cdot dt$.

    - `"bernoulli"`: one spike at most per step, $P(s_t = 1) = \lambda$ (needs $\lambda \le 1$).
        The expected rate is exactly $\lambda$ per step.
    - `"poisson"`: the number of events per step is $\text{Poisson}(\lambda)$ (counts may
        exceed 1; clip with `jnp.minimum(s, 1)` to bit-pack them).

    **Arguments:**

    - `x`: intensities in `[0, 1]`, any shape `(*shape)`.
    - `num_steps`: number of time steps `T`.
    - `key`: PRNG key.
    - `max_rate`: events per unit time at `x = 1`. Default 1 (probability 1 per step).
    - `dt`: step length in the unit of `max_rate`. Default 1.
    - `method`: `"bernoulli"` (default) or `"poisson"`.

    **Returns:**

    Float32 spikes (or counts) of shape `(T, *shape)`.

    **Raises:**

    `ValueError` if `x` is outside `[0, 1]`, `max_rate * dt` is negative or (Bernoulli) above 1,
    or `method` is unknown.
    """
    T = _check_steps(num_steps)
    check_key(key)
    x = jnp.asarray(x, dtype=jnp.float32)
    x = _check_unit_interval(x)
    lam_max = float(max_rate) * float(dt)
    if lam_max < 0:
        raise ValueError(f"`max_rate * dt` must be >= 0, got {lam_max}.")
    if method == "bernoulli":
        if lam_max > 1:
            raise ValueError(
                f"`max_rate * dt` = {lam_max} is a probability per step for "
                f"`method='bernoulli'` and must be <= 1; lower `max_rate` or `dt`, or use "
                f"`method='poisson'`."
            )
        u = jax.random.uniform(key, (T,) + x.shape)
        return (u < x[None] * lam_max).astype(jnp.float32)
    if method == "poisson":
        return jax.random.poisson(key, x * lam_max, (T,) + x.shape).astype(jnp.float32)
    raise ValueError(f"`method` must be 'bernoulli' or 'poisson', got {method!r}.")


def latency(
    x: Float[ArrayLike, "*shape"],
    num_steps: int,
    *,
    method: Literal["linear", "log"] = "linear",
    threshold: float = 0.01,
    tau: float = 5.0,
) -> Float[Array, " time *shape"]:
    r"""Latency (time-to-first-spike) coding: brighter values spike earlier, once.

    - `"linear"`: $t = \text{round}\big((1 - x)(T - 1)\big)$, so $x = 1$ fires at step 0 and
        $x = $ `threshold` near the last step.
    - `"log"`: the charging time of an RC circuit driven by $x$ to reach `threshold`,
        $t = \text{round}\big(\tau \ln \frac{x}{x - \text{threshold}}\big)$ (in steps).
        Spike times at or beyond `T` are dropped (no spike).

    Values with $x <$ `threshold` (`"linear"`) or $x \le$ `threshold` (`"log"`) never spike.

    **Arguments:**

    - `x`: intensities in `[0, 1]`, any shape.
    - `num_steps`: number of time steps `T`.
    - `method`: `"linear"` (default) or `"log"`.
    - `threshold`: intensity below which no spike is emitted. Default 0.01.
    - `tau`: time constant in steps for `"log"`. Default 5.

    **Returns:**

    Float32 spikes of shape `(T, *shape)`, at most one spike per input value.

    **Raises:**

    `ValueError` for `x` outside `[0, 1]`, a `threshold` outside `[0, 1)`, `tau <= 0`, or an
    unknown `method`.
    """
    T = _check_steps(num_steps)
    x = jnp.asarray(x, dtype=jnp.float32)
    x = _check_unit_interval(x)
    if not 0 <= threshold < 1:
        raise ValueError(f"`threshold` must lie in [0, 1), got {threshold}.")
    if method == "linear":
        t = jnp.round((1.0 - x) * (T - 1))
        fires = x >= threshold
    elif method == "log":
        if tau <= 0:
            raise ValueError(f"`tau` must be > 0, got {tau}.")
        fires = x > threshold
        safe = jnp.where(fires, x, 1.0)
        t = jnp.round(tau * jnp.log(safe / (safe - threshold)))
        fires = fires & (t < T)
    else:
        raise ValueError(f"`method` must be 'linear' or 'log', got {method!r}.")
    steps = jnp.arange(T, dtype=jnp.float32).reshape((T,) + (1,) * x.ndim)
    return ((steps == t[None]) & fires[None]).astype(jnp.float32)


def delta(
    xs: Float[ArrayLike, " time *shape"],
    *,
    threshold: float = 0.1,
    off_spikes: bool = True,
) -> Float[Array, " time channels *shape"]:
    r"""Delta modulation: spike where the signal changes by more than `threshold` per step.

    $\Delta_t = x_t - x_{t-1}$ with $\Delta_0 = 0$ (the first step is the reference).
    ON spikes where $\Delta_t > \text{threshold}$, OFF spikes where
    $\Delta_t < -\text{threshold}$.

    **Arguments:**

    - `xs`: a time series with time FIRST, shape `(T, *shape)`.
    - `threshold`: the change needed for a spike, >= 0. Default 0.1.
    - `off_spikes`: if True (default), return ON and OFF channels; else ON only.

    **Returns:**

    Float32 spikes of shape `(T, 2, *shape)` (channel 0 = ON, 1 = OFF), or `(T, *shape)`
    with `off_spikes=False`.

    **Raises:**

    `ValueError` if `xs` has no time axis or `threshold < 0`.
    """
    xs = jnp.asarray(xs, dtype=jnp.float32)
    if xs.ndim < 1 or xs.shape[0] < 1:
        raise ValueError(
            f"`xs` must have a leading time axis, shape (T, *shape), got {xs.shape}."
        )
    xs = _check_finite(xs, "xs")
    if threshold < 0:
        raise ValueError(f"`threshold` must be >= 0, got {threshold}.")
    d = jnp.concatenate([jnp.zeros_like(xs[:1]), jnp.diff(xs, axis=0)], axis=0)
    on = (d > threshold).astype(jnp.float32)
    if not off_spikes:
        return on
    off = (d < -threshold).astype(jnp.float32)
    return jnp.stack([on, off], axis=1)


def population(
    x: Float[ArrayLike, "*shape"],
    num_neurons: int,
    *,
    low: float = 0.0,
    high: float = 1.0,
    sigma: float | None = None,
) -> Float[Array, " *shape neurons"]:
    r"""Population coding of scalars with Gaussian receptive fields.

    Neuron $j$ has centre $c_j$ on `linspace(low, high, num_neurons)` and responds with
    $\exp\!\big(-(x - c_j)^2 / (2\sigma^2)\big) \in (0, 1]$. Feed the result to `rate` or
    `latency` to get spikes.

    **Arguments:**

    - `x`: scalars of any shape.
    - `num_neurons`: number of neurons per scalar, >= 2.
    - `low`, `high`: the range the centres cover (`low < high`).
    - `sigma`: receptive-field width; default the centre spacing
        `(high - low) / (num_neurons - 1)`.

    **Returns:**

    Activations in `(0, 1]` of shape `(*shape, num_neurons)` (neurons LAST).

    **Raises:**

    `ValueError` for `num_neurons < 2`, `low >= high` or `sigma <= 0`.
    """
    if isinstance(num_neurons, bool) or not isinstance(num_neurons, (int, np.integer)):
        raise TypeError(f"`num_neurons` must be an int >= 2, got {num_neurons!r}.")
    if num_neurons < 2:
        raise ValueError(f"`num_neurons` must be >= 2, got {num_neurons}.")
    if not low < high:
        raise ValueError(f"`low` must be < `high`, got low={low}, high={high}.")
    spacing = (high - low) / (num_neurons - 1)
    sigma = spacing if sigma is None else sigma
    if sigma <= 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma}.")
    x = _check_finite(jnp.asarray(x, dtype=jnp.float32), "x")
    centres = jnp.linspace(low, high, num_neurons, dtype=jnp.float32)
    centres = centres.reshape((1,) * x.ndim + (num_neurons,))
    return jnp.exp(-((x[..., None] - centres) ** 2) / (2 * sigma**2))
