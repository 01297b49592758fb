"""EventProp vs BPTT: time and peak memory of one training step (value and gradient).

The same layers (`eqx.nn.Linear` + `snnx.CuBaLIF` hidden, `snnx.CuBaLI` readout) are
trained by `snnx.eventprop.EventPropNetwork` (exact gradients, per-spike storage) and by
surrogate-gradient BPTT through `snnx.run` of `net.to_sequential()` (discrete steps), with
the same loss (cross-entropy on the time-averaged readout membrane). Rounds are
interleaved (EventProp, BPTT, EventProp, ...) and the median is reported; peak memory is
XLA's `temp_size_in_bytes` of the compiled step. The machine is shared and loaded, so times
are ratios measured in the same run, not absolute numbers.

    python bench/eventprop.py --quick
    python bench/eventprop.py --delays [--quick]

`--delays` instead times one EventProp training step of the same network with learnable
per-synapse delays on the hidden-to-readout projection (and, separately, on the input
projection) against the same network without delays (ratio, interleaved rounds, median).
"""

import argparse
import json
import pathlib
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import snnx
from snnx.eventprop import EventPropNetwork, integral_voltage_ce

N_IN, N_HID, N_OUT, BATCH, DT = 100, 128, 10, 16, 1.0


def _make(key, capacity, delays=None):
    k1, k2 = jax.random.split(key)
    lin1 = eqx.nn.Linear(N_IN, N_HID, key=k1)
    lin1 = eqx.tree_at(lambda m: m.weight, lin1, lin1.weight * 20.0 + 0.5)
    lin2 = eqx.nn.Linear(N_HID, N_OUT, key=k2)
    return EventPropNetwork([lin1, snnx.CuBaLIF(5.0, 20.0, dt=DT), lin2,
                             snnx.CuBaLI(5.0, 20.0, dt=DT)], capacity=capacity, delays=delays)


def _steps(net, seq):
    def ep_loss(n, xb, yb):
        return integral_voltage_ce(jax.vmap(n.readout)(xb), yb, dt=DT)

    def bptt_loss(m, xb, yb):
        return integral_voltage_ce(jax.vmap(lambda x: snnx.run(m, x)[0])(xb), yb, dt=DT)

    return (eqx.filter_jit(eqx.filter_value_and_grad(ep_loss)),
            eqx.filter_jit(eqx.filter_value_and_grad(bptt_loss)))


def _memory(fn, *args):
    compiled = jax.jit(lambda *a: fn(*a)).lower(*args).compile()
    mem = compiled.memory_analysis()
    return None if mem is None else int(mem.temp_size_in_bytes)


def _time(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def bench(T, rate, rounds, key):
    xb = (jax.random.uniform(key, (BATCH, T, N_IN)) < rate).astype(jnp.float32)
    yb = jnp.arange(BATCH) % N_OUT
    expected = rate * T * 3  # spikes per hidden neuron, generous
    net = _make(jax.random.key(1), capacity=max(8, int(expected)))
    seq = net.to_sequential()
    ep, bp = _steps(net, seq)
    counts = jax.vmap(net.simulate)(xb).layers[0]
    overflow = int(jnp.sum(counts.overflow))
    hid_rate = float(jnp.mean(counts.counts)) / T
    ep(net, xb, yb), bp(seq, xb, yb)  # compile
    t_ep, t_bp = [], []
    for _ in range(rounds):
        t_ep.append(_time(ep, net, xb, yb))
        t_bp.append(_time(bp, seq, xb, yb))
    p_net, s_net = eqx.partition(net, eqx.is_array)
    p_seq, s_seq = eqx.partition(seq, eqx.is_array)
    m_ep = _memory(lambda p, x, y: ep(eqx.combine(p, s_net), x, y), p_net, xb, yb)
    m_bp = _memory(lambda p, x, y: bp(eqx.combine(p, s_seq), x, y), p_seq, xb, yb)
    return {"T": T, "input_rate": rate, "hidden_rate_per_step": hid_rate,
            "capacity": net.capacity[0], "overflow": overflow,
            "eventprop_s": statistics.median(t_ep), "bptt_s": statistics.median(t_bp),
            "time_ratio_ep_over_bptt": statistics.median(t_ep) / statistics.median(t_bp),
            "eventprop_temp_bytes": m_ep, "bptt_temp_bytes": m_bp,
            "memory_ratio_ep_over_bptt": (m_ep / m_bp) if m_ep and m_bp else None}


def bench_delays(T, rate, rounds, key):
    """One EventProp training step with and without delays (max 10 steps), interleaved."""
    xb = (jax.random.uniform(key, (BATCH, T, N_IN)) < rate).astype(jnp.float32)
    yb = jnp.arange(BATCH) % N_OUT
    cap = max(8, int(rate * T * 3))
    kd = jax.random.key(2)
    nets = {
        "none": _make(jax.random.key(1), cap),
        "hidden": _make(jax.random.key(1), cap,
                        [None, jax.random.uniform(kd, (N_OUT, N_HID)) * 10 * DT]),
        "input": _make(jax.random.key(1), cap,
                       [jax.random.uniform(kd, (N_HID, N_IN)) * 10 * DT, None]),
    }

    def loss(n, xb, yb):
        return integral_voltage_ce(jax.vmap(n.readout)(xb), yb, dt=DT)

    step = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    for net in nets.values():
        step(net, xb, yb)  # compile
    times = {name: [] for name in nets}
    for _ in range(rounds):
        for name, net in nets.items():
            times[name].append(_time(step, net, xb, yb))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"T": T, "input_rate": rate, "capacity": cap,
            **{f"{name}_s": med[name] for name in nets},
            "ratio_hidden_delays": med["hidden"] / med["none"],
            "ratio_input_delays": med["input"] / med["none"]}


