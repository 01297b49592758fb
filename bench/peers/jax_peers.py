"""Spyx 1.0 (Flax NNX) and jaxpike 0.1.4 (Equinox) versions of workloads (a)-(d).

Each is written the way that library's own docs and source show: Spyx steps the whole
`spyx.nn.Sequential` inside `spyx.nn.run`'s scan (time-major); jaxpike runs its
`Sequential` through `jaxpike.unroll` (which hoists `Dense` layers itself) and trains with
`jaxpike.make_step`. Same sizes, LIF decay exp(-1/10), fast-sigmoid-style surrogates,
max-over-time cross-entropy and Adam(1e-3).

(b) recurrent: Spyx `spyx.nn.RLIF` (its all-to-all recurrent LIF cell, spikes of t-1 fed
back through `recurrent_w`); jaxpike a `jp.Graph` with a `Dense` back-edge, exactly as in its
`graph.py` docstring (the back-edge reads the previous step). (c) conv: jaxpike has its own
`Conv2d` / `Pool2d(mode="max")` / `Flatten` (NHWC); Spyx has no conv layers, so `nnx.Conv`
and `nnx.max_pool` (Flax, NHWC) sit inside its `Sequential` with `spyx.nn.LIF` and
`spyx.nn.Flatten`. Loss: cross-entropy on output spike counts. (d) `Linear(N, N)` + LIF,
loss the mean output spike rate. Each library's own neuron maths is kept (Spyx: no (1-beta)
input gain, spike from the membrane before the update; jaxpike: normalised (1-alpha) gain).

Spiking: each library's own initialisation, then the weights feeding every spiking layer
times a scale calibrated per library (`calibrate_spyx` / `calibrate_jaxpike`, the same
bisection and target rate as snnx's, `common.calibrate`), passed in as `cfg["scales"][lib]`.

Settings: jaxpike's `unroll(..., scan_unroll=)` is its one documented speed option
(`jaxpike/execution.py`: default `SCAN_UNROLL = 8`, "measured on a T4"); its best on CPU is
1 (the suite's unroll study and the issue-12 measurement), 8 on a GPU, so
`build_jaxpike_*(..., scan_unroll=None)` is its default and run.py adds the best one. Spyx's
`spyx.nn.run(model, x, state=None, *, batch_major=False)` has no speed option (it always steps
the whole `Sequential`, linear layers included, inside one `lax.scan` with unroll 1).
`compiler_options=`: the step compiled with those XLA options (run.py passes
`snnx.compiler_options()` on (c), as it gives snnx).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import CALIB_BATCH, calibrate, jax_peak_bytes
from rates import FEEDS, SPIKING

TAU = 10.0


def _eqx_peak_bytes(fn, *args):
    """`jax_peak_bytes` for an `eqx.filter_jit` function (whose compiled object has no
    `memory_analysis`): the same computation under `jax.jit`, arrays as the arguments."""
    import equinox as eqx

    dyn, static = eqx.partition(args, eqx.is_array)
    return jax_peak_bytes(jax.jit(lambda d: fn(*eqx.combine(d, static))), dyn)


def _ce(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_spyx_a(cfg, kind, data, compiler_options=None):
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 2))
    return _spyx_build("a", cfg, kind, xs, jnp.asarray(y), lambda o: o.max(axis=0), _ce,
                       compiler_options)


def _jaxpike_model(net, cfg):
    import jaxpike as jp

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    if net == "a":
        h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
        return jp.Sequential(
            jp.Dense(n_in, h, key=k1), jp.LIF(TAU),
            jp.Dense(h, h, key=k2), jp.LIF(TAU),
            jp.Dense(h, n_out, key=k3), jp.LeakyIntegrator(TAU),
        )
    if net == "b":
        h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
        return jp.Graph(
            nodes={
                "w_in": jp.Dense(n_in, h, key=k1),
                "hidden": jp.LIF(TAU),
                "w_rec": jp.Dense(h, h, key=k2),
                "w_out": jp.Dense(h, n_out, key=k3),
                "out": jp.LeakyIntegrator(TAU),
            },
            edges=[("input", "w_in"), ("w_in", "hidden"),
                   ("hidden", "w_rec"), ("w_rec", "hidden"),
                   ("hidden", "w_out"), ("w_out", "out")],
            output="out",
        )
    if net == "c":
        return jp.Sequential(
            jp.Conv2d(2, 12, 5, padding="VALID", key=k1), jp.Pool2d(2, mode="max"),
            jp.LIF(TAU),
            jp.Conv2d(12, 32, 5, padding="VALID", key=k2), jp.Pool2d(2, mode="max"),
            jp.LIF(TAU),
            jp.Flatten(), jp.Dense(800, cfg["n_out"], key=k3), jp.LIF(TAU),
        )
    n = cfg["n"]
    return jp.Sequential(jp.Dense(n, n, key=jax.random.key(0)), jp.LIF(TAU))


def _jaxpike_scaled(net, model, scales):
    import equinox as eqx

    if scales is None:
        return model
    if net == "b":
        def get(m):
            return [m.nodes["w_in"].weight]
    else:
        def get(m):
            return [m.layers[i].weight for i in FEEDS[net]]
    return eqx.tree_at(get, model, [s * w for s, w in zip(scales, get(model))])


def _jaxpike_rates(net, model, xs):
    import jaxpike as jp

    if net == "b":  # the graph up to the recurrent hidden layer
        nodes = {k: model.nodes[k] for k in ("w_in", "hidden", "w_rec")}
        sub = jp.Graph(nodes=nodes, edges=[("input", "w_in"), ("w_in", "hidden"),
                                           ("hidden", "w_rec"), ("w_rec", "hidden")],
                       output="hidden")
        return jnp.stack([jp.unroll(sub, xs)[0].mean()])
    return jnp.stack([jp.unroll(jp.Sequential(*model.layers[: j + 1]), xs)[0].mean()
                      for j in SPIKING[net]])


def calibrate_jaxpike(net, cfg, data):
    """`(scales, rates)` for jaxpike's version of workload `net` (see `common.calibrate`)."""
    model = _jaxpike_model(net, cfg)
    xs = _time_major(net, data)
    f = jax.jit(lambda sc, xs: _jaxpike_rates(net, _jaxpike_scaled(net, model, sc), xs))
    scales, _ = calibrate(lambda sc: np.asarray(f(jnp.asarray(sc, jnp.float32),
                                                  xs[:, :CALIB_BATCH])), len(FEEDS[net]))
    return scales, [float(r) for r in f(jnp.asarray(scales, jnp.float32), xs)]


