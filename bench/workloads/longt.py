"""(e) long-T, small batch: (a)'s network 700 -> 128 LIF -> 128 LIF -> 20 LI at T=250, B=32.

The layout study of issue 17: with few samples and many steps, every transpose between a
batch-major matmul and a time scan is a large share of the step. Rows: the plain user
pattern (`jax.vmap(snnx.run)` on batch-major data), `snnx.engine.run_batch` on the same
batch-major data and on time-major data (`batch_axis=1`), `snnx.make_step` (the library's
own compiled step on batch-major data), and the hand-written reference (time-major data, as
an expert stages it). Same weights as (a)'s builder at this T.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax

from workloads import shd

NAME = "e_long_t"
TITLE = "(e) SHD-shaped FF 700-128-128-20, T=250, B=32, 3% density"


def config(quick=False):
    return dict(shd.config(T=250), B=32)


make_data = shd.make_data
snnx_model = shd.snnx_model
build_handwritten = shd.build_handwritten
check_equal = shd.check_equal


def build_snnx(cfg, kind, data, **kw):
    """The plain user pattern: `jax.jit(jax.vmap(snnx.run))` on batch-major data."""
    return shd.build_snnx(cfg, kind, data, **kw)


def build_run_batch(cfg, kind, data, *, time_major):
    """`snnx.engine.run_batch` on batch-major data, or on time-major data (`batch_axis=1`,
    the array staged time-major outside the timed step, as the hand-written one is)."""
    from jaxstep import forward_step, train_step

    import snnx

    run_batch = snnx.engine.run_batch  # an AttributeError here: not in this snnx (a row
    # "not run" in an A/B against an older tree)
    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))
    ax = 1 if time_major else 0

    def logits(p, x):
        out, _ = run_batch(eqx.combine(p, static), x, batch_axis=ax)
        return out.max(axis=1 - ax)

    x, y = data
    x = jnp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2)) if time_major else x)
    if kind == "forward":
        return forward_step(logits, params, (x,))
    return train_step(lambda p, x, y: shd._xent(logits(p, x), y), params,
                      (x, jnp.asarray(y)))


def build_make_step(cfg, kind, data):
    """`snnx.make_step` with the same loss (CE on max-over-time) and Adam: the library's own
    compiled step, batch-major data; `kind="forward"` is `snnx.evaluate`'s batch program."""
    import snnx

    model = snnx_model(cfg)
    x, y = (jnp.asarray(a) for a in data)
    if kind == "forward":
        from snnx.train._step import StepConfig, programs

        c = StepConfig(snnx.losses.ce_max_membrane, None, None, None, (), False, True)
        ev = programs(c).eval_batch
        idx, w = jnp.arange(x.shape[0]), jnp.ones(x.shape[0], jnp.float32)
        return (lambda: ev(model, x, y, idx, w)), None
    opt = optax.adam(1e-3)
    step = snnx.make_step(snnx.losses.ce_max_membrane, opt)
    holder = [model, opt.init(eqx.filter(model, snnx.trainable_spec(model)))]

    def call():
        holder[0], holder[1], info = step(holder[0], holder[1], x, y)
        return info["loss"]

    return call, None

