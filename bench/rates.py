"""Making the snnx bench networks spike, and measuring how much they do.

Which layers are scaled and which spike is given per workload by `FEEDS` / `SPIKING` (layer
indices, the same in the snnx, Spyx and jaxpike versions of each network); the torch peers
name them (`peers/torch_peers.py`). See `common.calibrate` for why and how.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from common import CALIB_BATCH, calibrate

# Layer indices: the layer whose weight is scaled, and the spiking layer it feeds.
FEEDS = {"a": (0, 2), "b": (0,), "c": (0, 3, 7), "d": (0,)}
SPIKING = {"a": (1, 3), "b": (1,), "c": (2, 5, 8), "d": (1,)}


def scaled(model, net, scales):
    """`model` (an `snnx.Sequential`) with the weights of `FEEDS[net]` times `scales`."""
    if scales is None:
        return model

    def get(m):
        return [m.layers[i].weight for i in FEEDS[net]]

    return eqx.tree_at(get, model, [s * w for s, w in zip(scales, get(model))])


def snnx_rates(model, net, x):
    """Mean spikes per neuron and step of every `SPIKING[net]` layer; `x` batch-major."""
    import snnx

    out = []
    for j in SPIKING[net]:
        prefix = snnx.Sequential(model.layers[: j + 1])
        s, _ = jax.vmap(lambda xi: snnx.run(prefix, xi))(x)
        out.append(jnp.mean(s))
    return jnp.stack(out)


def calibrate_snnx(model, net, x):
    """`(scales, rates)`: scales found on the first `CALIB_BATCH` samples of `x`, rates
    measured on all of it."""
    f = jax.jit(lambda sc, x: snnx_rates(scaled(model, net, sc), net, x))
    x = jnp.asarray(x)
    scales, _ = calibrate(lambda sc: np.asarray(f(jnp.asarray(sc, jnp.float32),
                                                  x[:CALIB_BATCH])), len(FEEDS[net]))
    return scales, [float(r) for r in f(jnp.asarray(scales, jnp.float32), x)]


def max_leaf_diff(a, b):
    """Max |a - b| over two PyTrees with the same leaves in the same order."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert [x.shape for x in la] == [x.shape for x in lb], "gradient trees do not match"
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(la, lb))


def compare_with_handwritten(model, hand_logits, hand_params, x, y, reduce):
    """Max |snnx - hand-written| of the logits and of the cross-entropy gradients.

    `model` is the (spiking) snnx network, `hand_logits(params, xs)` the hand-written one on
    time-major `xs`, `reduce` the readout over time (`sum` of counts, `max` of membranes).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import snnx

    y = jnp.asarray(y)
    x = jnp.asarray(x)
    xs = jnp.moveaxis(x, 1, 0)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def logits(p, x):
        m = eqx.combine(p, static)
        return reduce(jax.vmap(lambda xi: snnx.run(m, xi)[0])(x), axis=1)

    def xent(z):
        return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()

    ga = jax.jit(jax.grad(lambda p, x: xent(logits(p, x))))(params, x)
    gb = jax.jit(jax.grad(lambda p, xs: xent(hand_logits(p, xs))))(hand_params, xs)
    a, b = jax.jit(logits)(params, x), jax.jit(hand_logits)(hand_params, xs)
    return float(jnp.max(jnp.abs(a - b))), max_leaf_diff(ga, gb)
