"""snnx: spiking neural networks in JAX and Equinox.

Neurons and layers are immutable `equinox.Module` PyTrees with explicit state; `snnx.run`
threads that state through a compiled `lax.scan`.
"""

from . import layers as layers, neurons as neurons, spikes as spikes
from .layers import (
    LayerRecord as LayerRecord,
    Recurrent as Recurrent,
    RecurrentState as RecurrentState,
    Sequential as Sequential,
)
from .neurons import (
    ALIF as ALIF,
    IF as IF,
    LI as LI,
    LIF as LIF,
    AbstractNeuron as AbstractNeuron,
    AdEx as AdEx,
    CuBaLI as CuBaLI,
    CuBaLIF as CuBaLIF,
    Izhikevich as Izhikevich,
    trainable_spec as trainable_spec,
)
from .run import default_unroll as default_unroll, run as run
from . import encoders as encoders, losses as losses, metrics as metrics, plot as plot
from . import train as train
from .train import (
    evaluate as evaluate,
    fit as fit,
    load_checkpoint as load_checkpoint,
    make_step as make_step,
    save_checkpoint as save_checkpoint,
)

from . import nir as nir
from .layers import (
    Delay as Delay,
    Flatten as Flatten,
    Graph as Graph,
    Scale as Scale,
    SumPool2d as SumPool2d,
    Threshold as Threshold,
)
from .neurons import Integrator as Integrator
from .nir import from_nir as from_nir, to_nir as to_nir
from .layers.sparse import SparseLinear as SparseLinear

__version__ = "0.1.0"
