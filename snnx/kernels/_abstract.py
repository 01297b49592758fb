"""The declaration a neuron makes to run through a fused all-steps kernel."""

from ..layers._abstract import AbstractStatefulLayer


class AbstractFusedNeuron(AbstractStatefulLayer):
    """A neuron whose one-step call is elementwise over neurons, so that its whole time
    loop can run as one fused kernel (`snnx.kernels`): its fused all-steps form.

    Declaring it is a promise: every array leaf of the neuron, every state leaf, the
    per-step input and the output have the layer's shape or broadcast to it, and a step
    mixes no two neurons. In layer-major execution the planner then runs the neuron's time
    loop the way the run's `snnx.engine.AbstractNeuronScan` strategy says: the XLA scan of
    the one-step call (`snnx.engine.XLAScan`, the default on every backend, exactly what
    an undeclared stateful layer gets) or the Pallas kernels (`snnx.engine.PallasScan`,
    opt-in). Both give the same numbers.
    """

    def fused_supported(self) -> bool:
        """Whether this instance can run in the fused kernel (default True). A neuron that
        draws random numbers in its step (a stochastic surrogate) must say False: the
        kernel passes no keys. Then the XLA scan runs instead."""
        return True
