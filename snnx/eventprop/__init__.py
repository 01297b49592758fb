"""Exact gradients for spiking networks: EventProp (Wunderlich & Pehle 2021) with the loss
shaping of Nowotny, Turner & Knight (2022).

```python
net = snnx.eventprop.EventPropNetwork(
    [eqx.nn.Linear(4, 64, key=k1), snnx.CuBaLIF(5.0, 10.0, dt=0.5),
     eqx.nn.Linear(64, 3, key=k2), snnx.CuBaLIF(5.0, 10.0, dt=0.5)], capacity=8)
loss = lambda net: snnx.eventprop.first_spike_ce(jax.vmap(net.readout)(xb), yb)
grads = eqx.filter_grad(loss)(net)          # exact: the adjoint with jumps at spikes
```

Learnable per-synapse delays (`delays=[D0, D1]`, `(N_out, N_in)` each, time units of `dt`)
get exact gradients too (`grads.delays`); `nonnegative_delays(optimizer)` or `clip_delays`
keep them >= 0 during training.
"""

from ._layer import LayerOut as LayerOut
from ._losses import (
    AbstractWeighting as AbstractWeighting,
    Constant as Constant,
    Exponential as Exponential,
    Weighting as Weighting,
    count_penalty as count_penalty,
    count_regulariser as count_regulariser,
    first_spike_ce as first_spike_ce,
    integral_voltage as integral_voltage,
    integral_voltage_ce as integral_voltage_ce,
    max_voltage_ce as max_voltage_ce,
    predict_first_spike as predict_first_spike,
    predict_integral_voltage as predict_integral_voltage,
    predict_max_voltage as predict_max_voltage,
)
from ._network import (
    EventPropNetwork as EventPropNetwork,
    EventPropResult as EventPropResult,
    EventPropState as EventPropState,
)
from ._project import clip_delays as clip_delays, nonnegative_delays as nonnegative_delays
