"""snnx: spiking neural networks in JAX and Equinox.

Neurons and layers are immutable `equinox.Module` PyTrees with explicit state; `snnx.run`
threads that state through a compiled `lax.scan`.
"""

from . import (
    asynchronous as asynchronous,
    encoders as encoders,
    engine as engine,
    eventprop as eventprop,
    events as events,
    init as init,
    kernels as kernels,
    layers as layers,
    learn as learn,
    losses as losses,
    metrics as metrics,
    neurons as neurons,
    nir as nir,
    ode as ode,
    parallel as parallel,
    plot as plot,
    spikes as spikes,
    train as train,
)
from .engine import (
    NoRemat as NoRemat,
    Remat as Remat,
    compiler_options as compiler_options,
    default_unroll as default_unroll,
    run as run,
)
from .events import SpikeEvents as SpikeEvents
from .layers import (
    AbstractAllSteps as AbstractAllSteps,
    AbstractEventReader as AbstractEventReader,
    AbstractStatefulLayer as AbstractStatefulLayer,
    DCLSLinear as DCLSLinear,
    Delay as Delay,
    DelayedLinear as DelayedLinear,
    Flatten as Flatten,
    Graph as Graph,
    LayerRecord as LayerRecord,
    Recurrent as Recurrent,
    RecurrentState as RecurrentState,
    Scale as Scale,
    Sequential as Sequential,
    SparseLinear as SparseLinear,
    SumPool2d as SumPool2d,
    Threshold as Threshold,
)
from .neurons import (
    ALIF as ALIF,
    IF as IF,
    LI as LI,
    LIF as LIF,
    AbstractContinuousNeuron as AbstractContinuousNeuron,
    AbstractNeuron as AbstractNeuron,
    AdEx as AdEx,
    CuBaLI as CuBaLI,
    CuBaLIF as CuBaLIF,
    Integrator as Integrator,
    Izhikevich as Izhikevich,
    trainable_spec as trainable_spec,
)
from .nir import from_nir as from_nir, to_nir as to_nir
from .train import (
    History as History,
    evaluate as evaluate,
    fit as fit,
    load_checkpoint as load_checkpoint,
    make_step as make_step,
    save_checkpoint as save_checkpoint,
)

__version__ = "0.1.0"
