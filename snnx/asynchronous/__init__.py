"""Asynchronous, unlayered execution (Koopman et al. 2024).

`Unlayered` runs a feed-forward `Linear` + `LIF` stack without layer synchronisation: all
neurons in one state, spikes delivered in forward groups of `group_size` per micro-step,
in an order a schedule (`Random`, `ByMembrane`) chooses. `steps_to_decision` and
`spikes_per_sample` measure what the paper reports.
"""

from ._measure import spikes_per_sample as spikes_per_sample, steps_to_decision as steps_to_decision
from ._schedule import (
    AbstractSchedule as AbstractSchedule,
    ByMembrane as ByMembrane,
    Random as Random,
)
from ._unlayered import (
    Unlayered as Unlayered,
    UnlayeredState as UnlayeredState,
    default_micro_steps as default_micro_steps,
)
