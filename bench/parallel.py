"""Pipelined and data-parallel training on host devices: schedule overhead vs microbatches,
and the accuracy effect of SpikePipe-style delayed gradients.

```
/work/main/.venv/bin/python bench/parallel.py --quick
```

Host "devices" (`--xla_force_host_platform_device_count=4`) share the machine's cores, so
no speedup can be measured here: what is reported is each pipelined step's time relative
to the unpipelined `snnx.make_step` on the same batch (measured in the same run,
interleaved rounds, median) next to the analytic bubble fraction `(S - 1) / (M + S - 1)`.
On real devices a step would take about `(1 - bubble)^-1 / S` of the one-device time plus
communication.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import interleaved  # noqa: E402

import snnx  # noqa: E402
from snnx import parallel as par  # noqa: E402

LOSS = snnx.losses.ce_max_membrane
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "parallel")


def deep_model(key, n_in, hidden, n_out, depth=4, scales=(6.0, 16.0, 16.0, 1.0)):
    """A `depth`-layer LIF network; the Linear init is scaled per layer so that every
    hidden layer spikes at init (about 6-8% on the digits data; unscaled, the third LIF
    layer is silent and nothing trains)."""
    ks = jax.random.split(key, depth)
    sizes = [n_in] + [hidden] * (depth - 1) + [n_out]
    layers = []
    for i in range(depth):
        lin = eqx.nn.Linear(sizes[i], sizes[i + 1], key=ks[i])
        lin = eqx.tree_at(lambda m: m.weight, lin, lin.weight * scales[i])
        layers += [lin, snnx.LIF(tau=5.0) if i < depth - 1 else snnx.LI(tau=5.0)]
    return snnx.Sequential(layers)


def schedule_overhead(quick):
    """ms per step: unpipelined make_step vs GPipe with S stages and M microbatches."""
    B, T, n_in, hidden = 32, 25, 64, 128
    model = deep_model(jax.random.key(0), n_in, hidden, 10)
    k = jax.random.split(jax.random.key(1))
    x = (jax.random.uniform(k[0], (B, T, n_in)) < 0.2).astype(jnp.float32)
    y = jax.random.randint(k[1], (B,), 0, 10)
    opt = optax.sgd(1e-2)
    o = opt.init(eqx.filter(model, snnx.trainable_spec(model)))
    ref = snnx.make_step(LOSS, opt)
    fns = {"unpipelined": lambda: ref(model, o, x, y)[2]["loss"]}
    ms = [1, 2, 4, 8] if not quick else [1, 4]
    configs = []
    for S in (2, 4):
        mesh = jax.make_mesh((S,), ("stage",), devices=jax.devices()[:S])
        for M in ms:
            step = par.make_pipeline_step(LOSS, opt, mesh=mesh, schedule=par.GPipe(M))
            st = step.init(model)
            fns[f"S{S}_M{M}"] = (lambda step=step, st=st: step(model, st, x, y)[2]["loss"])
            configs.append((S, M))
    mesh = jax.make_mesh((2, 2), ("data", "stage"))
    step = par.make_pipeline_step(LOSS, opt, mesh=mesh, schedule=par.GPipe(4))
    st = step.init(model)
    fns["data2_S2_M4"] = lambda: step(model, st, x, y)[2]["loss"]
    dp = snnx.make_step(LOSS, opt, mesh=jax.devices())
    fns["data4"] = lambda: dp(model, o, x, y)[2]["loss"]
    t = interleaved(fns, warmup=1, rounds=5 if quick else 7, per_round=2)
    base = t["unpipelined"]["median_ms"]
    rows = []
    for name, r in t.items():
        S, M = ((int(name[1]), int(name.split("_M")[1])) if name.startswith("S") else
                (2, 4) if name == "data2_S2_M4" else (1, 1))
        rows.append({"config": name, "stages": S, "microbatches": M,
                     "ms_per_step": r["median_ms"], "iqr_ms": r["iqr_ms"],
                     "steps_per_s": 1000.0 / r["median_ms"],
                     "ratio_vs_unpipelined": r["median_ms"] / base,
                     "analytic_bubble": (S - 1) / (M + S - 1)})
    return {"batch": B, "T": T, "widths": [n_in, hidden, hidden, hidden, 10], "rows": rows}


def _train(model, data, test, schedule, mesh, epochs, batch, lr):
    step = par.make_pipeline_step(LOSS, optax.adam(lr), mesh=mesh, schedule=schedule)
    st = step.init(model)
    x, y = data
    n = (x.shape[0] // batch) * batch
    for ep in range(epochs):
        perm = np.asarray(jax.random.permutation(jax.random.key(ep), x.shape[0]))[:n]
        for b in range(n // batch):
            i = perm[b * batch:(b + 1) * batch]
            model, st, _ = step(model, st, x[i], y[i])
    devices = mesh.devices.ravel().tolist()  # the trained model lives on the mesh
    return snnx.evaluate(model, test, LOSS, batch_size=256, mesh=devices)["accuracy"]


def _synthetic_shd(path, n, n_classes, seed):
    """A file in the official SHD layout: each class fires its own channel band in its own
    time window, plus background noise events."""
    import h5py

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i, c in enumerate(labels):
            k_sig, k_bg = 60, 120
            ch = rng.integers(c * 700 // n_classes, (c + 1) * 700 // n_classes, k_sig)
            tt = rng.uniform(0.1 + 0.6 * c / n_classes, 0.3 + 0.6 * c / n_classes, k_sig)
            ch = np.concatenate([ch, rng.integers(0, 700, k_bg)])
            tt = np.concatenate([tt, rng.uniform(0, 1.0, k_bg)])
            o = np.argsort(tt)
            t[i], u[i] = tt[o].astype(np.float32), ch[o].astype(np.uint16)
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, np.uint16))
        f.create_dataset("extra/keys", data=np.array([str(c).encode() for c in range(20)]))


def accuracy_effect(quick):
    """Test accuracy: GPipe (exact) vs DelayedGradients, 4 stages, same seed and steps."""
    from snnx.data.shd import load_shd
    from snnx.demo import load_digits_spikes

    mesh = jax.make_mesh((4,), ("stage",))
    (xtr, ytr), (xte, yte) = load_digits_spikes(25)
    tasks = {"digits": ((xtr.astype(np.float32), ytr), (xte.astype(np.float32), yte), 64, 10,
                        6.0)}
    with tempfile.TemporaryDirectory() as d:
        for split, n, seed in (("train", 800, 0), ("test", 200, 1)):
            _synthetic_shd(os.path.join(d, f"shd_{split}.h5"), n, 10, seed)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # events sharing a bin are reported; expected
            tr = load_shd(os.path.join(d, "shd_train.h5"), n_steps=50, channels=140,
                          cache_dir=False)
            te = load_shd(os.path.join(d, "shd_test.h5"), n_steps=50, channels=140,
                          cache_dir=False)
    tasks["shd_synthetic"] = ((np.minimum(tr[0].unpack(), 1).astype(np.float32),
                               np.asarray(tr[1])), te, 140, 10, 15.0)
    epochs = 2 if quick else 5
    res = {}
    for name, (train, test, n_in, n_out, first) in tasks.items():
        model = deep_model(jax.random.key(3), n_in, 128, n_out, scales=(first, 16.0, 16.0, 1.0))
        res[name] = {}
        for sname, sch in (("gpipe", par.GPipe(4)), ("delayed", par.DelayedGradients(4))):
            t0 = time.perf_counter()
            acc = _train(model, train, test, sch, mesh, epochs, 64, 2e-3)
            res[name][sname] = {"test_accuracy": acc, "seconds": time.perf_counter() - t0}
        res[name]["epochs"] = epochs
        res[name]["train_samples"] = int(train[0].shape[0])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args(argv)
    assert len(jax.devices()) >= 4, "needs 4 host devices (XLA_FLAGS set before JAX starts)"
    out = {"quick": args.quick, "load": os.getloadavg(), "cores": os.cpu_count(),
           "devices": [str(d) for d in jax.devices()], "jax": jax.__version__}
    out["overhead"] = schedule_overhead(args.quick)
    if not args.skip_accuracy:
        out["accuracy"] = accuracy_effect(args.quick)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(out, f, indent=1)
    lines = ["# bench/parallel.py results", "",
             f"{len(jax.devices())} host CPU devices on {out['cores']} shared cores, load "
             f"average {out['load'][0]:.1f} at the start (other sessions were running: noisy). "
             f"Host devices share the cores, so the ratio is schedule overhead, not speedup.",
             "", f"Batch {out['overhead']['batch']}, T={out['overhead']['T']}, widths "
             f"{out['overhead']['widths']}, float32, median of interleaved rounds.", "",
             "| config | S | M | ms/step | steps/s | ratio vs unpipelined | analytic bubble |",
             "|---|---|---|---|---|---|---|"]
    for r in out["overhead"]["rows"]:
        lines.append(f"| {r['config']} | {r['stages']} | {r['microbatches']} | "
                     f"{r['ms_per_step']:.1f} | {r['steps_per_s']:.2f} | "
                     f"{r['ratio_vs_unpipelined']:.2f} | {r['analytic_bubble']:.2f} |")
    if "accuracy" in out:
        lines += ["", "## Delayed gradients (SpikePipe-style) vs GPipe, 4 stages",
                  "", "| task | epochs | GPipe test acc | delayed test acc |", "|---|---|---|---|"]
        for name, r in out["accuracy"].items():
            lines.append(f"| {name} | {r['epochs']} | {r['gpipe']['test_accuracy']:.3f} | "
                         f"{r['delayed']['test_accuracy']:.3f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
