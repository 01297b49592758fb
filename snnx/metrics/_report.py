"""`snnx.metrics.report`: every NeuroBench metric of a model over a dataset, in one call."""

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_run_kwargs
from ..engine import run
from ..events import SpikeEvents
from ._accuracy import predict_rate
from ._layers import layers_of, sample_counts
from ._static import connection_sparsity, footprint
from ._workload import neuron_costs, neuron_ops_from, sparsity_from, warn_uncounted

# (key, NeuroBench's name, how the table prints it)
_ROWS = (
    ("footprint", "Footprint", "{:,.0f} B"),
    ("connection_sparsity", "ConnectionSparsity", "{:.4f}"),
    ("activation_sparsity", "ActivationSparsity", "{:.4f}"),
    ("effective_macs", "SynapticOperations.Effective_MACs", "{:,.1f}"),
    ("effective_acs", "SynapticOperations.Effective_ACs", "{:,.1f}"),
    ("dense_synops", "SynapticOperations.Dense", "{:,.1f}"),
    ("membrane_updates", "MembraneUpdates", "{:,.1f}"),
    ("neuron_ops", "NeuronOperations.Effective Neuron Ops", "{:,.1f}"),
    ("neuron_dense_ops", "NeuronOperations.Neuron Dense Ops", "{:,.1f}"),
    ("accuracy", "ClassificationAccuracy", "{:.4f}"),
)


@dataclasses.dataclass(frozen=True)
class Report:
    """The result of `snnx.metrics.report`.

    - `metrics`: `{name: value}`; workload metrics are means per sample (NeuroBench's
        normalisation), static ones describe the model.
    - `per_sample`: `{name: array (n,)}` for every workload metric, one value per sample.
    - `n`: the number of samples.
    - `uncounted_neurons`: layer indices left out of the neuron operations (no known cost).
    """

    metrics: dict[str, float]
    per_sample: dict[str, np.ndarray]
    n: int
    uncounted_neurons: tuple[int, ...]

    def table(self) -> str:
        """The metrics as a two-column text table."""
        lines = [f"NeuroBench metrics over {self.n} samples (workload: mean per sample)"]
        width = max(len(k) for k, _, _ in _ROWS)
        for key, _, fmt in _ROWS:
            if key in self.metrics:
                lines.append(f"  {key:<{width}}  {fmt.format(self.metrics[key])}")
        if self.uncounted_neurons:
            lines.append(f"  (neuron ops leave out layers {list(self.uncounted_neurons)})")
        return "\n".join(lines)

    def neurobench(self) -> dict[str, Any]:
        """The metrics under NeuroBench's names, nested as `Benchmark.run` returns them."""
        out: dict[str, Any] = {}
        for key, name, _ in _ROWS:
            if key not in self.metrics:
                continue
            head, _, sub = name.partition(".")
            if sub:
                out.setdefault(head, {})[sub] = self.metrics[key]
            else:
                out[head] = self.metrics[key]
        return out


@eqx.filter_jit
def _batch(model, xs, ys, idx, predict, run_kwargs):
    """One compiled batch: run with records, count, predict (compiled once per model
    structure, `predict` and `run_kwargs`, which are static)."""
    from ..train._data import gather

    xb = gather(xs, idx)
    if isinstance(xb, SpikeEvents):
        xb = xb.to_dense()
    kwargs = dict(run_kwargs)
    outs, _, recs = jax.vmap(lambda x: run(model, x, record=True, **kwargs))(xb)
    counts = jax.vmap(lambda x, r: sample_counts(model, x, r))(xb, recs)
    correct = None if predict is None else predict(outs) == ys[idx]
    return counts, correct


