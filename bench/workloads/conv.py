"""(c) N-MNIST-shaped convolutional: 2x34x34 -> 12C5-MP2-LIF-32C5-MP2-LIF-10 LIF.

T=30, batch 32, 10% input density; cross-entropy on output spike counts; Adam.
"""

import equinox as eqx
import handwritten as hw
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rates
from jaxstep import forward_step, train_step

NAME = "c_conv"
TITLE = "(c) conv 2x34x34-12C5-MP2-32C5-MP2-10, T=30, B=32"
TAU = 10.0


def config(quick=False):
    return dict(T=30, B=32, n_out=10, density=0.1)


def make_data(cfg, seed=2):
    rng = np.random.default_rng(seed)
    x = (rng.random((cfg["B"], cfg["T"], 2, 34, 34)) < cfg["density"]).astype(np.float32)
    return x, rng.integers(0, cfg["n_out"], cfg["B"]).astype(np.int32)


def snnx_model(cfg, seed=0):
    import snnx

    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    model = snnx.Sequential([
        eqx.nn.Conv2d(2, 12, 5, key=k1), eqx.nn.MaxPool2d(2, 2), snnx.LIF(TAU),
        eqx.nn.Conv2d(12, 32, 5, key=k2), eqx.nn.MaxPool2d(2, 2), snnx.LIF(TAU),
        jnp.ravel, eqx.nn.Linear(32 * 5 * 5, cfg["n_out"], key=k3), snnx.LIF(TAU),
    ])
    # conv / linear weights times the calibrated scales (cfg["scales"], set by run.py)
    return rates.scaled(model, "c", cfg.get("scales", {}).get("snnx"))


def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_snnx(cfg, kind, data, unroll=None, tuned=False):
    """`tuned=True`: compiled with `snnx.compiler_options()`, as `snnx.fit` compiles."""
    import snnx

    opts = snnx.compiler_options() if tuned else None

    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def logits(p, x):
        m = eqx.combine(p, static)
        return jax.vmap(lambda xi: snnx.run(m, xi, unroll=unroll)[0])(x).sum(axis=1)

    x, y = (jnp.asarray(a) for a in data)
    if kind == "forward":
        return forward_step(logits, params, (x,), compiler_options=opts)
    return train_step(lambda p, x, y: _xent(logits(p, x), y), params, (x, y),
                      compiler_options=opts)


def hw_params(cfg):
    m = snnx_model(cfg)
    c1, c2, lin = m.layers[0], m.layers[3], m.layers[7]
    return ((c1.weight, c1.bias), (c2.weight, c2.bias), hw.linear_params(lin))


def build_handwritten(cfg, kind, data, unroll=1, tuned=False):
    """`tuned=True`: compiled with `snnx.compiler_options()`, as the snnx row of that name."""
    import snnx

    opts = snnx.compiler_options() if tuned else None
    x, y = data
    xs = jnp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4)))
    y = jnp.asarray(y)
    f = lambda p, xs: hw.conv_logits(p, xs, TAU, unroll=unroll)  # noqa: E731
    if kind == "forward":
        return forward_step(f, hw_params(cfg), (xs,), compiler_options=opts)
    return train_step(lambda p, xs, y: _xent(f(p, xs), y), hw_params(cfg), (xs, y),
                      compiler_options=opts)


def check_equal(cfg, data):
    """Max |snnx - hand-written| of the spike counts and of the loss gradients (spiking)."""
    x, y = data
    return rates.compare_with_handwritten(
        snnx_model(cfg), lambda p, xs: hw.conv_logits(p, xs, TAU), hw_params(cfg), x, y, jnp.sum)
