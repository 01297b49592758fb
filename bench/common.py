"""Timing and memory helpers shared by every benchmark (no snnx import here)."""

import gc
import resource
import statistics
import time


def block(x):
    """Wait for every array in a PyTree (JAX `block_until_ready`; torch tensors pass)."""
    try:
        import jax

        return jax.block_until_ready(x)
    except Exception:  # torch outputs or plain Python values
        return x


def interleaved(fns: dict, *, warmup: int = 2, rounds: int = 10, per_round: int = 3) -> dict:
    """Time several zero-argument step functions, interleaved round by round.

    Every function is called `warmup` times first (compilation), then `rounds` rounds in which
    each function runs once untimed and then `per_round` times back to back, each call timed
    on its own; the order rotates from round to round. Running the contenders in alternation
    means a burst of load from other processes on a shared machine hits all of them alike.

    **Returns:** `{name: {"median_ms", "q1_ms", "q3_ms", "iqr_ms", "n", "compile_s"}}`.
    """
    compile_s = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            block(fn())
        compile_s[name] = time.perf_counter() - t0
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        gc.collect()
        # Rotate who goes first, and give every block one untimed call: the first call after
        # another contender ran finds cold caches and reallocated buffers, which otherwise
        # always penalised whoever came first in a round.
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = fns[name]
            block(fn())
            for _ in range(per_round):
                t0 = time.perf_counter()
                block(fn())
                samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: summarise(s, compile_s[name]) for name, s in samples.items()}


def summarise(samples, compile_s=None) -> dict:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
    return {
        "median_ms": statistics.median(s),
        "q1_ms": q[0],
        "q3_ms": q[2],
        "iqr_ms": q[2] - q[0],
        "n": len(s),
        "compile_s": compile_s,
    }


def jax_peak_bytes(jitted, *args) -> int | None:
    """XLA's compiled-program memory: arguments + outputs + temporaries (a peak proxy)."""
    try:
        m = jitted.lower(*args).compile().memory_analysis()
        if m is None:
            return None
        return int(m.argument_size_in_bytes + m.output_size_in_bytes
                   + m.temp_size_in_bytes - m.alias_size_in_bytes)
    except Exception:
        return None


def max_rss_bytes() -> int:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Every bench network is made to spike: each spiking layer's input weights are multiplied by
# a scalar found by bisection so that the layer fires this fraction of its neurons per step
# on (the first CALIB_BATCH samples of) the benchmark batch, in every library alike. With the
# libraries' own initialisations and the (1 - beta) input gain they were all silent, so the
# timed steps and the equality checks saw readouts driven by their biases only.
TARGET_RATE = 0.08
CALIB_BATCH = 8


def calibrate(rates_of, n_layers, *, target=TARGET_RATE, lo=1e-2, hi=1e3, iters=12):
    """Per-layer weight scales that make every spiking layer fire at `target` per step.

    `rates_of(scales) -> [rate of spiking layer k]` (mean spikes per neuron and step).
    Layers are set in order (a layer's rate depends only on the scales up to its own), each
    by a geometric bisection on `[lo, hi]`, assuming the rate grows with the scale.

    **Returns:** `(scales, rates)`, both lists of floats.
    """
    scales = [1.0] * n_layers
    for k in range(n_layers):
        a, b = lo, hi
        for _ in range(iters):
            scales[k] = (a * b) ** 0.5
            if rates_of(scales)[k] < target:
                a = scales[k]
            else:
                b = scales[k]
        scales[k] = (a * b) ** 0.5
    return scales, [float(r) for r in rates_of(scales)]