def _spyx_scale(net, model, scales):
    """Multiply, in place, the kernels feeding the spiking layers of a Spyx model."""
    if scales is None:
        return model
    for i, s in zip(FEEDS[net], scales):
        model.layers[i].kernel.value = s * model.layers[i].kernel.value
    return model


def calibrate_spyx(net, cfg, data):
    """`(scales, rates)` for Spyx's version of workload `net` (see `common.calibrate`)."""
    import spyx
    from flax import nnx

    graphdef, params = nnx.split(_spyx_model(net, cfg))
    xs = _time_major(net, data)

    @jax.jit
    def rates_of(sc, xs, params):  # params traced: nnx mutates a Param in its own trace only
        m = _spyx_scale(net, nnx.merge(graphdef, params), sc)
        return jnp.stack([spyx.nn.run(spyx.nn.Sequential(*m.layers[: j + 1]), xs)[0].mean()
                          for j in SPIKING[net]])

    def f(sc, xs):
        return rates_of(sc, xs, params)

    scales, _ = calibrate(lambda sc: np.asarray(f(jnp.asarray(sc, jnp.float32),
                                                  xs[:, :CALIB_BATCH])), len(FEEDS[net]))
    return scales, [float(r) for r in f(jnp.asarray(scales, jnp.float32), xs)]


def _time_major(net, data):
    if net == "c":  # (T, B, H, W, C): Flax and jaxpike convs are NHWC
        return jnp.asarray(data[0].transpose(1, 0, 3, 4, 2))
    return jnp.asarray(data[0].transpose(1, 0, 2))


def build_jaxpike_a(cfg, kind, data, scan_unroll=None, compiler_options=None):
    import jaxpike as jp

    return _jaxpike_build("a", cfg, kind, data, jp.max_membrane_logits, jp.cross_entropy,
                          scan_unroll, compiler_options)


def _spyx_model(kind_of_net, cfg):
    import spyx
    from flax import nnx

    beta = math.exp(-1.0 / TAU)
    rngs = nnx.Rngs(0)
    if kind_of_net == "a":
        h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
        return spyx.nn.Sequential(
            nnx.Linear(n_in, h, rngs=rngs), spyx.nn.LIF((h,), beta=beta, rngs=rngs),
            nnx.Linear(h, h, rngs=rngs), spyx.nn.LIF((h,), beta=beta, rngs=rngs),
            nnx.Linear(h, n_out, rngs=rngs), spyx.nn.LI((n_out,), beta=beta, rngs=rngs),
        )
    if kind_of_net == "b":
        h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
        return spyx.nn.Sequential(
            nnx.Linear(n_in, h, rngs=rngs), spyx.nn.RLIF((h,), beta=beta, rngs=rngs),
            nnx.Linear(h, n_out, rngs=rngs), spyx.nn.LI((n_out,), beta=beta, rngs=rngs),
        )
    if kind_of_net == "c":
        return spyx.nn.Sequential(
            nnx.Conv(2, 12, (5, 5), padding="VALID", rngs=rngs), _MaxPool2(),
            spyx.nn.LIF((15, 15, 12), beta=beta, rngs=rngs),
            nnx.Conv(12, 32, (5, 5), padding="VALID", rngs=rngs), _MaxPool2(),
            spyx.nn.LIF((5, 5, 32), beta=beta, rngs=rngs),
            spyx.nn.Flatten(), nnx.Linear(800, cfg["n_out"], rngs=rngs),
            spyx.nn.LIF((cfg["n_out"],), beta=beta, rngs=rngs),
        )
    n = cfg["n"]
    return spyx.nn.Sequential(nnx.Linear(n, n, rngs=rngs),
                              spyx.nn.LIF((n,), beta=beta, rngs=rngs))


