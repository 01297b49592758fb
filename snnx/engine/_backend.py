"""Per-backend defaults: the scan unroll and the XLA options snnx compiles with."""

import functools

import jax
import jax.numpy as jnp

from ._fused import AbstractNeuronScan, XLAScan


def default_unroll() -> int:
    """The scan unroll used when `snnx.run(..., unroll=None)`, chosen per backend.

    On CPU each scan iteration costs little and unrolling only grows the program, so the
    default is 1. On GPU/TPU every iteration launches kernels and unrolling a few steps lets
    XLA fuse them; the default there is 8 (measured on an H200: unroll 1 -> 8 took the
    training step of bench/ workload (a) from 11.4 to 2.3 ms).
    """
    return 1 if jax.default_backend() == "cpu" else 8


def default_neuron_scan() -> AbstractNeuronScan:
    """The time-loop strategy of fused-capable neurons when `snnx.run(..., neuron_scan=None)`.

    `snnx.engine.XLAScan()` on every backend. The Pallas kernels (`snnx.engine.PallasScan`)
    are opt-in until they are measured faster on a backend (as `default_unroll` was): on
    CPU they only run in Pallas' interpreter, and their GPU speed is not yet measured
    (bench/gpu_fused.py is the prepared measurement).
    """
    return XLAScan()


# XLA:CPU hands convolutions to YNNPACK by default, which on the SNN shapes measured here
# (N-MNIST-sized 5x5 convolutions, batch x time folded together) runs the training step 2x
# slower than XLA's own convolution (bench/, workload (c)); dots stay with the library.
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _probe_options(backend: str) -> tuple:
    if backend != "cpu":
        return ()
    try:  # an experimental XLA option: use it only if this jaxlib accepts it
        jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS).lower(
            jnp.float32(0)).compile()
    except Exception:
        return ()
    return tuple(_CPU_OPTIONS.items())


def compiler_options() -> dict:
    """XLA compiler options that snnx compiles its own programs with, chosen per backend.

    `snnx.fit`, `snnx.evaluate` and `snnx.make_step` use them; pass them to your own
    `jax.jit` / `eqx.filter_jit` to get the same code:

    ```python
    step = eqx.filter_jit(step, compiler_options=snnx.compiler_options())
    ```

    On CPU this keeps convolutions in XLA's own emitter instead of YNNPACK (2x faster
    training on the N-MNIST-shaped benchmark, same results); elsewhere it is empty. If the
    installed jaxlib does not know the option, it is empty too.
    """
    return dict(_probe_options(jax.default_backend()))