def report(
    model,
    data,
    *,
    batch_size: int = 256,
    predict: Callable | None = predict_rate,
    neuron_ops: dict | None = None,
    input_shape_state: bool = False,
    run_kwargs: dict | None = None,
    show: bool = True,
) -> Report:
    """Every NeuroBench metric of `model` on a dataset: one compiled run per batch.

    Static: `footprint` (bytes of parameters and buffers; with `input_shape_state` plus
    one sample's state) and `connection_sparsity`. Workload, per sample:
    `activation_sparsity`, synaptic operations (`effective_macs`, `effective_acs`,
    `dense_synops`), `membrane_updates`, neuron operations (`neuron_ops`,
    `neuron_dense_ops`) and, with `predict`, the classification `accuracy`. The definitions
    are those of `neurobench` 2.x (see `synaptic_operations`, `membrane_updates`,
    `neuron_operations`), so an equivalent snnTorch network run through
    `neurobench.benchmarks.Benchmark` gives the same numbers (`bench/neurobench_compare.py`).

    ```python
    rep = snnx.metrics.report(model, (xs, ys), batch_size=128)
    rep.metrics["effective_acs"], rep.per_sample["activation_sparsity"]
    ```

    **Arguments:**

    - `model`: a flat `snnx.Sequential`.
    - `data`: `(xs, ys)` as for `snnx.fit`: inputs `(N, T, *input_shape)` (an array,
        `snnx.data.PackedSpikes` or `snnx.SpikeEvents`) and integer labels `(N,)`.
    - `batch_size`: samples per compiled batch. Default 256. The last batch is padded and
        the padding dropped, so every sample counts once.
    - `predict`: `outputs (B, T, classes) -> classes (B,)` for the accuracy (default
        `predict_rate`, NeuroBench's `choose_max_count`); None to skip it.
    - `neuron_ops`: extra costs per membrane update, as for `neuron_operations`.
    - `input_shape_state`: also count one sample's state in the footprint. Default False
        (a fresh snnTorch network's state buffers are empty, so NeuroBench counts none).
    - `run_kwargs`: extra keyword arguments for `snnx.run` (e.g. `{"mode": "step"}`).
    - `show`: print the table. Default True.

    **Returns:**

    A `Report` (`.metrics`, `.per_sample`, `.table()`, `.neurobench()`).

    **Raises:**

    `TypeError`/`ValueError` for a model that is not a flat `snnx.Sequential`, malformed
    data, a bad `batch_size` or `neuron_ops`.
    """
    from ..train._data import check_batch_size, check_data

    layers_of(model)
    run_kwargs = check_run_kwargs(run_kwargs)
    xs, ys, n, _, step_shape = check_data(data, "data")
    batch_size = check_batch_size(batch_size, n, "pad")
    if predict is not None and not callable(predict):
        raise TypeError(f"`predict` must be a function `outputs -> classes` or None, got "
                        f"{predict!r}.")
    if predict is not None and not jnp.issubdtype(ys.dtype, jnp.integer):
        raise TypeError(f"`data` labels must be integer classes for the accuracy, got "
                        f"{ys.dtype}; pass `predict=None` to skip it.")
    costs, uncounted = neuron_costs(model, neuron_ops)
    warn_uncounted(model, uncounted, stacklevel=2)
    static_kwargs = tuple(sorted(run_kwargs.items()))
    nb = -(-n // batch_size)
    idx = (np.arange(nb * batch_size) % n).reshape(nb, batch_size)
    parts, correct = [], []
    for b in range(nb):
        counts, ok = jax.device_get(
            _batch(model, xs, ys, jnp.asarray(idx[b]), predict, static_kwargs))
        parts.append({i: {k: np.asarray(v, np.int64).sum(axis=1) for k, v in c.items()}
                      for i, c in counts.items()})
        if ok is not None:
            correct.append(np.asarray(ok))
    totals = {i: {k: np.concatenate([p[i][k] for p in parts])[:n] for k in parts[0][i]}
              for i in parts[0]}

    def layer_sum(name):
        per = [c[name] for c in totals.values() if name in c]
        return np.sum(per, axis=0) if per else np.zeros(n, np.int64)

    eff, dense = neuron_ops_from(totals, costs)
    per_sample = {
        "activation_sparsity": sparsity_from(totals),
        "effective_macs": layer_sum("mac"),
        "effective_acs": layer_sum("ac"),
        "dense_synops": layer_sum("dense_synops"),
        "membrane_updates": layer_sum("membrane_updates"),
        "neuron_ops": eff,
        "neuron_dense_ops": dense,
    }
    metrics = {
        "footprint": float(footprint(model, step_shape if input_shape_state else None)),
        "connection_sparsity": connection_sparsity(model),
    }
    activations = layer_sum("activations")
    metrics["activation_sparsity"] = float(1.0 - layer_sum("nonzero").sum() / activations.sum())
    for key in ("effective_macs", "effective_acs", "dense_synops", "membrane_updates",
                "neuron_ops", "neuron_dense_ops"):
        metrics[key] = float(per_sample[key].mean())
    if correct:
        ok = np.concatenate(correct)[:n]
        per_sample["accuracy"] = ok.astype(np.float64)
        metrics["accuracy"] = float(ok.mean())
    rep = Report(metrics, per_sample, n, tuple(uncounted))
    if show:
        print(rep.table())
    return rep
