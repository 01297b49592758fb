"""The fused Pallas neuron scan on a GPU: (a)-(d) training steps with and without it.

Prepared for a session with a GPU (none was available when it was written; the kernel's
GPU speed is unmeasured). Per workload, interleaved rounds, median ms of a full training
step (forward + backward + Adam):

- `snnx XLAScan`: snnx as shipped (`snnx.engine.run_batch`, the default neuron scan, the
  backend's default unroll);
- `snnx PallasScan`: the same model with `neuron_scan=snnx.engine.PallasScan()` (every LIF /
  LI layer's time loop one Pallas kernel forward and one backward);
- `handwritten (best unroll)`: the plain-JAX reference of bench/handwritten.py at the
  fastest of unroll 1, 2, 4, 8 (each timed in the same rounds; all listed);
- `matmul-only floor`: the hand-written network with every neuron time loop replaced by
  one stateless spike of the current (same matmuls / convolutions, same surrogate, no
  recurrence): what the step costs if the neuron scans cost nothing. Not for (b), whose
  recurrent matmul is inside the time loop.

Ratios are to the floor (the issue's goal: the step within 1.3x of it). Also printed: max
|gradient difference| PallasScan vs XLAScan (the kernels must give the XLA scan's numbers).

    python bench/gpu_fused.py            # on a GPU: full shapes, 5 rounds, ~minutes
    python bench/gpu_fused.py --quick    # anywhere: tiny shapes, kernels interpreted on CPU

Writes bench/results/gpu_fused/results.{md,json} (`--out` to change).
"""

import argparse
import json
import os
import sys
import time
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _shapes(quick):
    from workloads import conv, recurrent, scaling, shd

    if not quick:
        return [("a", shd, shd.config()), ("b", recurrent, recurrent.config()),
                ("c", conv, conv.config()), ("d N=1024", scaling, scaling.config(1024)),
                ("d N=4096", scaling, scaling.config(4096))]
    return [("a", shd, dict(shd.config(T=8), B=2)),
            ("b", recurrent, dict(recurrent.config(), T=8, B=2, hidden=16)),
            ("c", conv, dict(conv.config(), T=3, B=2)),
            ("d N=64", scaling, dict(scaling.config(64), T=8, B=2))]


def _loss(net, out, y):
    import optax

    if net == "d":
        return out.mean()
    logits = out.sum(axis=1) if net == "c" else out.max(axis=1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_snnx(mod, net, cfg, data, scan):
    import equinox as eqx
    import jax.numpy as jnp
    from jaxstep import train_step

    import snnx

    model = mod.snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))
    x = jnp.asarray(data[0])
    y = jnp.asarray(data[1]) if len(data) > 1 else None

    def loss(p, x, y):
        out, _ = snnx.engine.run_batch(eqx.combine(p, static), x, neuron_scan=scan)
        return _loss(net, out, y)

    call, peak = train_step(loss, params, (x, y))
    return call, peak, (loss, params, (x, y))


def _floor_lif(cur, tau, threshold=1.0, unroll=1):
    import handwritten as hw

    beta, gain = hw.coefficients(tau)
    return hw.spike(gain * cur - threshold)


def _floor_li(cur, tau, unroll=1):
    import handwritten as hw

    return hw.coefficients(tau)[1] * cur


def build_hand(mod, net, cfg, data, unroll, floor=False):
    import handwritten as hw

    if net == "d":  # (d)'s builder takes only the inputs
        data = data[:1]
    if not floor:
        return mod.build_handwritten(cfg, "train", data, unroll=unroll)
    import jax

    # Traced and run once under the patch: later calls hit the compiled program's cache.
    with mock.patch.object(hw, "lif_scan", _floor_lif), mock.patch.object(hw, "li_scan",
                                                                          _floor_li):
        call, peak = mod.build_handwritten(cfg, "train", data, unroll=1)
        jax.block_until_ready(call())
    return call, peak


