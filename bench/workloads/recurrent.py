"""(b) recurrent: 700 -> 256 recurrent LIF -> 20 LI, T=250, batch 32, 3% input density."""

import equinox as eqx
import handwritten as hw
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rates
from jaxstep import forward_step, train_step

NAME = "b_recurrent"
TITLE = "(b) recurrent 700-256R-20, T=250, B=32"
TAU = 10.0


def config(quick=False):
    return dict(T=250, B=32, n_in=700, hidden=256, n_out=20, density=0.03)


def make_data(cfg, seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.random((cfg["B"], cfg["T"], cfg["n_in"])) < cfg["density"]).astype(np.float32)
    return x, rng.integers(0, cfg["n_out"], cfg["B"]).astype(np.int32)


def snnx_model(cfg, seed=0):
    import snnx

    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    model = snnx.Sequential([
        eqx.nn.Linear(cfg["n_in"], cfg["hidden"], key=k1),
        snnx.Recurrent(snnx.LIF(TAU), cfg["hidden"], key=k2),
        eqx.nn.Linear(cfg["hidden"], cfg["n_out"], key=k3), snnx.LI(TAU),
    ])
    # the input weights times the calibrated scale (cfg["scales"], set by run.py)
    return rates.scaled(model, "b", cfg.get("scales", {}).get("snnx"))


def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_snnx(cfg, kind, data, unroll=None, events=False):
    """`events=True`: the input as `snnx.SpikeEvents` (event-driven first projection)."""
    import snnx

    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def logits(p, x):
        m = eqx.combine(p, static)
        return jax.vmap(lambda xi: snnx.run(m, xi, unroll=unroll)[0])(x).max(axis=1)

    x, y = (jnp.asarray(a) for a in data)
    if events:
        x = snnx.SpikeEvents.from_dense(data[0])
    if kind == "forward":
        return forward_step(logits, params, (x,))
    return train_step(lambda p, x, y: _xent(logits(p, x), y), params, (x, y))


def hw_params(cfg):
    m = snnx_model(cfg)
    return (hw.linear_params(m.layers[0]), m.layers[1].weight, hw.linear_params(m.layers[2]))


def build_handwritten(cfg, kind, data, unroll=1):
    x, y = data
    xs, y = jnp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2))), jnp.asarray(y)
    f = lambda p, xs: hw.rec_logits(p, xs, TAU, unroll=unroll)  # noqa: E731
    if kind == "forward":
        return forward_step(f, hw_params(cfg), (xs,))
    return train_step(lambda p, xs, y: _xent(f(p, xs), y), hw_params(cfg), (xs, y))


def check_equal(cfg, data):
    """Max |snnx - hand-written| of the logits and of the loss gradients (spiking)."""
    x, y = data
    return rates.compare_with_handwritten(
        snnx_model(cfg), lambda p, xs: hw.rec_logits(p, xs, TAU), hw_params(cfg), x, y, jnp.max)
