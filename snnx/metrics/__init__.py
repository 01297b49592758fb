"""Accuracies matching `snnx.losses`, firing rates, and the NeuroBench metrics.

The NeuroBench metrics follow the definitions of the `neurobench` package (2.x):

- static: `footprint` (bytes of parameters and buffers), `connection_sparsity`;
- workload, from the records of `snnx.run(model, xs, record=True)`:
  `activation_sparsity`, `synaptic_operations` (effective MACs, effective ACs, dense),
  `membrane_updates`, `neuron_operations`, and the classification `accuracy`;
- `report(model, (xs, ys))`: all of them over a dataset, compiled and batched, per sample,
  with a printed table.
"""

from ._accuracy import (
    accuracy as accuracy,
    accuracy_first_spike as accuracy_first_spike,
    accuracy_max_membrane as accuracy_max_membrane,
    accuracy_mean_membrane as accuracy_mean_membrane,
    accuracy_rate as accuracy_rate,
    firing_rates as firing_rates,
    predict_first_spike as predict_first_spike,
    predict_max_membrane as predict_max_membrane,
    predict_mean_membrane as predict_mean_membrane,
    predict_rate as predict_rate,
    predictor_for as predictor_for,
)
from ._report import Report as Report, report as report
from ._static import connection_sparsity as connection_sparsity, footprint as footprint
from ._workload import (
    NEUROBENCH_NEURON_OPS as NEUROBENCH_NEURON_OPS,
    activation_sparsity as activation_sparsity,
    membrane_updates as membrane_updates,
    neuron_operations as neuron_operations,
    synaptic_operations as synaptic_operations,
)
