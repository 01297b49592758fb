"""Spike queues for per-synapse delays: time and memory of each queue structure.

`snnx.layers.DelayedLinear` on `RingBuffer`, `FIFO` and `SortedQueue`, across max delay
{10, 100, 1000} steps and input activity {1%, 10%}, for a forward pass (`snnx.run`, default
mode) and a training step (loss + gradient w.r.t. the weights), batched with `jax.vmap`.
Times are medians of interleaved rounds, printed as ratios to `RingBuffer` measured in the
same round; memory is XLA's compiled temporary buffers plus the queue state of one sample.
The event queues get a capacity of twice the expected number of events in flight (drops,
if any, are counted and printed).

    /work/main/.venv/bin/python bench/delays.py --quick     # max delay {10, 100}, 1 round set
    /work/main/.venv/bin/python bench/delays.py             # the full table

Results: bench/results/delays/results.{md,json}.
"""

import argparse
import json
import math
import pathlib
import platform
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from common import interleaved  # noqa: E402

import snnx  # noqa: E402
from snnx.layers import FIFO, DelayedLinear, RingBuffer, SortedQueue  # noqa: E402

N_IN = N_OUT = 16
BATCH = 4
SORT_LIMIT = 10_000
NOTES = """
Measured on a 2-core CPU shared with 8 other jobs (load average 6-8): absolute times are
noisy (see the two RingBuffer rows at max delay 10, which should be ordered the other way);
ratios to `RingBuffer` come from the same interleaved rounds and are the numbers to read.
`train temp+out` is XLA's compiled temporary + output buffers of the training step (batch 4).

What the table says (and what `snnx.layers.default_queue()` follows on CPU):

- `RingBuffer` trains fastest (or tied, at max delay 1000 and 1%) in every cell (its
  all-steps form is one gather-sum, no scan) and never drops: the CPU default.
- `FIFO` is the one that wins elsewhere: forward (inference) at 1% activity it takes
  0.2-0.7x the ring's time with 1/3-1/16 of its state and about half its training
  buffers, the EventQueues finding for CPU;
  at 10% activity or in training (a scan whose backward pass stores every step's queue)
  it is 1-25x slower.
- `SortedQueue` is 50-1000x slower on CPU (a sort of the whole table every step); the
  accelerator it suits (TPU, per EventQueues) was not measured here. Skipped where its
  lossless-in-expectation capacity exceeds 10,000 events.
"""


def queues(max_delay, activity):
    live = activity * N_IN * (max_delay + 1)          # presynaptic spikes in flight
    out = {"RingBuffer": RingBuffer(), "FIFO": FIFO(capacity=int(math.ceil(2 * live)) + N_IN)}
    capacity = int(math.ceil(2 * live * N_OUT)) + N_IN * N_OUT
    # A sort of this many events per step takes minutes per call on a shared CPU: skipped
    # (and said so in the table); it is already >1000x slower than the ring below this size.
    if capacity <= SORT_LIMIT:
        out["SortedQueue"] = SortedQueue(capacity=capacity)
    else:
        print(f"D_max={max_delay} activity={activity:.0%}: SortedQueue skipped (capacity "
              f"{capacity} > {SORT_LIMIT} events)", flush=True)
    return out


