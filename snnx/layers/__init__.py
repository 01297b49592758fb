"""Layers: stateful composition and recurrence. Stateless layers come from `equinox.nn`."""

from ._util import is_stateful as is_stateful
from .recurrent import Recurrent as Recurrent, RecurrentState as RecurrentState
from .sequential import LayerRecord as LayerRecord, Sequential as Sequential
