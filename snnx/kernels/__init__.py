"""Fused kernels for the neuron time loop (Pallas; opt-in, see `snnx.engine.PallasScan`).

`fused_scan(neuron, xs, state)` runs a neuron that declares `AbstractFusedNeuron` over all
time steps in one Pallas kernel (forward) and one reverse-time kernel (backward, a
`jax.custom_vjp`). Tested on CPU in Pallas' interpret mode against the XLA scan; its speed
on a GPU has not been measured yet (bench/gpu_fused.py is the prepared measurement).
"""

from ._abstract import AbstractFusedNeuron as AbstractFusedNeuron
from ._scan import fused_scan as fused_scan
