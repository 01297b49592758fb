"""NeuroBench workload metrics from the records of `snnx.run`: activation sparsity, synaptic
operations, membrane updates and neuron operations.

Each function takes the model, its inputs and the records of
`snnx.run(model, xs, record=True)` (one sample, or batched with `jax.vmap` and
`batched=True`) and returns NeuroBench's number: a mean per sample. `snnx.metrics.report`
computes them all over a dataset in compiled batches.
"""

import warnings

import equinox as eqx
import jax
import numpy as np

from ..neurons.cuba import CuBaLIF
from ..neurons.lif import LIF
from ._layers import check_records, layers_of, neuron_of, sample_counts

# NeuroBench 2.x `neuron_ops_reset_operations`: operations per membrane update of snnTorch's
# `Leaky` (= `snnx.LIF`) and `Synaptic` (= `snnx.CuBaLIF`), by reset; NeuroBench's "zero"
# reset is snnx's `"to_value"`.
NEUROBENCH_NEURON_OPS: dict[type, dict[str, int]] = {
    LIF: {"subtract": 4, "to_value": 4},
    CuBaLIF: {"subtract": 6, "to_value": 8},
}


@eqx.filter_jit
def _counts(model, xs, records, batched):
    if batched:
        return jax.vmap(lambda x, r: sample_counts(model, x, r))(xs, records)
    return jax.tree.map(lambda a: a[None], sample_counts(model, xs, records))


def per_sample_totals(model, xs, records, batched: bool) -> dict[int, dict[str, np.ndarray]]:
    """`sample_counts` summed over time: `{layer: {name: int64 (n_samples,)}}`."""
    if not isinstance(batched, bool):
        raise TypeError(f"`batched` must be True or False, got {batched!r}.")
    check_records(layers_of(model), records)
    counts = jax.device_get(_counts(model, xs, records, batched))
    return {i: {k: np.asarray(v, np.int64).sum(axis=1) for k, v in c.items()}
            for i, c in counts.items()}


def _sum(totals, name) -> np.ndarray:
    parts = [c[name] for c in totals.values() if name in c]
    return np.sum(parts, axis=0) if parts else np.zeros(1, np.int64)


def sparsity_from(totals) -> np.ndarray:
    """Per-sample activation sparsity from `per_sample_totals`."""
    total = _sum(totals, "activations")
    if not np.any(total):
        raise ValueError("`model` has no spiking layer (neuron) to measure.")
    return 1.0 - _sum(totals, "nonzero") / total


def activation_sparsity(model, records, *, xs=None, batched: bool | None = None) -> float:
    """NeuroBench activation sparsity: the fraction of zero outputs of the neurons.

    Counts the outputs of every neuron layer (each `snnx.AbstractNeuron`, and the neuron
    of an `snnx.Recurrent`) over all time steps and samples: `1 - nonzero / total`.
    A readout neuron whose output is a membrane (`snnx.LI`) counts too; leave it out by
    slicing (`model[:-1]`, `records[:-1]`).

    **Arguments:**

    - `model`: the `snnx.Sequential` that produced `records`.
    - `records`: the records of `snnx.run(model, xs, record=True)` (batched or not).
    - `xs`, `batched`: not needed (kept for symmetry with the other counts).

    **Returns:**

    A Python float in `[0, 1]`.

    **Raises:**

    `ValueError` if `records` do not fit `model` or it has no neuron layer.
    """
    layers = layers_of(model)
    check_records(layers, records)
    total = nonzero = 0
    for layer, rec in zip(layers, records):
        if neuron_of(layer) is not None:
            out = np.asarray(rec.output)
            total += out.size
            nonzero += int(np.count_nonzero(out))
    if total == 0:
        raise ValueError("`model` has no spiking layer (neuron) to measure.")
    return 1.0 - nonzero / total


def synaptic_operations(model, xs, records, *, batched: bool = False) -> dict:
    """NeuroBench synaptic operations of the connection layers of a model.

    Connections are `eqx.nn.Linear`, `eqx.nn.Conv` (1-3d), `snnx.SparseLinear` and the
    recurrent weights of `snnx.Recurrent` (whose input is the previous step's output). Per
    layer and step, the effective operations are the layer applied to its binarised input
    with binarised weights (nonzero -> 1) and no bias: the number of (nonzero weight,
    nonzero input) pairs. They are accumulates (ACs) if every input of that step is in
    {-1, 0, 1} (spikes) and multiply-accumulates (MACs) otherwise. `dense` counts every
    weight and input as nonzero (padding in a convolution still counts nothing).

    NeuroBench decides AC versus MAC per batch and step (all samples of a batch at once);
    here it is decided per sample and step, the same whenever a batch's samples agree.

    **Arguments:**

    - `model`: an `snnx.Sequential`.
    - `xs`: the inputs given to `snnx.run`, `(T, *input_shape)` or batched `(B, T, ...)`.
    - `records`: the records from `snnx.run(model, xs, record=True)` (batched like `xs`).
    - `batched`: True if `xs` and `records` have a leading batch axis (from `jax.vmap`).

    **Returns:**

    `{"effective_acs": int, "effective_macs": int, "dense": int}` summed over time (and
    batch), and `"per_sample"` dividing the three by the batch size (NeuroBench's
    `Effective_ACs`, `Effective_MACs`, `Dense`).

    **Raises:**

    `TypeError`/`ValueError` if `model` is not a flat `snnx.Sequential` or `records` do
    not fit it.
    """
    totals = per_sample_totals(model, xs, records, batched)
    out = {"effective_acs": int(_sum(totals, "ac").sum()),
           "effective_macs": int(_sum(totals, "mac").sum()),
           "dense": int(_sum(totals, "dense_synops").sum())}
    batch = int(np.shape(xs)[0]) if batched else 1
    out["per_sample"] = {k: v / batch for k, v in out.items()}
    return out


