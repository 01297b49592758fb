"""Local and bio-plausible learning rules: STDP, e-prop, feedback alignment, PAL."""

from ._stdp import (
    STDP as STDP,
    AbstractBound as AbstractBound,
    AbstractPairing as AbstractPairing,
    Additive as Additive,
    AllToAll as AllToAll,
    Multiplicative as Multiplicative,
    Nearest as Nearest,
    STDPState as STDPState,
)
