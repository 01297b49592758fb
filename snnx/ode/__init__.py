"""Continuous time: event-driven simulation of snnx neurons with diffrax.

The same neuron objects that `snnx.run` steps in discrete time are integrated here with an
ODE solver; spikes are located exactly (a bracketed root finder on the solver's dense
output) and are differentiable with respect to every parameter and input.
"""

from ._batch import simulate_batch as simulate_batch
from ._layers import simulate_layers as simulate_layers
from ._root import Chandrupatla as Chandrupatla
from ._simulate import (
    Solution as Solution,
    check_continuous as check_continuous,
    simulate as simulate,
)
