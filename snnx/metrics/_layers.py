"""Which layers of a model NeuroBench counts, and how: connections and neurons.

NeuroBench (`neurobench` 2.x) hooks two kinds of module: *connection layers* (`Linear`,
`Conv1d/2d/3d`, recurrent weights) whose inputs give the synaptic operations and whose
weights give the connection sparsity, and *activation layers* (spiking neurons) whose
outputs give the activation sparsity and whose membranes give the membrane updates. Here
the same two kinds are read off an `snnx.Sequential`:

- connections: `eqx.nn.Linear`, `eqx.nn.Conv` (1-3d), `snnx.SparseLinear`, and the
  recurrent weight matrix of an `snnx.Recurrent`;
- neurons: every `snnx.AbstractNeuron` (a user's own too) and the neuron inside an
  `snnx.Recurrent`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..layers.graph import Graph
from ..layers.recurrent import Recurrent
from ..layers.sequential import Sequential
from ..layers.sparse import SparseLinear
from ..neurons._abstract import AbstractNeuron
from ..neurons.adex import AdExState
from ..neurons.alif import ALIFState
from ..neurons.cuba import CuBaState
from ..neurons.if_ import IFState
from ..neurons.integrator import IntegratorState
from ..neurons.izhikevich import IzhikevichState
from ..neurons.li import LIState
from ..neurons.lif import LIFState

# Feed-forward connection layers: linear maps of one step's input, weight in `.weight`.
CONNECTIONS = (eqx.nn.Linear, eqx.nn.Conv, SparseLinear)

# snnx's neuron states whose membrane potential is the field `v` (NeuroBench counts the
# updates of the membrane only, snnTorch's `mem`).
_MEMBRANE_V = (LIFState, CuBaState, ALIFState, IFState, IntegratorState, IzhikevichState,
               LIState, AdExState)


def layers_of(model, where: str = "model") -> tuple:
    """The layers of an `snnx.Sequential` (no nesting), checked."""
    if not isinstance(model, Sequential):
        raise TypeError(
            f"`{where}` must be an `snnx.Sequential` (NeuroBench counts are read layer by "
            f"layer from its records), got {type(model).__name__}; wrap a lone layer as "
            f"`snnx.Sequential([layer])`."
        )
    for i, layer in enumerate(model.layers):
        if isinstance(layer, (Sequential, Graph)):
            raise TypeError(
                f"`{where}` layer {i} is a nested {type(layer).__name__}; the metrics read "
                f"one record per layer, so flatten it into the outer `snnx.Sequential`."
            )
    return model.layers


def check_records(layers, records) -> None:
    if not isinstance(records, (tuple, list)) or len(records) != len(layers):
        n = len(records) if isinstance(records, (tuple, list)) else type(records).__name__
        raise ValueError(
            f"`records` has {n} entries but `model` has {len(layers)} layers; pass the records "
            f"from `snnx.run(model, xs, record=True)`."
        )


def neuron_of(layer):
    """The neuron a layer is (or wraps, for `Recurrent`), or None."""
    if isinstance(layer, AbstractNeuron):
        return layer
    if isinstance(layer, Recurrent):
        return layer.neuron
    return None


def connection_weight(layer):
    """The weight matrix that a connection layer applies (the effective one: the
    diagonal of a `Recurrent(zero_diagonal=True)` is zero), or None."""
    if isinstance(layer, CONNECTIONS):
        return layer.weight
    if isinstance(layer, Recurrent):
        if layer.zero_diagonal:
            return layer.weight * (1.0 - jnp.eye(layer.size, dtype=layer.weight.dtype))
        return layer.weight
    return None


def _binary(x, dtype):
    return (x != 0).astype(dtype)


def _binary_copy(layer, all_ones: bool):
    """NeuroBench's `make_binary_copy`: nonzero weights -> 1 (all -> 1 with `all_ones`),
    bias -> 0 (a bias is not a synaptic operation)."""
    w = layer.weight
    new_w = jnp.ones_like(w) if all_ones else _binary(w, w.dtype)
    layer = eqx.tree_at(lambda lay: lay.weight, layer, new_w)
    if layer.bias is not None:
        layer = eqx.tree_at(lambda lay: lay.bias, layer, jnp.zeros_like(layer.bias))
    return layer


def _ops_per_step(apply, xs):
    """Sum over the outputs of `apply(x_t)` for every step, as int32 `(T,)`; each output
    element is an exact small integer (a count of nonzero weight x input pairs)."""
    out = jax.vmap(apply)(xs)
    flat = jnp.round(out).astype(jnp.int32).reshape(out.shape[0], math.prod(out.shape[1:]))
    return jnp.sum(flat, axis=1)


def _spiking(xs):
    """Per step: are all inputs in {-1, 0, 1} (then the operations are ACs)."""
    ok = (xs == 0) | (xs == 1) | (xs == -1)
    return jnp.all(ok.reshape(xs.shape[0], math.prod(xs.shape[1:])), axis=1)


def _synops(apply_bin, apply_ones, xs):
    """Effective and dense operations of one connection over all steps `(T,)`."""
    dtype = xs.dtype if jnp.issubdtype(xs.dtype, jnp.floating) else jnp.float32
    xb = _binary(xs, dtype)
    effective = _ops_per_step(apply_bin, xb)
    dense = _ops_per_step(apply_ones, jnp.ones_like(xb))
    spiking = _spiking(xs)
    return jnp.where(spiking, effective, 0), jnp.where(spiking, 0, effective), dense


def _membrane_changes(state_trace, out_shape):
    """Per step, how many neurons' membranes changed; the first step counts all of them
    (as NeuroBench does: its first membrane has no predecessor)."""
    if isinstance(state_trace, _MEMBRANE_V):
        leaves = [state_trace.v]
    else:  # a user's own state: a neuron is updated if any of its variables changed
        leaves = [leaf for leaf in jax.tree.leaves(state_trace)
                  if leaf.shape[1:] == tuple(out_shape)]
    T = leaves[0].shape[0] if leaves else 0
    changed = jnp.zeros((max(T - 1, 0), *out_shape), bool)
    for leaf in leaves:
        changed = changed | (leaf[1:] != leaf[:-1])
    n = math.prod(int(d) for d in out_shape)
    per_step = jnp.sum(changed.reshape(changed.shape[0], n), axis=1).astype(jnp.int32)
    return jnp.concatenate([jnp.full((1,), n, jnp.int32), per_step])


def sample_counts(model, xs, records):
    """NeuroBench counts for one sample, per layer and step (all int32 `(T,)`).

    **Returns:**

    `{layer index: {"ac", "mac", "dense_synops"}}` for connections and
    `{layer index: {"nonzero", "activations", "membrane_updates"}}` for neurons (a
    `Recurrent` has both sets).
    """
    layers = layers_of(model)
    check_records(layers, records)
    counts = {}
    inp = jnp.asarray(xs)
    T = inp.shape[0]
    for i, (layer, rec) in enumerate(zip(layers, records)):
        c = {}
        if isinstance(layer, CONNECTIONS):
            b, o = _binary_copy(layer, False), _binary_copy(layer, True)
            c["ac"], c["mac"], c["dense_synops"] = _synops(b, o, inp)
        if isinstance(layer, Recurrent):
            w = connection_weight(layer)
            wb, wo = _binary(w, w.dtype), jnp.ones_like(w)
            prev = jnp.concatenate([jnp.zeros_like(rec.output[:1]), rec.output[:-1]])
            c["ac"], c["mac"], c["dense_synops"] = _synops(lambda y: wb @ y, lambda y: wo @ y,
                                                           prev.astype(w.dtype))
        if neuron_of(layer) is not None:
            out = rec.output
            nz = (out != 0).reshape(T, math.prod(out.shape[1:]))
            c["nonzero"] = jnp.sum(nz, axis=1).astype(jnp.int32)
            c["activations"] = jnp.full((T,), out[0].size, jnp.int32)
            state = rec.state.neuron if isinstance(layer, Recurrent) else rec.state
            c["membrane_updates"] = _membrane_changes(state, out.shape[1:])
        if c:
            counts[i] = c
        inp = rec.output
    return counts
