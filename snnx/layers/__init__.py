"""Layers: stateful composition and recurrence. Stateless layers come from `equinox.nn`."""

from ._util import is_stateful as is_stateful
from .basic import (
    Flatten as Flatten,
    Scale as Scale,
    SumPool2d as SumPool2d,
    Threshold as Threshold,
)
from .delay import Delay as Delay, DelayState as DelayState
from .graph import Graph as Graph, GraphState as GraphState
from .recurrent import Recurrent as Recurrent, RecurrentState as RecurrentState
from .sequential import LayerRecord as LayerRecord, Sequential as Sequential
from .sparse import SparseLinear as SparseLinear