def membrane_updates(model, xs, records, *, batched: bool = False) -> float:
    """NeuroBench membrane updates: how often a neuron's membrane changes, per sample.

    For every neuron layer, the first step counts every neuron and each later step the
    neurons whose membrane potential (the state's `v`; for a user's own neuron, any state
    variable) differs from the step before.

    **Arguments:**

    As for `synaptic_operations`.

    **Returns:**

    The mean number of membrane updates per sample, a Python float.
    """
    totals = per_sample_totals(model, xs, records, batched)
    return float(np.mean(_sum(totals, "membrane_updates")))


def neuron_costs(model, neuron_ops) -> tuple[dict[int, int], list[int]]:
    """Operations per membrane update for each neuron layer: `({layer: cost}, uncounted)`."""
    table: dict = {cls: dict(v) for cls, v in NEUROBENCH_NEURON_OPS.items()}
    if neuron_ops is not None:
        if not isinstance(neuron_ops, dict):
            raise TypeError(
                f"`neuron_ops` must be a dict {{neuron class: operations per update}} (an "
                f"int, or a dict by reset mode), got {type(neuron_ops).__name__}."
            )
        for cls, cost in neuron_ops.items():
            if not isinstance(cls, type):
                raise TypeError(f"`neuron_ops` keys must be neuron classes, got {cls!r}.")
            table[cls] = cost
    costs, uncounted = {}, []
    for i, layer in enumerate(layers_of(model)):
        neuron = neuron_of(layer)
        if neuron is None:
            continue
        cost = table.get(type(neuron))
        if isinstance(cost, dict):
            cost = cost.get(neuron.reset_mode)
        if cost is None:
            uncounted.append(i)
        elif not (isinstance(cost, (int, np.integer)) and cost >= 0):
            raise ValueError(
                f"`neuron_ops` for {type(neuron).__name__} must be a non-negative int, got "
                f"{cost!r}."
            )
        else:
            costs[i] = int(cost)
    return costs, uncounted


def warn_uncounted(model, uncounted, stacklevel: int) -> None:
    if uncounted:
        names = ", ".join(f"{i} ({type(neuron_of(model.layers[i])).__name__})"
                          for i in uncounted)
        warnings.warn(
            f"neuron operations leave out layers {names}: NeuroBench gives costs for "
            f"`LIF` (snnTorch `Leaky`) and `CuBaLIF` (`Synaptic`) with a subtract or "
            f"to-value reset only; pass `neuron_ops={{NeuronClass: operations per update}}`.",
            stacklevel=stacklevel + 1,
        )


def neuron_ops_from(totals, costs) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample effective and dense neuron operations from `per_sample_totals`."""
    eff = np.zeros_like(_sum(totals, "activations"))
    dense = np.zeros_like(eff)
    for i, cost in costs.items():
        eff = eff + cost * totals[i]["membrane_updates"]
        dense = dense + cost * totals[i]["activations"]
    return eff, dense


def neuron_operations(model, xs, records, *, batched: bool = False,
                      neuron_ops: dict | None = None) -> dict:
    """NeuroBench neuron operations: membrane updates weighted by each neuron's cost.

    A neuron layer costs `neuron_ops[type(neuron)]` operations per membrane update
    (`membrane_updates`); NeuroBench's table (`NEUROBENCH_NEURON_OPS`) gives `LIF` 4 and
    `CuBaLIF` 6 (subtract reset) or 8 (to-value reset). `dense` counts an update of every
    neuron at every step. Layers with no known cost are left out, with a warning.

    **Arguments:**

    - `model`, `xs`, `records`, `batched`: as for `synaptic_operations`.
    - `neuron_ops`: extra or replacement costs, `{neuron class: int or {reset_mode: int}}`.

    **Returns:**

    `{"effective": float, "dense": float}` per sample (NeuroBench's
    `Effective Neuron Ops`, `Neuron Dense Ops`), and `"uncounted"`: the layer indices left
    out.
    """
    costs, uncounted = neuron_costs(model, neuron_ops)
    warn_uncounted(model, uncounted, stacklevel=2)
    eff, dense = neuron_ops_from(per_sample_totals(model, xs, records, batched), costs)
    return {"effective": float(np.mean(eff)), "dense": float(np.mean(dense)),
            "uncounted": uncounted}