def grad_difference(a, b):
    import jax
    import jax.numpy as jnp

    (la, pa, da), (lb, pb, db) = a, b
    ga = jax.jit(jax.grad(la))(pa, *da)
    gb = jax.jit(jax.grad(lb))(pb, *db)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in
               zip(jax.tree.leaves(ga), jax.tree.leaves(gb)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny shapes, 1 round; on CPU the kernels run interpreted")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gpu_fused"))
    args = ap.parse_args()

    import jax
    import rates
    from common import interleaved

    import snnx

    backend = jax.default_backend()
    interpret = backend != "gpu"
    rounds = args.rounds or (1 if args.quick else 5)
    per_round = 1 if args.quick else 3
    unrolls = (1,) if args.quick else (1, 2, 4, 8)
    xla, fused = snnx.engine.XLAScan(), snnx.engine.PallasScan(interpret=interpret)
    info = {"backend": backend, "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__, "quick": args.quick, "interpret": interpret,
            "rounds": rounds, "per_round": per_round, "loadavg_start": os.getloadavg(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "default_unroll": snnx.default_unroll()}
    print(json.dumps(info), flush=True)
    rows, notes = [], []
    for tag, mod, cfg in _shapes(args.quick):
        net = tag[0]
        data = mod.make_data(cfg)
        if not args.quick:  # make every network spike (bench/common.calibrate)
            scales, r = rates.calibrate_snnx(mod.snnx_model(cfg), net, data[0])
            cfg["scales"] = {"snnx": scales}
            notes.append(f"({tag}) spike rates {', '.join(f'{x:.3f}' for x in r)}")
        fns, peaks, parts = {}, {}, {}
        for name, scan in (("snnx XLAScan", xla), ("snnx PallasScan", fused)):
            try:
                fns[name], peaks[name], parts[name] = build_snnx(mod, net, cfg, data, scan)
            except Exception as e:  # e.g. a kernel Triton cannot lower: say so, go on
                notes.append(f"({tag}) {name} not run: {type(e).__name__}: {e}"[:400])
        for u in unrolls:
            fns[f"handwritten unroll={u}"], peaks[f"handwritten unroll={u}"] = build_hand(
                mod, net, cfg, data, u)
        if net != "b":
            fns["matmul-only floor"], peaks["matmul-only floor"] = build_hand(
                mod, net, cfg, data, 1, floor=True)
        if len(parts) == 2:
            d = grad_difference(parts["snnx XLAScan"], parts["snnx PallasScan"])
            notes.append(f"({tag}) max |gradient| difference PallasScan vs XLAScan: {d:.2e}")
        stats = interleaved(fns, warmup=1 if args.quick else 2, rounds=rounds,
                            per_round=per_round)
        hand = {k: v for k, v in stats.items() if k.startswith("handwritten")}
        best = min(hand, key=lambda k: hand[k]["median_ms"])
        floor = stats.get("matmul-only floor")
        for name, st in stats.items():
            row = dict(workload=tag, lib=name, median_ms=st["median_ms"], iqr_ms=st["iqr_ms"],
                       n=st["n"], peak_bytes=peaks.get(name), best_hand=(name == best))
            if floor:
                row["x_floor"] = st["median_ms"] / floor["median_ms"]
            row["x_best_hand"] = st["median_ms"] / stats[best]["median_ms"]
            rows.append(row)
            print(f"  {tag:9s} {name:24s} {st['median_ms']:9.2f} ms  IQR {st['iqr_ms']:7.2f}"
                  + (f"  x floor {row['x_floor']:.2f}" if floor else "")
                  + f"  x best hand {row['x_best_hand']:.2f}", flush=True)
    info["loadavg_end"] = os.getloadavg()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"info": info, "rows": rows, "notes": notes}, f, indent=1)
    mode = ("kernels in Pallas interpret mode: these times say nothing about speed"
            if interpret else "kernels compiled (Triton)")
    lines = ["# Fused Pallas neuron scan: training step with and without the kernel", "",
             f"Backend `{backend}` ({', '.join(info['devices'])}), JAX {info['jax']}, "
             f"{info['date_utc']}, load average {info['loadavg_start'][0]:.1f} at start; "
             f"{'quick mode (tiny shapes; ' if args.quick else ''}"
             f"{mode}"
             f"{')' if args.quick else ''}. {rounds} rounds x {per_round} steps, interleaved;"
             " median ms.", "",
             "| workload | row | median ms | IQR ms | x floor | x best hand-written |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        xf = f"{r['x_floor']:.2f}" if "x_floor" in r else ""
        name = r["lib"] + (" (best)" if r["best_hand"] else "")
        lines.append(f"| {r['workload']} | {name} | {r['median_ms']:.2f} | {r['iqr_ms']:.2f} | "
                     f"{xf} | {r['x_best_hand']:.2f} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
