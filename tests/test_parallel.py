"""snnx.parallel: data parallel, pipelined stages, both together, and their bad inputs.

The multi-device checks run in ONE subprocess with 4 host devices (the XLA flag must be set
before JAX starts); this file is also that subprocess's script (`__main__` below)."""

import functools
import json
import os
import socket
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx import parallel as par

LOSS = snnx.losses.ce_max_membrane

# the module-scoped fixture is expensive: keep this file on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("parallel")


def model_and_data(dtype, depth=2, n=24, T=8, n_in=10):
    k = jax.random.split(jax.random.key(0), 8)
    sizes = [n_in] + [12] * (depth - 1) + [3]
    layers = []
    for i in range(depth):
        lin = eqx.nn.Linear(sizes[i], sizes[i + 1], key=k[i], dtype=dtype)
        lin = eqx.tree_at(lambda m: m.weight, lin, lin.weight * 6.0)  # hidden layers spike
        layers += [lin, snnx.LIF(tau=4.0) if i < depth - 1 else snnx.LI(tau=4.0)]
    model = snnx.Sequential(layers)
    x = np.asarray(jax.random.uniform(k[6], (n, T, n_in)) < 0.3, np.float32)
    y = np.asarray(jax.random.randint(k[7], (n,), 0, 3))
    return model, x, y


# ---------------------------------------------------------------- subprocess checks


def _maxdiff(a, b):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb)
    return max(float(jnp.max(jnp.abs(jnp.asarray(u) - jnp.asarray(v)))) for u, v in zip(la, lb))


def _fit(model, data, y, mesh=None, **kw):
    kw = dict(epochs=2, key=jax.random.key(1), progress=False, events=False, batch_size=8,
              **kw)
    return snnx.fit(model, LOSS, optax.adam(2e-2), (data, y), mesh=mesh, **kw)


def _leaves(m):
    return [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(eqx.filter(m, eqx.is_array))]


def _compare(ref, model, got):
    (m1, h1), (m4, h4) = ref, got
    return {"param": _maxdiff(m1, m4), "moved": _maxdiff(m1, model),
            "loss": float(np.max(np.abs(np.subtract(h1["loss"], h4["loss"])))),
            "rate": h1["rates"][-1].get(1, 0.0),
            "devices": len(jax.tree.leaves(eqx.filter(m4, eqx.is_array))[0].sharding.device_set)}


def _data_parallel(dtype, full):
    model, x, y = model_and_data(dtype)
    mesh = jax.make_mesh((4,), ("data",))
    opt = optax.sgd(0.1)
    o = opt.init(eqx.filter(model, snnx.trainable_spec(model)))
    m1, _, i1 = snnx.make_step(LOSS, opt)(model, o, x[:6], y[:6])
    m4, _, i4 = snnx.make_step(LOSS, opt, mesh=mesh)(model, o, x[:6], y[:6])
    # 6 does not divide 4 devices: padded to 8, the padding has weight 0.
    res = {"make_step_pad": {"param": _maxdiff(m1, m4), "count": float(i4["count"]),
                             "moved": _maxdiff(m1, model),
                             "loss": abs(float(i1["loss"]) - float(i4["loss"]))}}
    if not full:
        return res
    # One single-device reference; every input format on the mesh must reproduce it.
    ref = _fit(model, x, y, scan_epoch=True)
    res["dense_scan"] = _compare(ref, model, _fit(model, x, y, mesh, scan_epoch=True))
    res["ref_params"] = _leaves(ref[0])
    res["packed_steps"] = _compare(ref, model, _fit(model, snnx.data.PackedSpikes(x), y, mesh))
    res["events_scan"] = _compare(ref, model, _fit(model, snnx.SpikeEvents.from_dense(x), y,
                                                   jax.devices(), scan_epoch=True))
    e1 = snnx.evaluate(model, (x[:21], y[:21]), LOSS, batch_size=5)
    e4 = snnx.evaluate(model, (x[:21], y[:21]), LOSS, batch_size=5, mesh=mesh)
    res["evaluate"] = {"loss": abs(e1["loss"] - e4["loss"]),
                       "acc": abs(e1["accuracy"] - e4["accuracy"]), "n": e4["n"]}
    return res


def _grads(f, model, x, y):
    return eqx.filter_jit(eqx.filter_value_and_grad(f))(model, x, y)


def _plain(m, x, y):
    return LOSS(jax.vmap(lambda a: snnx.run(m, a)[0])(x), y)


def _piped(m, x, y, mesh):
    return LOSS(par.pipeline_run(m, x, mesh=mesh, microbatches=2), y)


def _pipeline(dtype, full):
    model, x, y = model_and_data(dtype, depth=4, n=8)
    l0, g0 = _grads(_plain, model, x, y)
    res = {"grad_scale": float(max(jnp.max(jnp.abs(g)) for g in jax.tree.leaves(g0)))}
    meshes = {"data2xstage2": ((2, 2), ("data", "stage"), None)}
    if full:
        meshes["stage4"] = ((4,), ("stage",), None)
    for name, (shape, axes, devs) in meshes.items():
        mesh = jax.make_mesh(shape, axes, devices=devs)
        l1, g1 = _grads(functools.partial(_piped, mesh=mesh), model, x, y)
        res[name] = {"loss": abs(float(l0) - float(l1)), "grad": _maxdiff(g0, g1)}
    if full:
        res.update(_schedules(dtype))
    return res


