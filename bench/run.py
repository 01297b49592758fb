"""snnx benchmark suite: one entry point (`python3 bench/run.py`, or `make bench`).

Sets up `.venv-bench` (snnx editable + the peers: spyx 1.0, jaxpike 0.1.4, snnTorch, Norse,
torch 2.13.0 CPU) on first use, then re-runs itself inside it. Every workload times a
forward pass and a full training step (forward + backward + Adam) after warm-up, snnx and
the hand-written plain-JAX reference (and the JAX peers) interleaved round by round in one
process; the torch peers run in their own subprocess (peak RSS per configuration). Writes
`bench/results/results.json` and `bench/results/results.md`.

    python3 bench/run.py            # the full suite (~30-60 min on 2 busy CPU cores)
    python3 bench/run.py --quick    # a few minutes: fewer repeats, N=1k only for (d)
    python3 bench/run.py --only a,sparse --no-setup
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, ".venv-bench")
VPY = os.path.join(VENV, "bin", "python")
# torch first and pinned: any other spec pulls gigabytes of CUDA wheels; the peers are then
# installed under a constraint that keeps it (Norse from source without its torchvision
# dependency, which it does not need for these models; its sdist needs setuptools_scm to
# read its version, and without build isolation that must be installed first).
SETUP = [
    ["-m", "pip", "install", "-q", "--upgrade", "pip"],
    ["-m", "pip", "install", "-q", "torch==2.13.0"],
    ["-m", "pip", "install", "-q", "-e", ROOT],
    ["-m", "pip", "install", "-q", "-c", "{constraints}", "spyx==1.0.0", "jaxpike==0.1.4",
     "snntorch", "nir", "nirtorch"],
    ["-m", "pip", "install", "-q", "setuptools>=64", "setuptools_scm>=8"],
    ["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "norse==1.1.0"],
]
STEPS = ("a", "sparse", "unroll", "remat", "b", "c", "d", "e")


def setup_env():
    marker = os.path.join(VENV, ".bench-installed")
    if os.path.exists(marker):
        return
    if not os.path.exists(VPY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    constraints = os.path.join(VENV, "constraints.txt")
    with open(constraints, "w") as f:
        f.write("torch==2.13.0\n")
    for args in SETUP:
        args = [a.replace("{constraints}", constraints) for a in args]
        print("[setup]", " ".join(args[2:]), flush=True)
        r = subprocess.run([VPY] + args)
        if r.returncode != 0:
            print(f"[setup] failed ({r.returncode}); that peer will be reported as missing.")
    open(marker, "w").close()


# ----------------------------------------------------------------------------- inner part

def machine():
    import jax

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "loadavg_start": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def threads():
    """Thread settings per contender: XLA:CPU runs its intra-op pool on every core it sees
    (no flag set here); each torch subprocess calls `torch.set_num_threads(BENCH_THREADS)`."""
    return {"xla_cpu": f"all {os.cpu_count()} cores (XLA default; XLA_FLAGS="
                       f"{os.environ.get('XLA_FLAGS', '')!r})",
            "torch": int(os.environ.get("BENCH_THREADS", "2"))}


def versions():
    out = {}
    for mod in ("snnx", "equinox", "optax", "spyx", "flax", "jaxpike", "torch", "snntorch",
                "norse"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # a peer that failed to install
            out[mod] = f"missing ({type(e).__name__})"
    return out


class Results:
    def __init__(self):
        self.rows = []
        self.notes = []
        self.rates = []  # {workload, lib, scales, rates}: one entry per network

    def add(self, workload, kind, lib, stats, peak=None, ref=None, note="", **extra):
        row = dict(workload=workload, kind=kind, lib=lib, peak_bytes=peak, note=note, **extra)
        if stats is not None:
            row.update({k: stats[k] for k in ("median_ms", "q1_ms", "q3_ms", "iqr_ms", "n")})
        self.rows.append(row)
        print(f"  {workload:12s} {kind:8s} {lib:22s} "
              + (f"{stats['median_ms']:9.2f} ms  IQR {stats['iqr_ms']:7.2f}" if stats else
                 f"{'-':>9s}    {note}")
              + (f"  peak {peak / 2**20:8.1f} MiB" if peak else ""), flush=True)
        return row


def _group(res, workload, kind, builders, cfg, data, rounds, per_round, ref="handwritten"):
    """Build every contender, time them interleaved, and record ratios to `ref`."""
    from common import interleaved

    fns, mems = {}, {}
    for lib, build in builders.items():
        try:
            fns[lib], mems[lib] = build(cfg, kind, data)
        except Exception as e:
            res.add(workload, kind, lib, None, note=f"not run: {type(e).__name__}: {e}"[:200])
    stats = interleaved(fns, rounds=rounds, per_round=per_round)
    out = {}
    for lib, st in stats.items():
        out[lib] = res.add(workload, kind, lib, st, mems.get(lib))
    if ref in stats:
        for lib, row in out.items():
            row["ratio_to_ref"] = row["median_ms"] / stats[ref]["median_ms"]
            row["ref"] = ref
    return out


def _torch_run(lib, kind, rounds, net, n, env):
    script = os.path.join(HERE, "peers", "torch_peers.py")
    argv = [sys.executable, script, lib, kind, str(rounds), net] + ([str(n)] if n else [])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, **env))
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), None
    except Exception:
        return None, (p.stderr.strip().splitlines() or ["?"])[-1]


def _torch_peer(res, workload, kind, lib, rounds, net="a", n=None, scales=None,
                compiled=False):
    """`net`: which torch_peers network (a, b, c, d); `n`: the width for d; `scales`: the
    calibrated weight scales (`_spiking`); `compiled`: under `torch.compile`."""
    env = {"BENCH_SCALES": json.dumps(scales)} if scales else {}
    label = lib
    if compiled:
        env["BENCH_TORCH_COMPILE"] = "1"
        label = f"{lib} (torch.compile)"
    try:
        st, err = _torch_run(lib, kind, rounds, net, n, env)
    except Exception as e:
        st, err = None, f"{type(e).__name__}: {e}"
    if st is None:
        return res.add(workload, kind, label, None, note=f"not run: {err}"[:200])
    extra = {k: st[k] for k in ("loss", "out_shape", "rates", "threads") if k in st}
    return res.add(workload, kind, label, st, st.get("peak_bytes"), compile_s=st["compile_s"],
                   **extra)


def _spiking(res, tag, net, mod, cfg, data, peers=("spyx", "jaxpike", "snntorch", "norse")):
    """Calibrate every contender's weight scales so that its spiking layers fire at
    `common.TARGET_RATE` (sets `cfg["scales"]`; records the scales and measured rates)."""
    import rates
    from peers import jax_peers

    cfg["scales"] = {}
    found = {"snnx": rates.calibrate_snnx(mod.snnx_model(cfg), net, data[0])}
    for lib in peers:
        try:
            if lib in ("spyx", "jaxpike"):
                found[lib] = getattr(jax_peers, f"calibrate_{lib}")(net, cfg, data)
            else:
                st, err = _torch_run(lib, "rates", 1, net, cfg.get("n"), {})
                if st is None:
                    raise RuntimeError(err)
                found[lib] = st["scales"], st["rates"]
        except Exception as e:
            res.notes.append(f"({tag}) {lib}: calibration failed ({type(e).__name__}: {e})"[:300])
    for lib, (scales, r) in found.items():
        cfg["scales"][lib] = scales
        res.rates.append(dict(workload=tag, lib=lib, scales=scales, rates=r))
        print(f"  {tag:12s} rates    {lib:22s} " + " ".join(f"{x:.3f}" for x in r)
              + "   scales " + " ".join(f"{x:.3g}" for x in scales), flush=True)


def _jax_peer_builders(net, on_cpu, tuned=None):
    """Spyx and jaxpike; jaxpike at its best documented setting for the backend
    (`scan_unroll=1` on CPU; its default 8 is tuned on a GPU) with the default as a second
    row. `tuned`: compiler options for extra rows of every JAX peer."""
    import functools

    from peers import jax_peers

    spyx = getattr(jax_peers, f"build_spyx_{net}")
    jaxpike = getattr(jax_peers, f"build_jaxpike_{net}")
    out = {"spyx": spyx}
    if on_cpu:
        out["jaxpike"] = functools.partial(jaxpike, scan_unroll=1)
        out["jaxpike (default scan_unroll=8)"] = jaxpike
    else:
        out["jaxpike"] = jaxpike
    if tuned is not None:
        out["spyx (fit's compiler options)"] = functools.partial(spyx, compiler_options=tuned)
        out["jaxpike (fit's compiler options)"] = functools.partial(
            out["jaxpike"], compiler_options=tuned)
    return out


def run_a(res, q):
    import functools

    import jax
    from workloads import shd

    cfg = shd.config()
    data = shd.make_data(cfg)
    _spiking(res, "a", "a", shd, cfg, data)
    _equal_note(res, "a", shd, cfg, data)
    builders = {"snnx": shd.build_snnx,
                "snnx (events)": functools.partial(shd.build_snnx, events=True),
                "snnx (time-major vmap)": shd.build_snnx_time_major,
                "handwritten": _handwritten(shd.build_handwritten)}
    builders |= _jax_peer_builders("a", jax.default_backend() == "cpu")
    for kind in ("train", "forward"):
        rows = _group(res, "a", kind, builders, cfg, data, q["rounds"], q["per_round"])
        for lib in ("snntorch", "norse"):
            sc = cfg["scales"].get(lib)
            rows[lib] = _torch_peer(res, "a", kind, lib, q["torch_rounds"], scales=sc)
            if kind in q["torch_compile"]:
                rows[f"{lib} (torch.compile)"] = _torch_peer(
                    res, "a", kind, lib, q["torch_rounds"], scales=sc, compiled=True)
        for ours, key in (("snnx", "speedup_of_snnx"), ("snnx (events)", "speedup_of_events")):
            if ours in rows and "median_ms" in rows[ours]:
                for lib, row in rows.items():
                    if "median_ms" in row:
                        row[key] = row["median_ms"] / rows[ours]["median_ms"]


def run_e(res, q):
    """(e) long-T small-batch: the layout study (snnx rows of several batching patterns
    against the hand-written step on time-major data)."""
    import functools

    from workloads import longt

    cfg = longt.config()
    data = longt.make_data(cfg)
    _spiking(res, "e", "a", longt, cfg, data, peers=())
    _equal_note(res, "e", longt, cfg, data)
    builders = {"snnx": longt.build_snnx,
                "snnx run_batch": functools.partial(longt.build_run_batch, time_major=False),
                "snnx run_batch (time-major data)": functools.partial(longt.build_run_batch,
                                                                      time_major=True),
                "snnx make_step": longt.build_make_step,
                "handwritten": _handwritten(longt.build_handwritten)}
    for kind in ("train", "forward"):
        rows = _group(res, "e", kind, builders, cfg, data, q["rounds"], q["per_round"])
        if "snnx" in rows and "median_ms" in rows["snnx"]:
            for row in rows.values():
                if "median_ms" in row:
                    row["speedup_of_snnx"] = row["median_ms"] / rows["snnx"]["median_ms"]


def run_sparse(res, q):
    """The event-driven input projection against the dense matmul, alone and in the step."""
    import functools
    import time

    import jax
    import jax.numpy as jnp
    from jaxstep import forward_step
    from workloads import shd

    import snnx

    cfg = shd.config()
    data = shd.make_data(cfg)
    _spiking(res, "a-proj", "a", shd, cfg, data, peers=())
    x = jnp.asarray(data[0])
    t0 = time.perf_counter()
    ev = snnx.SpikeEvents.from_dense(data[0])
    build_ms = (time.perf_counter() - t0) * 1e3
    d_logits, d_grad = shd.check_events(cfg, data)
    res.notes.append(
        f"(a) events vs dense input: max |logits| difference {d_logits:.1e}, max |gradient| "
        f"difference {d_grad:.1e}; event table {tuple(ev.index.shape)} int32 "
        f"({ev.index.size * 4 / 2**20:.1f} MiB vs {x.size * 4 / 2**20:.1f} MiB dense), built "
        f"on the host in {build_ms:.0f} ms; density {float(x.mean()):.3f}"
    )
    lin = shd.snnx_model(cfg).layers[0]
    c = jax.random.normal(jax.random.key(0), x.shape[:2] + (lin.out_features,))

    def dense_proj(lyr, x):
        return x @ lyr.weight.T + lyr.bias

    def event_proj(lyr, e):
        return jax.vmap(lambda ei: snnx.events.project(ei, lyr.weight, lyr.bias))(e)

    def grad_of(f):
        # forward + weight gradient of a projection, the cotangent a fixed random array
        return lambda lyr, x: jax.grad(lambda l_: jnp.sum(f(l_, x) * c))(lyr)

    layer = {
        "dense Linear": lambda c_, k, d: forward_step(dense_proj, lin, (x,)),
        "events": lambda c_, k, d: forward_step(event_proj, lin, (ev,)),
    }
    _group(res, "a-proj", "forward", layer, cfg, data, q["rounds"], q["per_round"],
           ref="dense Linear")
    layer = {
        "dense Linear": lambda c_, k, d: forward_step(grad_of(dense_proj), lin, (x,)),
        "events": lambda c_, k, d: forward_step(grad_of(event_proj), lin, (ev,)),
    }
    _group(res, "a-proj", "fwd+grad", layer, cfg, data, q["rounds"], q["per_round"],
           ref="dense Linear")
    step = {"snnx dense": shd.build_snnx,
            "snnx events": functools.partial(shd.build_snnx, events=True),
            "snnx SparseLinear+events": functools.partial(shd.build_snnx, events=True,
                                                          sparse=True)}
    for kind in ("train", "forward"):
        _group(res, "a-events", kind, step, cfg, data, q["rounds"], q["per_round"],
               ref="snnx dense")


def run_unroll(res, q):
    import functools

    from workloads import shd

    cfg = shd.config()
    data = shd.make_data(cfg)
    _spiking(res, "a-unroll", "a", shd, cfg, data, peers=())
    builders = {f"snnx unroll={u}": functools.partial(shd.build_snnx, unroll=u)
                for u in (1, 2, 4, 8)}
    _group(res, "a-unroll", "train", builders, cfg, data, q["rounds"], q["per_round"],
           ref="snnx unroll=1")


def run_remat(res, q):
    import functools

    from workloads import shd

    cfg = shd.config(T=2000)
    data = shd.make_data(cfg)
    _spiking(res, "a-T2000", "a", shd, cfg, data, peers=())
    builders = {"snnx no remat": shd.build_snnx,
                "snnx remat=True": functools.partial(shd.build_snnx, remat=True),
                "snnx remat=50": functools.partial(shd.build_snnx, remat=50),
                "snnx remat=True, events": functools.partial(shd.build_snnx, remat=True,
                                                             events=True)}
    _group(res, "a-T2000", "train", builders, cfg, data, q["remat_rounds"], 1,
           ref="snnx no remat")


def run_simple(res, q, mod, cfg, tag, rounds):
    import functools

    import jax

    import snnx

    data = mod.make_data(cfg)
    net = tag[0]  # "b", "c" or "d N=..."
    _spiking(res, tag, net, mod, cfg, data)
    _equal_note(res, tag, mod, cfg, data)
    builders = {"snnx": mod.build_snnx, "handwritten": _handwritten(mod.build_handwritten)}
    tuned = None
    if net in ("b", "d"):  # 3% input spikes: the event-driven first projection
        builders["snnx (events)"] = functools.partial(mod.build_snnx, events=True)
    if net == "c":  # compiled as snnx.fit compiles (snnx.compiler_options()), and so every
        # JAX contender gets the same options in a row of that name
        tuned = snnx.compiler_options()
        builders["snnx (fit's compiler options)"] = functools.partial(mod.build_snnx,
                                                                      tuned=True)
        builders["handwritten (fit's compiler options)"] = _handwritten(
            functools.partial(mod.build_handwritten, tuned=True))
    builders |= _jax_peer_builders(net, jax.default_backend() == "cpu", tuned)
    # torch steps of (c) and (d) take seconds to minutes on 2 cores: as many rounds as the
    # JAX contenders there, at most torch_rounds
    t_rounds = q["torch_rounds"] if net == "b" else min(q["torch_rounds"], max(2, rounds))
    for kind in ("train", "forward"):
        rows = _group(res, tag, kind, builders, cfg, data, rounds, q["per_round"])
        for lib in ("snntorch", "norse"):
            sc = cfg["scales"].get(lib)
            rows[lib] = _torch_peer(res, tag, kind, lib, t_rounds, net, cfg.get("n"), sc)
            if net == "c" and kind in q["torch_compile"]:
                rows[f"{lib} (torch.compile)"] = _torch_peer(
                    res, tag, kind, lib, t_rounds, net, None, sc, compiled=True)
        if "snnx" in rows and "median_ms" in rows["snnx"]:
            for lib, row in rows.items():
                if "median_ms" in row:
                    row["speedup_of_snnx"] = row["median_ms"] / rows["snnx"]["median_ms"]
        best = [r for lib, r in rows.items() if lib.startswith("snnx (") and "median_ms" in r]
        if best:
            for lib, row in rows.items():
                if "median_ms" in row:
                    row["speedup_of_events"] = row["median_ms"] / best[0]["median_ms"]
        ref = rows.get("handwritten (fit's compiler options)", {})
        for lib, row in rows.items():  # the tuned rows against the tuned reference
            if "fit's compiler options" in lib and "median_ms" in row and "median_ms" in ref:
                row["ratio_to_ref"] = row["median_ms"] / ref["median_ms"]
                row["ref"] = "handwritten (fit's compiler options)"


def _equal_note(res, tag, mod, cfg, data):
    d_out, d_grad, *flips = mod.check_equal(cfg, data)
    r = [x for e in res.rates if e["workload"] == tag and e["lib"] == "snnx" for x in e["rates"]]
    res.notes.append(
        f"({tag}) snnx vs hand-written, spiking network (snnx layer rates "
        f"{', '.join(f'{x:.3f}' for x in r)}): max |outputs| difference {d_out:.1e}, max "
        f"|loss gradient| difference {d_grad:.1e}"
        + (f"; {flips[0]:.1e} of the output spikes differ" if flips else ""))


def _handwritten(build):
    """The hand-written reference with the scan unroll an expert picks for the backend: 1 on
    CPU, 8 on GPU/TPU (the unroll study measures both; on an H200, unroll 1 made (a)'s
    training step 5x slower than unroll 8)."""
    import functools

    import jax

    return functools.partial(build, unroll=1 if jax.default_backend() == "cpu" else 8)


def inner(args):
    sys.path.insert(0, HERE)
    # On a GPU, JAX would otherwise take 75% of its memory up front and starve the torch
    # peers' subprocesses; XLA's memory analysis (our peak figure) is unaffected.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    # torch_compile: the kinds that also get a torch.compile row, on (a) and (c) only: the
    # compiled graph unrolls the Python time loop, and compiling (a)'s T=100 training step
    # took ~140 s on 2 cores; (b) T=250 and (d) T=500 would take many minutes each
    q = dict(rounds=10, per_round=3, torch_rounds=10, remat_rounds=5, d_sizes=(1024, 4096),
             torch_compile=("train", "forward"))
    if args.quick:
        q = dict(rounds=4, per_round=2, torch_rounds=3, remat_rounds=2, d_sizes=(1024,),
                 torch_compile=("train",))
    on_cpu = jax.default_backend() == "cpu"
    if not on_cpu:  # N=16384 takes minutes a step on 2 CPU cores, not on an accelerator
        q["d_sizes"] = (1024, 4096, 16384)
    if jax.default_backend() == "gpu":  # the torch peers on the GPU too (unless told otherwise)
        os.environ.setdefault("BENCH_TORCH_DEVICE", "cuda")
    if args.rounds:
        q.update(rounds=args.rounds, torch_rounds=args.rounds * 2)
    if args.no_torch_compile:
        q["torch_compile"] = ()
    only = set(args.only.split(",")) if args.only else set(STEPS)
    res = Results()
    info = {"machine": machine(), "versions": versions(), "quick": args.quick,
            "default_unroll": None, "threads": threads()}
    import snnx

    info["default_unroll"] = snnx.default_unroll()
    print(json.dumps(info, indent=1), flush=True)
    t0 = time.time()
    if "a" in only:
        run_a(res, q)
    if "sparse" in only:
        run_sparse(res, q)
    if "unroll" in only:
        run_unroll(res, q)
    if "remat" in only:
        run_remat(res, q)
    if "b" in only:
        from workloads import recurrent

        run_simple(res, q, recurrent, recurrent.config(), "b", q["rounds"])
    if "c" in only:
        from workloads import conv

        run_simple(res, q, conv, conv.config(), "c", max(2, q["rounds"] // 2))
    if "d" in only:
        from workloads import scaling

        for n in q["d_sizes"]:
            run_simple(res, q, scaling, scaling.config(n), f"d N={n}", 2 if n > 2000 else 3)
        for n in (4096, 16384):
            if n not in q["d_sizes"] and on_cpu:
                res.add(f"d N={n}", "train", "snnx", None,
                        note="skipped: a step takes minutes on 2 CPU cores (run on a GPU)")
    if "e" in only:
        run_e(res, q)
    info["machine"]["loadavg_end"] = os.getloadavg()
    info["wall_s"] = time.time() - t0
    info["backend"] = jax.default_backend()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"info": info, "notes": res.notes, "rates": res.rates, "rows": res.rows}, f,
                  indent=1)
    from report import write_markdown

    write_markdown(info, res.notes, res.rows, os.path.join(out_dir, "results.md"), res.rates)
    print(open(os.path.join(out_dir, "results.md")).read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few minutes: fewer repeats")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="folder for results.json and results.md (default bench/results)")
    ap.add_argument("--rounds", type=int, default=0, help="override the number of rounds")
    ap.add_argument("--no-torch-compile", action="store_true",
                    help="skip the torch.compile rows (minutes of compilation each)")
    ap.add_argument("--no-setup", action="store_true", help="use the current interpreter")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner or args.no_setup:
        return inner(args)
    setup_env()
    os.execv(VPY, [VPY, os.path.abspath(__file__), "--inner"] + sys.argv[1:])


if __name__ == "__main__":
    main()