def main_delays(quick):
    rows = []
    for T in ((100,) if quick else (100, 500)):
        r = bench_delays(T, 0.02, 5, jax.random.key(T))
        rows.append(r)
        print(f"T={T} step without delays {r['none_s']*1e3:.0f} ms; with hidden->readout "
              f"delays x{r['ratio_hidden_delays']:.2f}; with input->hidden delays "
              f"x{r['ratio_input_delays']:.2f}", flush=True)
    out = pathlib.Path(__file__).parent / "results" / "eventprop"
    out.mkdir(parents=True, exist_ok=True)
    name = "delays_quick" if quick else "delays"
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# EventProp step with learnable delays vs without ({name}; batch {BATCH}, "
             f"{N_IN}-{N_HID}-{N_OUT}, input rate 0.02, CPU, shared and loaded machine: "
             "ratios from interleaved rounds, median of 5)", "",
             "| T | no delays ms | hidden->readout delays / none | input->hidden delays / "
             "none |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['T']} | {r['none_s']*1e3:.0f} | {r['ratio_hidden_delays']:.2f} | "
                     f"{r['ratio_input_delays']:.2f} |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--delays", action="store_true")
    args = ap.parse_args()
    if args.delays:
        main_delays(args.quick)
        return
    Ts = (100, 500) if args.quick else (100, 500, 2000)
    rates = (0.01, 0.05)
    rounds = 5
    rows = []
    for T in Ts:
        for rate in rates:
            r = bench(T, rate, rounds, jax.random.key(T))
            rows.append(r)
            print(f"T={T:5d} rate={rate:.2f} hidden/step={r['hidden_rate_per_step']:.3f} "
                  f"time EP/BPTT={r['time_ratio_ep_over_bptt']:.2f} "
                  f"({r['eventprop_s']*1e3:.0f} / {r['bptt_s']*1e3:.0f} ms) "
                  f"memory EP/BPTT={r['memory_ratio_ep_over_bptt']} overflow={r['overflow']}",
                  flush=True)
    out = pathlib.Path(__file__).parent / "results" / "eventprop"
    out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "full"
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# EventProp vs BPTT ({name}; batch {BATCH}, {N_IN}-{N_HID}-{N_OUT}, CPU, "
             "shared and loaded machine: ratios from interleaved rounds, median of 5)", "",
             "| T | input rate | hidden spikes/step | time EP/BPTT | EP ms | BPTT ms | "
             "temp memory EP/BPTT |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = r["memory_ratio_ep_over_bptt"]
        lines.append(f"| {r['T']} | {r['input_rate']} | {r['hidden_rate_per_step']:.3f} | "
                     f"{r['time_ratio_ep_over_bptt']:.2f} | {r['eventprop_s']*1e3:.0f} | "
                     f"{r['bptt_s']*1e3:.0f} | {'n/a' if mem is None else f'{mem:.2f}'} |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
