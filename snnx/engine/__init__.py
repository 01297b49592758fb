"""The time engine: `snnx.run`, `run_batch`, its planner, the all-steps table, remat, the
neuron-scan strategies (XLA scan or fused Pallas kernels) and backend defaults.

See `snnx.layers._abstract` for the contract the planner reads.
"""

from ._backend import (
    compiler_options as compiler_options,
    default_neuron_scan as default_neuron_scan,
    default_unroll as default_unroll,
)
from ._batch import run_batch as run_batch
from ._fused import (
    AbstractNeuronScan as AbstractNeuronScan,
    PallasScan as PallasScan,
    XLAScan as XLAScan,
)
from ._planner import RunContext as RunContext
from ._remat import AbstractRemat as AbstractRemat, NoRemat as NoRemat, Remat as Remat
from ._run import run as run
from ._table import EQUINOX_FORMS as EQUINOX_FORMS, all_steps_form as all_steps_form
