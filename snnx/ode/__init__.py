"""Continuous time: event-driven simulation of snnx neurons with diffrax.

The same neuron objects that `snnx.run` steps in discrete time are integrated here with an
ODE solver; spikes are located exactly (root finding on the solver's dense output) and are
differentiable with respect to every parameter and input.
"""

from ._simulate import (
    Solution as Solution,
    check_continuous as check_continuous,
    simulate as simulate,
    simulate_layers as simulate_layers,
)
