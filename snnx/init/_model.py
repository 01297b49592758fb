"""Fluctuation-driven weights for a whole `snnx.Sequential`, and fixed-probability
sparse connectivity that keeps the drive."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import check_key
from ..engine import run
from ..layers.recurrent import Recurrent
from ..layers.sequential import Sequential
from ..layers.sparse import SparseLinear
from ..neurons._abstract import AbstractNeuron
from ._moments import SUPPORTED, fluctuation_moments, positive

_CONNECTIONS = (eqx.nn.Linear, eqx.nn.Conv, SparseLinear)


def _fan_in(weight) -> int:
    return int(np.prod(weight.shape[1:]))


def _per_row(a, weight, what):
    """Broadcast per-neuron moments to a weight's output rows (Linear-like only)."""
    a = np.asarray(a, np.float64)
    if a.size == 1:
        return a.reshape(())
    if weight.ndim == 2 and a.shape == (weight.shape[0],):
        return a[:, None]
    raise ValueError(
        f"{what}: per-neuron parameters of shape {a.shape} need a Linear weight with "
        f"{a.size} outputs (got weight {weight.shape}); use scalar time constants."
    )


def _draw(key, weight, mu_w, sigma_w, p, what):
    mu = _per_row(mu_w, weight, what)
    sd = _per_row(sigma_w, weight, what)
    k1, k2 = jax.random.split(key)
    w = mu + sd * np.asarray(jax.random.normal(k1, weight.shape, jnp.float32), np.float64)
    if p < 1.0:
        w = w * np.asarray(jax.random.bernoulli(k2, p, weight.shape))
    return jnp.asarray(w, weight.dtype)


def _with_weight(layer, weight):
    layer = eqx.tree_at(lambda m: m.weight, layer, weight)
    if layer.bias is not None:
        layer = eqx.tree_at(lambda m: m.bias, layer, jnp.zeros_like(layer.bias))
    return layer


def _targets(model):
    """(connection index, neuron index) pairs of a Sequential."""
    if not isinstance(model, Sequential):
        raise TypeError(
            f"`model` must be an `snnx.Sequential`, got {type(model).__name__}; for one layer "
            f"use `fluctuation_moments` and `eqx.tree_at`."
        )
    pairs, pending = [], None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, _CONNECTIONS):
            if pending is not None:
                raise ValueError(
                    f"`model` layer {pending} (a connection) is followed by another "
                    f"connection (layer {i}) before any neuron; put a neuron after each."
                )
            pending = i
        elif isinstance(layer, (AbstractNeuron, Recurrent)):
            neuron = layer.neuron if isinstance(layer, Recurrent) else layer
            if isinstance(neuron, SUPPORTED):
                pairs.append((pending, i))
            pending = None
    return pairs


def fluctuation_driven(
    model,
    key: PRNGKeyArray,
    *,
    rate=None,
    xs=None,
    xi: float = 2.0,
    mu_u=0.0,
    alpha: float = 0.9,
    p: float = 1.0,
):
    r"""A copy of `model` with fluctuation-driven weights in every connection.

    Each connection layer (`eqx.nn.Linear`, `eqx.nn.Conv`, `snnx.SparseLinear`) followed by
    a neuron, and each `snnx.Recurrent`'s recurrent matrix, gets weights drawn from
    $\mathcal{N}(\mu_w, \sigma_w^2)$ (`fluctuation_moments` of that neuron) and a zero
    bias. A recurrent layer gives the share `alpha` of the membrane budget to its input
    connection and $1-\alpha$ to the recurrent weights (whose inputs are its own neurons,
    firing at `rate` too).

    **Arguments:**

    - `model`: an `snnx.Sequential` of connections each followed by an `snnx.LIF`,
        `snnx.CuBaLIF`, or an `snnx.Recurrent` of one (stateless layers such as `Flatten`
        may sit between). Connections followed by another neuron (an `snnx.LI` readout,
        which has no threshold) keep their weights.
    - `key`: a PRNG key.
    - `rate`: the expected input rate of every connection (spikes per unit time); a
        sequence gives one per connection, in order (recurrent matrices use the rate of
        their layer's input connection).
    - `xs`: instead of `rate`, sample inputs `(B, T, *input_shape)`: each connection's
        input rate is then measured on them, layer by layer, after the layers before it
        are initialised (deep layers rarely fire at the rate assumed for the first).
    - `xi`: standard deviations below threshold. Default 2.
    - `mu_u`: the membrane's mean above rest. Default 0 (centred weights).
    - `alpha`: feed-forward share of a recurrent layer's budget, in (0, 1). Default 0.9.
    - `p`: connection probability (GeNN's `FixedProbability`): each weight exists with
        probability `p`, and the moments are those for the mean fan-in `p * n`, so the
        drive stays the same. Default 1 (dense).

    **Returns:**

    The model with new weights (`eqx.tree_at`); everything else unchanged.

    **Raises:**

    `TypeError`/`ValueError` naming the argument: not a `Sequential`, a connection without
    a neuron after it, an unsupported neuron, a bad number.
    """
    check_key(key)
    p = positive("p", p, upper=1.0)
    pairs = _targets(model)
    n_conn = sum(c is not None for c, _ in pairs)
    if (rate is None) == (xs is None):
        raise ValueError("give exactly one of `rate` (expected input rates) and `xs` (sample "
                         "inputs to measure them on).")
    if xs is not None:
        xs = jnp.asarray(xs)
        if xs.ndim < 3:
            raise ValueError(f"`xs` must be a batch (B, T, *input_shape), got shape {xs.shape}; "
                             f"for one sample use `xs[None]`.")
        rates = None
    elif isinstance(rate, (list, tuple)):
        if len(rate) != n_conn:
            raise ValueError(f"`rate` has {len(rate)} entries for {n_conn} connections; give "
                             f"one per connection or a single number.")
        rates = list(rate)
    else:
        rates = None
    layers = list(model.layers)
    keys = jax.random.split(key, 2 * max(len(pairs), 1))
    r = 0
    for j, (ci, ni) in enumerate(pairs):
        target = layers[ni]
        recurrent = isinstance(target, Recurrent)
        neuron = target.neuron if recurrent else target
        share = 1.0
        if recurrent and ci is not None:
            share = positive("alpha", alpha, upper=1.0)
            if share == 1.0:
                raise ValueError("`alpha` must be < 1 for a recurrent layer (1 leaves the "
                                 "recurrent weights no share).")
        if xs is not None:
            nu = _measured_rate(layers, ci if ci is not None else ni, xs, neuron.dt)
        elif ci is not None:
            nu = rates[r] if rates is not None else rate
            r += 1
        elif rates is None:
            nu = rate
        else:
            raise ValueError(f"`model` layer {ni} (Recurrent) has no input connection to take "
                             f"a rate from; give `rate` as a single number.")
        if ci is not None:
            conn = layers[ci]
            mu_w, sd_w = fluctuation_moments(neuron, p * _fan_in(conn.weight), nu, xi=xi,
                                             mu_u=mu_u, alpha=share)
            layers[ci] = _with_weight(conn, _draw(keys[2 * j], conn.weight, mu_w, sd_w, p,
                                                  f"`model` layer {ci}"))
        if recurrent:
            n = target.size - (1 if target.zero_diagonal else 0)
            rest = 1.0 - share if ci is not None else 1.0
            mu_w, sd_w = fluctuation_moments(neuron, p * n, nu, xi=xi, mu_u=mu_u, alpha=rest)
            layers[ni] = _with_weight(target, _draw(keys[2 * j + 1], target.weight, mu_w,
                                                    sd_w, p, f"`model` layer {ni}"))
    return Sequential(layers)


