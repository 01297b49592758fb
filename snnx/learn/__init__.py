"""Local and bio-plausible learning rules: STDP, e-prop, feedback alignment, PAL."""

from ._eprop import (
    AbstractFeedback as AbstractFeedback,
    EpropState as EpropState,
    RandomFeedback as RandomFeedback,
    Symmetric as Symmetric,
    eprop_grad as eprop_grad,
    eprop_gradients as eprop_gradients,
    eprop_init as eprop_init,
    eprop_step as eprop_step,
)
from ._feedback import (
    PAL as PAL,
    AbstractFeedbackRule as AbstractFeedbackRule,
    Fixed as Fixed,
    RateNetwork as RateNetwork,
    alignment_angle as alignment_angle,
    feedback_alignment_grad as feedback_alignment_grad,
    feedback_step as feedback_step,
    init_feedback as init_feedback,
    pal_update as pal_update,
)
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
