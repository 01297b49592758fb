"""Time per sequence of an `snnx.asynchronous.Unlayered` network vs its group size F.

```
python bench/asynchronous.py --quick     # fewer rounds
```

A 64-128-128-10 network (two LIF hidden layers, LI readout) on a batch of 32 rate-coded
sequences of 25 steps, forward (`snnx.run` under `jax.vmap`, jitted) and forward+backward
(`jax.grad` of a sum of squares), for the layered `snnx.Sequential` and for `Unlayered` at
several `F` (default `micro_steps = N // F + 2`). Contenders run interleaved round by round
(`bench.common.interleaved`), medians reported as ratios to the layered network measured in
the same run. Results go to `bench/results/asynchronous/`.
"""

import argparse
import json
import os
import pathlib
import platform
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from common import interleaved  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, fewer group sizes")
    args = parser.parse_args(argv)
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import snnx
    from snnx.asynchronous import ByMembrane, Unlayered

    k1, k2, k3, kx = jax.random.split(jax.random.key(0), 4)
    seq = snnx.Sequential([eqx.nn.Linear(64, 128, key=k1), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(128, 128, key=k2), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(128, 10, key=k3), snnx.LI(tau=5.0)])
    seq = eqx.tree_at(lambda m: (m.layers[0].weight, m.layers[2].weight), seq,
                      (seq.layers[0].weight * 4, seq.layers[2].weight * 4))
    xb = (jax.random.uniform(kx, (32, 25, 64)) < 0.3).astype(jnp.float32)
    groups = (256, 32, 8) if args.quick else (256, 64, 32, 16, 8)
    models = {"layered": seq}
    for F in groups:
        models[f"F={F}"] = Unlayered(seq, group_size=F, schedule=ByMembrane())

    def forward(m):
        return jax.vmap(lambda x: snnx.run(m, x)[0])(xb)

    fwd = eqx.filter_jit(forward)
    grad = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(forward(m) ** 2)))
    fns = {}
    for name, m in models.items():
        fns[f"{name} forward"] = (lambda m=m: fwd(m))
        fns[f"{name} grad"] = (lambda m=m: grad(m))
    rounds = 5 if args.quick else 10
    res = interleaved(fns, warmup=2, rounds=rounds, per_round=1)
    out = {"config": {"batch": 32, "T": 25, "sizes": [64, 128, 128, 10], "rounds": rounds,
                      "schedule": "ByMembrane", "machine": platform.platform(),
                      "cpus": os.cpu_count(), "note": "shared, heavily loaded 2-core machine"},
           "results": {}}
    lines = ["| network | micro-steps/step | forward ms | x layered | grad ms | x layered |",
             "|---|---|---|---|---|---|"]
    base_f = res["layered forward"]["median_ms"]
    base_g = res["layered grad"]["median_ms"]
    for name, m in models.items():
        f, g = res[f"{name} forward"]["median_ms"], res[f"{name} grad"]["median_ms"]
        k = m.micro_steps if isinstance(m, Unlayered) else "-"
        out["results"][name] = {"micro_steps": k, "forward_ms": f, "grad_ms": g,
                                "forward_x": f / base_f, "grad_x": g / base_g}
        lines.append(f"| {name} | {k} | {f:.1f} | {f / base_f:.1f} | {g:.1f} | {g / base_g:.1f} |")
    print("\n".join(lines))
    folder = pathlib.Path(__file__).parent / "results" / "asynchronous"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(out, indent=1))
    (folder / "results.md").write_text(
        "# Unlayered time per batch vs group size F\n\n"
        "Batch 32 x 25 steps, 64-128-128-10 (two LIF hidden layers, N = 256), ByMembrane, "
        f"medians of {rounds} interleaved rounds, ratios to the layered network in the same run. "
        "Machine: a shared 2-core CPU box under heavy load from other jobs (absolute times are "
        "noisy; the ratios are what to read).\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