def _measured_rate(layers, index, xs, dt) -> float:
    """The mean input rate of layer `index` on the batch `xs`, spikes per unit time."""
    if index == 0:
        inp = xs
    else:
        prefix = Sequential(layers[:index])
        inp = jax.vmap(lambda x: run(prefix, x)[0])(xs)
    nu = float(jnp.mean(inp)) / dt
    if not nu > 0:
        raise ValueError(
            f"`xs`: the input of `model` layer {index} is silent on these samples, so no rate "
            f"can be measured; lower `xi` or raise `mu_u` for the layers before it."
        )
    return nu


def fixed_probability(layer, key: PRNGKeyArray, p: float):
    r"""Sparse fixed-probability connectivity (GeNN's `FixedProbability`) keeping the drive.

    Each weight of `layer` is kept with probability `p` (else set to 0) and the kept
    weights are mapped $w \mapsto \mu/p + b\,(w - \mu)$, with $\mu$, $s^2$ the weights'
    mean and variance and $b$ chosen so that, in expectation over the mask, every neuron's
    summed input keeps its mean ($\propto \sum w$) and its Poisson fluctuation
    ($\propto \sum w^2$) — so the membrane moments of `fluctuation_moments` still hold.
    For zero-mean weights this is the familiar $w/\sqrt{p}$.

    **Arguments:**

    - `layer`: an `eqx.nn.Linear`, `eqx.nn.Conv` or `snnx.SparseLinear`.
    - `key`: a PRNG key for the mask.
    - `p`: connection probability, in (0, 1].

    **Returns:**

    The layer with the sparse weights.

    **Raises:**

    `TypeError` for another layer; `ValueError` for a bad `p`, or weights whose mean is too
    large for their spread to keep both moments at this `p`.
    """
    if not isinstance(layer, _CONNECTIONS):
        raise TypeError(f"`layer` must be an `eqx.nn.Linear`, `eqx.nn.Conv` or "
                        f"`snnx.SparseLinear`, got {type(layer).__name__}.")
    check_key(key)
    p = positive("p", p, upper=1.0)
    w = np.asarray(layer.weight, np.float64)
    mu, var = float(w.mean()), float(w.var())
    # E_mask[sum w'] = n mu and E_mask[sum w'^2] = n (mu^2 + var)
    b2 = (mu**2 + var - mu**2 / p) / (p * var) if var > 0 else -1.0
    if b2 < 0:
        raise ValueError(
            f"`layer`'s weights (mean {mu:.3g}, std {math.sqrt(var):.3g}) cannot keep both the "
            f"mean and the fluctuation of the drive at `p`={p}: draw them for the sparse "
            f"fan-in instead (`fluctuation_driven(..., p=p)`)."
        )
    mask = np.asarray(jax.random.bernoulli(key, p, w.shape))
    new = (mu / p + math.sqrt(b2) * (w - mu)) * mask
    return eqx.tree_at(lambda m: m.weight, layer, jnp.asarray(new, layer.weight.dtype))
