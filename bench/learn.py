"""e-prop's online gradient vs BPTT (jax.grad through snnx.run): memory and time against T.

```
python bench/learn.py --quick
```

Memory is XLA's compiled temporary-buffer size (`memory_analysis()`, deterministic, no
run needed); time is the median of interleaved rounds (e-prop, BPTT, e-prop, ...) of one
jitted gradient on a batch, so both see the same machine load. Results go to
bench/results/learn/.
"""

import argparse
import json
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import snnx
from snnx.learn import eprop_grad


def ce(y, t):
    return -jax.nn.log_softmax(y)[t]


def make(n_in, hidden, key):
    k1, k2 = jax.random.split(key)
    return snnx.Sequential([eqx.nn.Linear(n_in, hidden, key=k1), snnx.LIF(tau=10.0),
                            eqx.nn.Linear(hidden, 10, key=k2), snnx.LI(tau=10.0)])


def functions(model):
    @jax.jit
    def eprop(xs, ys):
        loss, g = jax.vmap(lambda x, y: eprop_grad(model, x, y, ce))(xs, ys)
        return loss.mean(), jax.tree.map(lambda a: a.mean(0), g)

    @jax.jit
    def bptt(xs, ys):
        def loss(m):
            out = jax.vmap(lambda x: snnx.run(m, x)[0])(xs)
            return jnp.mean(jax.vmap(jax.vmap(ce, (0, None)))(out, ys))
        return eqx.filter_value_and_grad(loss)(model)

    return {"eprop": eprop, "bptt": bptt}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    lengths = (50, 200, 800) if args.quick else (50, 200, 800, 3200)
    rounds = 5 if args.quick else 7
    n_in, hidden, batch = 64, 128, 16
    model = make(n_in, hidden, jax.random.key(0))
    fns = functions(model)
    rows = []
    for T in lengths:
        xs = (jax.random.uniform(jax.random.key(T), (batch, T, n_in)) < 0.1).astype(jnp.float32)
        ys = jnp.arange(batch) % 10
        row = {"T": T}
        compiled = {k: f.lower(xs, ys).compile() for k, f in fns.items()}
        for k, c in compiled.items():
            row[f"{k}_temp_bytes"] = int(c.memory_analysis().temp_size_in_bytes)
            jax.block_until_ready(c(xs, ys))  # warm
        times = {k: [] for k in compiled}
        for _ in range(rounds):
            for k, c in compiled.items():
                t0 = time.perf_counter()
                jax.block_until_ready(c(xs, ys))
                times[k].append(time.perf_counter() - t0)
        for k in compiled:
            row[f"{k}_s"] = statistics.median(times[k])
        row["memory_ratio_bptt_over_eprop"] = row["bptt_temp_bytes"] / row["eprop_temp_bytes"]
        row["time_ratio_eprop_over_bptt"] = row["eprop_s"] / row["bptt_s"]
        rows.append(row)
        print(f"T={T:5d}  temp memory: e-prop {row['eprop_temp_bytes'] / 2**20:7.2f} MiB, "
              f"BPTT {row['bptt_temp_bytes'] / 2**20:7.2f} MiB "
              f"(BPTT/e-prop {row['memory_ratio_bptt_over_eprop']:.2f}x)   time: e-prop/BPTT "
              f"{row['time_ratio_eprop_over_bptt']:.2f}x (median of {rounds})", flush=True)
    out = os.path.join(os.path.dirname(__file__), "results", "learn")
    os.makedirs(out, exist_ok=True)
    meta = {"batch": batch, "n_in": n_in, "hidden": hidden, "rounds": rounds,
            "device": jax.devices()[0].platform, "cpu_count": os.cpu_count(),
            "note": "shared, heavily loaded 2-core machine: times are noisy, ratios only"}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("# e-prop vs BPTT: memory and time against sequence length\n\n")
        f.write(f"Network Linear({n_in},{hidden}) -> LIF -> Linear({hidden},10) -> LI, batch "
                f"{batch}, float32, CPU. Memory: XLA temporary buffers of the compiled "
                f"gradient. Time: median of {rounds} interleaved rounds on a shared, loaded "
                f"machine (ratios only).\n\n")
        f.write("| T | e-prop temp MiB | BPTT temp MiB | BPTT/e-prop memory | "
                "e-prop/BPTT time |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['T']} | {r['eprop_temp_bytes'] / 2**20:.2f} | "
                    f"{r['bptt_temp_bytes'] / 2**20:.2f} | "
                    f"{r['memory_ratio_bptt_over_eprop']:.2f} | "
                    f"{r['time_ratio_eprop_over_bptt']:.2f} |\n")


if __name__ == "__main__":
    main()
