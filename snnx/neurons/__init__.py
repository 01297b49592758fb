"""Neuron models. Each is an `AbstractNeuron`: `init_state(shape)` and one-step `__call__`;
the built-in ones are `AbstractContinuousNeuron`s (also `vector_field`, `spike_condition`,
`reset`) whose parameters are stored by `AbstractParametrisedNeuron` (`_params.py`)."""

from ._abstract import (
    AbstractContinuousNeuron as AbstractContinuousNeuron,
    AbstractNeuron as AbstractNeuron,
)
from ._params import (
    AbstractParametrisedNeuron as AbstractParametrisedNeuron,
    trainable_spec as trainable_spec,
)
from .adex import AdEx as AdEx, AdExState as AdExState
from .alif import ALIF as ALIF, ALIFState as ALIFState
from .cuba import CuBaLI as CuBaLI, CuBaLIF as CuBaLIF, CuBaState as CuBaState
from .if_ import IF as IF, IFState as IFState
from .integrator import Integrator as Integrator, IntegratorState as IntegratorState
from .izhikevich import Izhikevich as Izhikevich, IzhikevichState as IzhikevichState
from .li import LI as LI, LIState as LIState
from .lif import LIF as LIF, LIFState as LIFState
