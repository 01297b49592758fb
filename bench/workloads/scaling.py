"""(d) scaling: one Linear(N, N) + LIF layer, N in {1k, 4k, 16k}, T=500, batch 16.

The open-neuromorphic library comparison's shape. Loss: mean output spike rate (a
stand-in: the point is the cost of the step). Input: 3% spikes.
"""

import equinox as eqx
import handwritten as hw
import jax
import jax.numpy as jnp
import numpy as np
import rates
from jaxstep import forward_step, train_step

NAME = "d_scaling"
TAU = 10.0


def config(n, quick=False):
    return dict(T=500, B=16, n=n, density=0.03)


def make_data(cfg, seed=3):
    rng = np.random.default_rng(seed)
    return ((rng.random((cfg["B"], cfg["T"], cfg["n"]), dtype=np.float32) < cfg["density"])
            .astype(np.float32),)


def snnx_model(cfg, seed=0):
    import snnx

    model = snnx.Sequential([eqx.nn.Linear(cfg["n"], cfg["n"], key=jax.random.key(seed)),
                             snnx.LIF(TAU)])
    # the weights times the calibrated scale (cfg["scales"], set by run.py)
    return rates.scaled(model, "d", cfg.get("scales", {}).get("snnx"))


def build_snnx(cfg, kind, data, unroll=None, events=False):
    """`events=True`: the input as `snnx.SpikeEvents` (event-driven first projection)."""
    import snnx

    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def out(p, x):
        m = eqx.combine(p, static)
        return jax.vmap(lambda xi: snnx.run(m, xi, unroll=unroll)[0])(x)

    x = snnx.SpikeEvents.from_dense(data[0]) if events else jnp.asarray(data[0])
    if kind == "forward":
        return forward_step(lambda p, x: out(p, x).mean(), params, (x,))
    return train_step(lambda p, x: out(p, x).mean(), params, (x,))


def build_handwritten(cfg, kind, data, unroll=1):
    xs = jnp.asarray(np.ascontiguousarray(data[0].transpose(1, 0, 2)))
    m = snnx_model(cfg)
    p = hw.linear_params(m.layers[0])
    f = lambda p, xs: hw.scale_out(p, xs, TAU, unroll=unroll).mean()  # noqa: E731
    if kind == "forward":
        return forward_step(f, p, (xs,))
    return train_step(f, p, (xs,))


def check_equal(cfg, data):
    """Max |snnx - hand-written| of the output spikes and of the loss gradients, and the
    fraction of spikes that differ (a membrane within float rounding of the threshold)."""
    import snnx

    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def out(p, x):
        m = eqx.combine(p, static)
        return jax.vmap(lambda xi: snnx.run(m, xi)[0])(x)

    x = jnp.asarray(data[0])
    xs = jnp.asarray(data[0].transpose(1, 0, 2))
    hand = lambda p, xs: hw.scale_out(p, xs, TAU)  # noqa: E731
    p_hw = hw.linear_params(model.layers[0])
    ga = jax.jit(jax.grad(lambda p, x: out(p, x).mean()))(params, x)
    gb = jax.jit(jax.grad(lambda p, xs: hand(p, xs).mean()))(p_hw, xs)
    a, b = jax.jit(out)(params, x), jax.jit(hand)(p_hw, xs).transpose(1, 0, 2)
    return (float(jnp.max(jnp.abs(a - b))), rates.max_leaf_diff(ga, gb),
            float(jnp.mean(a != b)))