def _schedules(dtype):
    """GPipe steps equal `make_step`; DelayedGradients equals a hand-written delayed SGD."""
    model, x, y = model_and_data(dtype, depth=3, n=8)
    mesh = jax.make_mesh((2,), ("stage",), devices=jax.devices()[:2])
    lr, steps = 2.0, 3
    o = optax.sgd(lr).init(eqx.filter(model, snnx.trainable_spec(model)))
    ref, m_ref = snnx.make_step(LOSS, optax.sgd(lr)), model
    for _ in range(steps):
        m_ref, o, _ = ref(m_ref, o, x, y)
    got = {}
    for name, sch in [("gpipe", par.GPipe(2)), ("delayed", par.DelayedGradients(4))]:
        step = par.make_pipeline_step(LOSS, optax.sgd(lr), mesh=mesh, stages=(2,),
                                      schedule=sch)
        st, m = step.init(model), model
        for _ in range(steps):
            m, st, _ = step(m, st, x, y)
        got[name] = m
    # By hand: stage 0 (layers 0-1) differentiated at the parameters of one step before.
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def loss_of(p):
        return _plain(eqx.combine(p, static), x, y)

    grad = jax.jit(jax.grad(loss_of))
    prev = params
    for _ in range(steps):
        mixed = eqx.tree_at(lambda m: m.layers, params, prev.layers[:2] + params.layers[2:])
        g = grad(mixed)
        prev, params = params, jax.tree.map(lambda p, d: p - lr * d, params, g)
    return {"gpipe_vs_make_step": _maxdiff(got["gpipe"], m_ref),
            "delayed_vs_hand": _maxdiff(got["delayed"], eqx.combine(params, static)),
            "delayed_vs_gpipe": _maxdiff(got["delayed"], got["gpipe"])}


def _timed(times, name, f, *args):
    t0 = time.perf_counter()
    r = f(*args)
    times[name] = round(time.perf_counter() - t0, 1)
    return r


def _main():
    assert len(jax.devices()) == 4, jax.devices()
    jax.config.update("jax_numpy_rank_promotion", "raise")
    t = {}
    out = {"f32": {"dp": _timed(t, "dp32", _data_parallel, jnp.float32, True),
                   "pipe": _timed(t, "pipe32", _pipeline, jnp.float32, True)}}
    jax.config.update("jax_enable_x64", True)
    out["f64"] = {"dp": _timed(t, "dp64", _data_parallel, jnp.float64, False),
                  "pipe": _timed(t, "pipe64", _pipeline, jnp.float64, False)}
    out["times"] = t
    print("RESULT " + json.dumps(out))


def _multihost():
    """One of two processes under `jax.distributed` (started by `_MULTIHOST` below, 2 host
    devices each, gloo collectives over loopback): data-parallel `fit` over all 4 devices."""
    assert jax.process_count() == 2 and len(jax.devices()) == 4
    model, x, y = model_and_data(jnp.float32)
    m4, h4 = _fit(model, x, y, jax.devices(), scan_epoch=True)
    print("RESULT " + json.dumps({"params": _leaves(m4), "loss": h4["loss"]}))


# `jax.distributed.initialize` must run before anything touches a JAX backend, so before
# `import snnx`: the child runs this prologue, then imports this file.
_MULTIHOST = """
import sys, jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="localhost:" + sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[1]))
sys.path.insert(0, sys.argv[3])
import test_parallel
test_parallel._multihost()
"""


if __name__ == "__main__":
    _main()


# ---------------------------------------------------------------- the tests


def _env(devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         env.get("PYTHONPATH", "")])
    return env


def _result(stdout, stderr, rc):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert rc == 0 and lines, stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def checks():
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], env=_env(4),
                          capture_output=True, text=True, timeout=900)
    return _result(proc.stdout, proc.stderr, proc.returncode)


