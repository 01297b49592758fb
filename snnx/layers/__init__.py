"""Layers: the layer contract, stateful composition, recurrence, delays, sparse projections.

Stateless layers come from `equinox.nn` or are plain functions; see `_abstract.py` for what
a layer declares.
"""

from ._abstract import (
    AbstractAllSteps as AbstractAllSteps,
    AbstractEventReader as AbstractEventReader,
    AbstractStatefulLayer as AbstractStatefulLayer,
    LayerRecord as LayerRecord,
)
from ._util import is_stateful as is_stateful
from .basic import (
    Flatten as Flatten,
    Scale as Scale,
    SumPool2d as SumPool2d,
    Threshold as Threshold,
)
from .dcls import (
    DCLSLinear as DCLSLinear,
    SigmaSchedule as SigmaSchedule,
    round_delays as round_delays,
    set_sigma as set_sigma,
)
from .delay import Delay as Delay, DelayState as DelayState
from .delayed import DelayedLinear as DelayedLinear
from .graph import Graph as Graph, GraphState as GraphState
from .queues import (
    FIFO as FIFO,
    AbstractDropPolicy as AbstractDropPolicy,
    AbstractQueue as AbstractQueue,
    DropNewest as DropNewest,
    DropOldest as DropOldest,
    FIFOState as FIFOState,
    RingBuffer as RingBuffer,
    RingState as RingState,
    SortedQueue as SortedQueue,
    SortedState as SortedState,
    check_dropped as check_dropped,
    default_queue as default_queue,
)
from .recurrent import Recurrent as Recurrent, RecurrentState as RecurrentState
from .sequential import Sequential as Sequential
from .sparse import SparseLinear as SparseLinear
