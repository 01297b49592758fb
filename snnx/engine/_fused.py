"""How a fused-capable neuron (`snnx.kernels.AbstractFusedNeuron`) runs over all steps."""

import abc

import equinox as eqx
import jax

from .._checks import is_int


class AbstractNeuronScan(eqx.Module):
    """A strategy for the time loop of a neuron that declares a fused all-steps form."""

    @abc.abstractmethod
    def run_neuron(self, neuron, xs, state, keys, context):
        """`(ys, final_state, trace)` of `neuron` over `xs` `(T, *shape)` (see
        `snnx.layers.AbstractAllSteps.all_steps`)."""


class XLAScan(AbstractNeuronScan):
    """The neuron's one-step call in a `lax.scan` (XLA fuses each step). The default on
    every backend (`snnx.engine.default_neuron_scan()`)."""

    def run_neuron(self, neuron, xs, state, keys, context):
        return context.scan(neuron, xs, state, keys)


class PallasScan(AbstractNeuronScan):
    """The whole time loop of each neuron block in one Pallas kernel, forward and backward.

    Opt-in: `snnx.run(model, xs, neuron_scan=snnx.engine.PallasScan())`, or
    `run_kwargs={"neuron_scan": ...}` in `snnx.fit` / `make_step` / `evaluate`. Same numbers
    as `XLAScan` (spikes identical, membranes and gradients to float rounding). GPU speed
    is unmeasured so far (bench/gpu_fused.py); on CPU use `interpret=True` only to test.
    Neurons that cannot run in it (`fused_supported()` False, e.g. a stochastic surrogate)
    fall back to the XLA scan.

    **Arguments:**

    - `block`: neurons per kernel program (a power of two; rounded down). Default 128.
    - `interpret`: run the kernels in Pallas' interpreter (any backend, slow). Default
        False (compiled for the backend: Triton on GPU).
    """

    block: int = eqx.field(static=True, default=128)
    interpret: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not (is_int(self.block) and self.block >= 1):
            raise ValueError(f"PallasScan `block` must be an int >= 1, got {self.block!r}.")
        if not isinstance(self.interpret, bool):
            raise TypeError(
                f"PallasScan `interpret` must be a bool, got {type(self.interpret).__name__}."
            )

    def run_neuron(self, neuron, xs, state, keys, context):
        from ..kernels._scan import fused_scan

        if not self.interpret and jax.default_backend() == "cpu":
            raise ValueError(
                "`PallasScan(interpret=False)` compiles Pallas kernels for a GPU, and this "
                "run is on CPU: use `PallasScan(interpret=True)` (slow, for tests) or the "
                "default `snnx.engine.XLAScan()`."
            )
        if not neuron.fused_supported():
            return context.scan(neuron, xs, state, keys)
        ys, final, trace = fused_scan(neuron, xs, state, block=self.block,
                                      interpret=self.interpret)
        return ys, final, (trace if context.record else None)


def as_neuron_scan(neuron_scan) -> AbstractNeuronScan:
    from ._backend import default_neuron_scan

    if neuron_scan is None:
        return default_neuron_scan()
    if not isinstance(neuron_scan, AbstractNeuronScan):
        raise TypeError(
            f"`neuron_scan` must be an `snnx.engine.AbstractNeuronScan` "
            f"(`snnx.engine.XLAScan()` or `snnx.engine.PallasScan()`) or None, got "
            f"{type(neuron_scan).__name__}."
        )
    return neuron_scan
