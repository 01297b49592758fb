"""The moments of fluctuation-driven initialisation: PSP kernel integrals and weight
mean/std for a target membrane mean and fluctuation (Rossbroich, Gygax & Zenke 2022)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..neurons._dynamics import decay_and_gain
from ..neurons.cuba import CuBaLIF, CuBaState, _cuba_step
from ..neurons.lif import LIF

SUPPORTED = (LIF, CuBaLIF)


def positive(name: str, value, *, upper: float | None = None) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}.") from None
    if not (math.isfinite(value) and value > 0) or (upper is not None and value > upper):
        limit = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"`{name}` must be finite, > 0{limit}; got {value!r}.")
    return value


def psp_integrals(neuron) -> tuple[np.ndarray, np.ndarray]:
    r"""The PSP kernel integrals $\bar\epsilon = \int\epsilon$, $\hat\epsilon = \int\epsilon^2$
    of a neuron's discrete step.

    $\epsilon$ is the membrane response (above rest, no threshold) to an input of 1 during
    one step; the integrals are sums over steps times `dt`, so they have time units and
    $\mu_U = n\mu_w\nu\bar\epsilon$ holds with $\nu$ in spikes per unit time. For `snnx.LIF`
    ($\epsilon_t = g r \beta^t$, $g$ the input gain of the step):
    $\bar\epsilon = dt\, g r/(1-\beta)$ ($= dt\, r$ for the exact step),
    $\hat\epsilon = dt\, (g r)^2/(1-\beta^2)$. For `snnx.CuBaLIF` the kernel is the
    difference of exponentials of the synapse and membrane, summed numerically over
    $40 \max(\tau)$.

    **Arguments:**

    - `neuron`: an `snnx.LIF` or `snnx.CuBaLIF`.

    **Returns:**

    `(eps_bar, eps_hat)`, float64 NumPy arrays of the neurons' parameter shape (scalars for
    scalar parameters).

    **Raises:**

    `TypeError` for another neuron (give its integrals to `weight_moments` instead).
    """
    if isinstance(neuron, LIF):
        tau = np.asarray(neuron.tau, np.float64)
        decay, gain = (np.asarray(a, np.float64)
                       for a in decay_and_gain(tau, neuron.dt, neuron.method))
        k0 = gain * np.asarray(neuron.r, np.float64)
        return neuron.dt * k0 / (1 - decay), neuron.dt * k0**2 / (1 - decay**2)
    if isinstance(neuron, CuBaLIF):
        taus = np.maximum(np.asarray(neuron.tau_syn), np.asarray(neuron.tau_mem))
        steps = int(min(math.ceil(40 * float(np.max(taus)) / neuron.dt), 1_000_000))
        return _cuba_integrals(neuron, steps)
    raise TypeError(
        f"`neuron` must be an `snnx.LIF` or `snnx.CuBaLIF` to derive its PSP kernel, got "
        f"{type(neuron).__name__}; compute its `(eps_bar, eps_hat)` and call "
        f"`snnx.init.weight_moments`."
    )


def _cuba_integrals(neuron, steps):
    shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in jax.tree.leaves(neuron)
                                   if eqx.is_array(a)))
    v_leak = jnp.broadcast_to(neuron._get("v_leak"), shape)

    @jax.jit
    def sums(neuron):
        s0 = _cuba_step(neuron, jnp.ones(shape), CuBaState(jnp.zeros(shape), v_leak))

        def body(carry, _):
            s, k1, k2 = carry
            u = s.v - v_leak
            return (_cuba_step(neuron, jnp.zeros(shape), s), k1 + u, k2 + u * u), None

        zero = jnp.zeros(shape, v_leak.dtype)
        return jax.lax.scan(body, (s0, zero, zero), None, length=steps)[0][1:]

    k1, k2 = sums(neuron)
    return neuron.dt * np.asarray(k1, np.float64), neuron.dt * np.asarray(k2, np.float64)


def weight_moments(fan_in, rate, eps_bar, eps_hat, *, sigma_u, mu_u=0.0):
    r"""Weight mean and standard deviation that give membrane moments `mu_u`, `sigma_u`.

    Solves $\mu_U = n\mu_w\nu\bar\epsilon$ and $\sigma_U^2 = n(\sigma_w^2+\mu_w^2)\nu\hat\epsilon$.

    **Arguments:**

    - `fan_in`: the (mean) number of inputs $n$ per neuron, > 0.
    - `rate`: the inputs' expected firing rate $\nu$, spikes per unit time (of `dt`).
    - `eps_bar`, `eps_hat`: the PSP kernel integrals (`psp_integrals`), > 0.
    - `sigma_u`: the membrane's target fluctuation (standard deviation over time), > 0.
    - `mu_u`: the membrane's target mean above rest. Default 0 (centred weights).

    **Returns:**

    `(mu_w, sigma_w)`, float64 NumPy arrays (broadcast of the arguments).

    **Raises:**

    `ValueError` for non-positive arguments, or a mean so large that no real $\sigma_w$ fits.
    """
    n = positive("fan_in", fan_in)
    nu = positive("rate", rate)
    eps_bar, eps_hat = np.asarray(eps_bar, np.float64), np.asarray(eps_hat, np.float64)
    sigma_u, mu_u = np.asarray(sigma_u, np.float64), np.asarray(mu_u, np.float64)
    for name, a in (("eps_bar", eps_bar), ("eps_hat", eps_hat), ("sigma_u", sigma_u)):
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ValueError(f"`{name}` must be finite and > 0, got {a}.")
    if not np.all(np.isfinite(mu_u)):
        raise ValueError(f"`mu_u` must be finite, got {mu_u}.")
    mu_w = mu_u / (n * nu * eps_bar)
    var_w = sigma_u**2 / (n * nu * eps_hat) - mu_w**2
    if np.any(var_w < 0):
        raise ValueError(
            f"`mu_u`={mu_u} is too large for `sigma_u`={sigma_u}: the mean alone would give "
            f"more fluctuation than the target; lower `mu_u` or raise `sigma_u` (or `xi`)."
        )
    return mu_w, np.sqrt(var_w)


def fluctuation_moments(neuron, fan_in, rate, *, xi: float = 2.0, mu_u=0.0, alpha=1.0):
    r"""Weight mean and standard deviation putting `neuron` `xi` standard deviations below
    threshold.

    With $\vartheta$ the threshold above rest, $\sigma_U = (\vartheta - \mu_U)/\xi$ and the
    connection carries the share `alpha` of the membrane's mean and variance
    ($\alpha\mu_U$, $\alpha\sigma_U^2$; 1 for a feed-forward layer, the paper's $\alpha$ for
    the feed-forward and $1-\alpha$ for the recurrent weights of a recurrent layer).

    **Arguments:**

    - `neuron`: an `snnx.LIF` or `snnx.CuBaLIF` (time constants, gain, threshold).
    - `fan_in`: inputs per neuron (the mean fan-in for sparse connectivity).
    - `rate`: the inputs' expected rate, spikes per unit time.
    - `xi`: standard deviations below threshold, > 0. Default 2.
    - `mu_u`: the membrane's mean above rest, below threshold. Default 0 (centred).
    - `alpha`: this connection's share of mean and variance, in (0, 1]. Default 1.

    **Returns:**

    `(mu_w, sigma_w)` as for `weight_moments`.

    **Raises:**

    `TypeError` for an unsupported neuron; `ValueError` for bad numbers.
    """
    xi = positive("xi", xi)
    alpha = positive("alpha", alpha, upper=1.0)
    eps_bar, eps_hat = psp_integrals(neuron)
    theta = np.asarray(neuron.v_threshold, np.float64) - np.asarray(neuron.v_leak, np.float64)
    mu_u = np.asarray(mu_u, np.float64)
    if np.any(mu_u >= theta):
        raise ValueError(f"`mu_u`={mu_u} must lie below the threshold ({theta} above rest).")
    sigma_u = (theta - mu_u) / xi
    return weight_moments(fan_in, rate, eps_bar, eps_hat, sigma_u=np.sqrt(alpha) * sigma_u,
                          mu_u=alpha * mu_u)