def test_two_processes_under_jax_distributed(checks):
    """Same code, two processes (loopback): equals the one-device reference of `checks`."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [subprocess.Popen([sys.executable, "-c", _MULTIHOST, str(pid), str(port), here],
                              env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for pid in (0, 1)]
    outs = [p.communicate(timeout=900) for p in procs]
    ref = checks["f32"]["dp"]["ref_params"]
    for p, (o, e) in zip(procs, outs):
        r = _result(o, e, p.returncode)
        assert len(r["params"]) == len(ref)
        for a, b in zip(r["params"], ref):
            np.testing.assert_allclose(a, b, atol=1e-5)


TOL = {"f32": 1e-5, "f64": 1e-10}


def test_data_parallel_fit_equals_single_device(checks):
    dp = checks["f32"]["dp"]
    for name in ("dense_scan", "packed_steps", "events_scan"):
        r = dp[name]
        assert r["devices"] == 4, name  # the trained model lives on the 4-device mesh
        assert r["moved"] > 1e-2, name  # training changed the parameters
        assert r["rate"] > 0, name  # the hidden layer spiked (non-trivial gradients)
        assert r["param"] < 1e-5, (name, r)
        assert r["loss"] < 1e-5, (name, r)


def test_evaluate_on_a_mesh(checks):
    dp = checks["f32"]["dp"]
    # 21 samples in batches of 5 -> 8 on 4 devices: every sample counted once.
    assert dp["evaluate"]["n"] == 21
    assert dp["evaluate"]["loss"] < 1e-6 and dp["evaluate"]["acc"] == 0


@pytest.mark.parametrize("prec", ["f32", "f64"])
def test_make_step_on_a_mesh_pads_a_batch_that_does_not_divide(checks, prec):
    r = checks[prec]["dp"]["make_step_pad"]
    # A batch of 6 on 4 devices: padded to 8, the padding has weight 0.
    assert r["count"] == 6 and r["moved"] > 1e-3
    assert r["param"] < TOL[prec] and r["loss"] < TOL[prec], r


@pytest.mark.parametrize("prec", ["f32", "f64"])
def test_pipeline_gradients_equal_unpipelined(checks, prec):
    pipe = checks[prec]["pipe"]
    assert pipe["grad_scale"] > 1e-3
    for name in ("stage4", "data2xstage2"):
        if name in pipe:
            assert pipe[name]["loss"] < TOL[prec] and pipe[name]["grad"] < TOL[prec], name


def test_schedules(checks):
    pipe = checks["f32"]["pipe"]
    assert pipe["gpipe_vs_make_step"] < 1e-6
    assert pipe["delayed_vs_hand"] < 1e-6
    # The staleness changed the trajectory, far beyond the float error of the comparison.
    assert pipe["delayed_vs_gpipe"] > 100 * max(pipe["delayed_vs_hand"], 1e-8)


def test_stage_cuts_and_split():
    model, x, _ = model_and_data(jnp.float32, depth=4, n=2)
    assert par.stage_cuts(model, 2) == (0, 4)
    assert par.stage_cuts(model, 4) == (0, 2, 4, 6)
    assert par.stage_cuts(model, (2, 6)) == (0, 2, 6)
    parts = par.split_stages(model, 2)
    h = jnp.asarray(x[0])
    for p in parts:
        h = snnx.run(p, h)[0]
    assert eqx.tree_equal(h, snnx.run(model, jnp.asarray(x[0]))[0])


def test_one_device_mesh_runs_pipeline_and_data_parallel():
    model, x, y = model_and_data(jnp.float32, depth=2, n=4)
    mesh = jax.make_mesh((1, 1), ("data", "stage"))
    outs = par.pipeline_run(model, x, mesh=mesh, microbatches=2)
    ref = jax.vmap(lambda a: snnx.run(model, a)[0])(jnp.asarray(x))
    assert jnp.allclose(outs, ref, atol=1e-6)
    res = snnx.evaluate(model, (x, y), LOSS, mesh=mesh)
    assert res["n"] == 4


def test_bad_inputs():
    model, x, y = model_and_data(jnp.float32, depth=2, n=4)
    one = jax.devices()[:1]
    with pytest.raises(ValueError, match="`mesh`.*'data'"):
        snnx.fit(model, LOSS, optax.sgd(0.1), (x, y), epochs=1, key=jax.random.key(0),
                 batch_size=2, progress=False, mesh=jax.make_mesh((1,), ("stage",)))
    with pytest.raises(TypeError, match="`mesh`"):
        snnx.evaluate(model, (x, y), LOSS, mesh="cpu")
    with pytest.raises(ValueError, match="`mesh`.*'stage'"):
        par.pipeline_run(model, x, mesh=jax.make_mesh((1,), ("data",)))
    with pytest.raises(ValueError, match="`stages=3`"):
        par.pipeline_run(model, x, mesh=one, stages=3)
    with pytest.raises(ValueError, match="2 stages.*`mesh`"):
        par.pipeline_run(model, x, mesh=one, stages=2)
    with pytest.raises(ValueError, match="`microbatches=3`"):
        par.pipeline_run(model, x, mesh=one, microbatches=3)
    with pytest.raises(ValueError, match="`microbatches`"):
        par.GPipe(0)
    with pytest.raises(TypeError, match="`model`"):
        par.pipeline_run(snnx.LIF(tau=2.0), x, mesh=one)
    with pytest.raises(ValueError, match="`stages`"):
        par.split_stages(model, (3, 2))
    with pytest.raises(TypeError, match="`schedule`"):
        par.make_pipeline_step(LOSS, optax.sgd(0.1), mesh=one, schedule="gpipe")
    step = par.make_pipeline_step(LOSS, optax.sgd(0.1), mesh=one)
    with pytest.raises(TypeError, match="`state`"):
        step(model, None, x, y)