def _max_pool2(x):
    from flax import nnx

    return nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class _MaxPool2:
    """Stateless 2x2 max pool (NHWC) for a Spyx Sequential: Flax's `nnx.max_pool`."""

    def __call__(self, x):
        return _max_pool2(x)


def _spyx_build(net, cfg, kind, xs, y, readout, loss, compiler_options=None):
    from flax import nnx

    model = _spyx_scale(net, _spyx_model(net, cfg), cfg.get("scales", {}).get("spyx"))
    graphdef, params = nnx.split(model)

    def out(params, xs):
        import spyx

        m = nnx.merge(graphdef, params)
        o, _ = spyx.nn.run(m, xs)
        return readout(o)

    from jaxstep import forward_step, train_step

    opts = compiler_options
    if kind == "forward":
        return forward_step(out, params, (xs,), compiler_options=opts)
    if y is None:
        return train_step(lambda p, xs: loss(out(p, xs)), params, (xs,), compiler_options=opts)
    return train_step(lambda p, xs, y: loss(out(p, xs), y), params, (xs, y),
                      compiler_options=opts)


def build_spyx_b(cfg, kind, data, compiler_options=None):
    return _spyx_build("b", cfg, kind, _time_major("b", data), jnp.asarray(data[1]),
                       lambda o: o.max(axis=0), _ce, compiler_options)


def build_spyx_c(cfg, kind, data, compiler_options=None):
    return _spyx_build("c", cfg, kind, _time_major("c", data), jnp.asarray(data[1]),
                       lambda o: o.sum(axis=0), _ce, compiler_options)


def build_spyx_d(cfg, kind, data, compiler_options=None):
    return _spyx_build("d", cfg, kind, _time_major("d", data), None, lambda o: o,
                       lambda o: o.mean(), compiler_options)


def _jaxpike_build(net, cfg, kind, data, readout, loss, scan_unroll=None,
                   compiler_options=None):
    """jaxpike's `unroll` + `make_step`; `compiler_options` compiles the same step with
    `jax.jit(..., compiler_options=)` around it (make_step's `eqx.filter_jit` takes none)."""
    import equinox as eqx
    import jaxpike as jp

    model = _jaxpike_scaled(net, _jaxpike_model(net, cfg), cfg.get("scales", {}).get("jaxpike"))
    xs = _time_major(net, data)
    y = jnp.asarray(data[1]) if len(data) > 1 else None

    def run(m, xs):
        return readout(jp.unroll(m, xs, scan_unroll=scan_unroll)[0])

    if kind == "forward":
        f = eqx.filter_jit(run)
        if compiler_options:
            dyn, static = eqx.partition(model, eqx.is_array)
            g = jax.jit(lambda d, xs: run(eqx.combine(d, static), xs),
                        compiler_options=compiler_options)
            return (lambda: g(dyn, xs)), jax_peak_bytes(g, dyn, xs)
        return (lambda: f(model, xs)), _eqx_peak_bytes(f, model, xs)

    def loss_fn(m, xs, y):
        return loss(run(m, xs), y), None

    opt = optax.adam(1e-3)
    step = jp.make_step(loss_fn, opt)
    holder = [model, opt.init(eqx.filter(model, eqx.is_inexact_array))]
    if compiler_options:
        dyn, static = eqx.partition(tuple(holder), eqx.is_array)

        def pure(d, xs, y):
            n, o, loss_, _ = step(*eqx.combine(d, static), xs, y)
            return eqx.filter((n, o), eqx.is_array), loss_

        g = jax.jit(pure, compiler_options=compiler_options)
        box = [dyn]

        def call():
            box[0], loss_ = g(box[0], xs, y)
            return loss_

        return call, jax_peak_bytes(g, dyn, xs, y)
    mem = _eqx_peak_bytes(step, holder[0], holder[1], xs, y)

    def call():
        n, o, loss_, _ = step(holder[0], holder[1], xs, y)
        holder[0], holder[1] = n, o
        return loss_

    return call, mem


def build_jaxpike_b(cfg, kind, data, scan_unroll=None, compiler_options=None):
    import jaxpike as jp

    return _jaxpike_build("b", cfg, kind, data, jp.max_membrane_logits, jp.cross_entropy,
                          scan_unroll, compiler_options)


def build_jaxpike_c(cfg, kind, data, scan_unroll=None, compiler_options=None):
    import jaxpike as jp

    return _jaxpike_build("c", cfg, kind, data, jp.spike_count, jp.cross_entropy,
                          scan_unroll, compiler_options)


def build_jaxpike_d(cfg, kind, data, scan_unroll=None, compiler_options=None):
    import jaxpike as jp

    return _jaxpike_build("d", cfg, kind, data, lambda o: o,
                          lambda o, _: jp.spike_rate(o).mean(), scan_unroll, compiler_options)
