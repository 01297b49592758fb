"""Training: `fit`, `evaluate`, `make_step`, checkpoints, progress meters and `History`.

Data lives on the device. `fit` takes `train_data=(xs, ys)` where `xs` is

- a dense array of shape `(N, T, *input_shape)` (time second: sample, time, features), or
- an `snnx.data.PackedSpikes` (bit-packed along time), unpacked inside the compiled step,
- an `snnx.SpikeEvents` (event table), projected event by event by the first layer,

and `ys` are integer class labels `(N,)` (or float targets `(N, classes)` for losses such as
`snnx.losses.mse_count`). Each epoch is shuffled on the device with a key; batches are
gathered (and unpacked) inside the compiled step, so only indices cross from Python.

The package: `_data` (checks, batching, the input format), `_step` (the compiled step and
its `StepConfig`), `_evaluate`, `_fit` (the epoch loop), `_progress` (meters), `_history`,
`_checkpoint`.
"""

from ._checkpoint import load_checkpoint as load_checkpoint, save_checkpoint as save_checkpoint
from ._data import AUTO_MAX_FRACTION as AUTO_MAX_FRACTION, choose_input as choose_input
from ._evaluate import evaluate as evaluate
from ._fit import fit as fit
from ._history import History as History
from ._progress import (
    AbstractLoopMeter as AbstractLoopMeter,
    AbstractProgressMeter as AbstractProgressMeter,
    NoProgressMeter as NoProgressMeter,
    TqdmProgressMeter as TqdmProgressMeter,
)
from ._step import StepConfig as StepConfig, make_step as make_step

__all__ = ["fit", "evaluate", "make_step", "save_checkpoint", "load_checkpoint", "History",
           "StepConfig", "AbstractProgressMeter", "NoProgressMeter", "TqdmProgressMeter",
           "AbstractLoopMeter", "choose_input", "AUTO_MAX_FRACTION"]