def workload(queue, max_delay, activity, T, key):
    k1, k2 = jax.random.split(key)
    layer = DelayedLinear(N_IN, N_OUT, max_delay, queue=queue, key=k1)
    xs = jax.random.bernoulli(k2, activity, (BATCH, T, N_IN)).astype(jnp.float32)

    def forward_fn(layer, xs):
        return jax.vmap(lambda x: snnx.run(layer, x))(xs)

    def loss(layer, xs):
        ys, _ = jax.vmap(lambda x: snnx.run(layer, x))(xs)
        return jnp.mean(ys**2)

    def train_fn(layer, xs):
        return eqx.filter_value_and_grad(loss)(layer, xs)

    # Every leaf of the layer is an array (the queue's options are static), so plain
    # `jax.jit` compiles it, and its compiled form reports its buffers.
    forward, train = jax.jit(forward_fn), jax.jit(train_fn)

    def memory(f):
        m = f.lower(layer, xs).compile().memory_analysis()
        return None if m is None else int(m.temp_size_in_bytes + m.output_size_in_bytes)

    state = layer.init_state((N_IN,))
    state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(state))
    return layer, xs, forward, train, memory(forward), memory(train), state_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    delays = (10, 100) if args.quick else (10, 100, 1000)
    T = 100 if args.quick else 200
    rounds = 5 if args.quick else args.rounds
    rows = []
    for max_delay in delays:
        for activity in (0.01, 0.1):
            setups = {name: workload(q, max_delay, activity, T, jax.random.key(0))
                      for name, q in queues(max_delay, activity).items()}
            fns = {}
            for name, (layer, xs, fwd, train, *_) in setups.items():
                fns[f"{name}/forward"] = lambda f=fwd, a=layer, b=xs: f(a, b)
                fns[f"{name}/train"] = lambda f=train, a=layer, b=xs: f(a, b)
            times = interleaved(fns, warmup=1, rounds=rounds, per_round=1)
            for name, (layer, xs, fwd, train, mem_f, mem_t, state_b) in setups.items():
                _, st = fwd(layer, xs)
                dropped = int(np.sum(np.asarray(st.dropped)))
                row = {"max_delay": max_delay, "activity": activity, "queue": name,
                       "forward_ms": times[f"{name}/forward"]["median_ms"],
                       "train_ms": times[f"{name}/train"]["median_ms"],
                       "forward_iqr_ms": times[f"{name}/forward"]["iqr_ms"],
                       "train_iqr_ms": times[f"{name}/train"]["iqr_ms"],
                       "forward_temp_bytes": mem_f, "train_temp_bytes": mem_t,
                       "state_bytes": state_b, "dropped": dropped}
                ref = (times["RingBuffer/forward"]["median_ms"],
                       times["RingBuffer/train"]["median_ms"])
                row["forward_vs_ring"] = row["forward_ms"] / ref[0]
                row["train_vs_ring"] = row["train_ms"] / ref[1]
                rows.append(row)
                print(f"D_max={max_delay:5d} act={activity:4.0%} {name:12s} "
                      f"fwd {row['forward_ms']:9.2f} ms ({row['forward_vs_ring']:6.2f}x ring) "
                      f"train {row['train_ms']:9.2f} ms ({row['train_vs_ring']:6.2f}x ring) "
                      f"state {state_b / 1024:8.1f} KiB train temp+out "
                      f"{(mem_t or 0) / 2**20:8.2f} MiB dropped {dropped}", flush=True)
    out = pathlib.Path(__file__).parent / "results" / "delays"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"backend": jax.default_backend(), "jax": jax.__version__,
            "machine": platform.processor() or platform.machine(), "T": T, "batch": BATCH,
            "n_in": N_IN, "n_out": N_OUT, "rounds": rounds, "quick": args.quick}
    name = "results_quick" if args.quick else "results"
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Spike queues (bench/delays.py{' --quick' if args.quick else ''})", "",
             f"{meta}", NOTES, "",
             "| max delay | activity | queue | forward ms | x ring | train ms | x ring | "
             "state KiB | train temp+out MiB | dropped |", "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['max_delay']} | {r['activity']:.0%} | {r['queue']} | {r['forward_ms']:.2f} | "
            f"{r['forward_vs_ring']:.2f} | {r['train_ms']:.2f} | {r['train_vs_ring']:.2f} | "
            f"{r['state_bytes'] / 1024:.1f} | {(r['train_temp_bytes'] or 0) / 2**20:.2f} | "
            f"{r['dropped']} |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
