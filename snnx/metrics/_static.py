"""NeuroBench static metrics: footprint and connection sparsity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import shape_tuple
from ..layers._util import init_layer_state, is_stateful
from ._layers import connection_weight


def footprint(model, input_shape=None, *, dtype=jnp.float32) -> int:
    """NeuroBench footprint: the bytes of a model's parameters and buffers.

    Every array in the model counts (weights, biases, neuron constants such as time
    constants and thresholds, which snnTorch keeps as buffers). With `input_shape`, the
    state of one sample (`model.init_state(input_shape, dtype)`: membranes, synaptic
    currents, delay queues) is added, as snnTorch's `mem` buffers are after a run of batch 1.

    **Arguments:**

    - `model`: any PyTree of arrays (an `snnx.Sequential`, a layer, a neuron).
    - `input_shape`: optional shape of one step's input, to count the state too.
    - `dtype`: the state's dtype. Default float32.

    **Returns:**

    The number of bytes, an int.

    **Raises:**

    `TypeError` if `input_shape` is given for a model without state.
    """
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    nbytes = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in leaves)
    if input_shape is not None:
        if not is_stateful(model):
            raise TypeError(
                f"`input_shape` counts a model's state, but {type(model).__name__} has none "
                f"(it is not an `snnx.layers.AbstractStatefulLayer`); leave it out."
            )
        state = jax.eval_shape(lambda: init_layer_state(model, shape_tuple(input_shape), dtype))
        nbytes += sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(state))
    return nbytes


def _connection_layers(model):
    """Every connection layer in a model, wherever it sits (`Sequential`, `Graph`,
    `Recurrent`...): NeuroBench walks all submodules too."""
    found = []
    is_conn = lambda x: connection_weight(x) is not None
    for leaf in jax.tree.leaves(model, is_leaf=is_conn):
        if is_conn(leaf):
            found.append(leaf)
    return found


def connection_sparsity(model) -> float:
    """NeuroBench connection sparsity: zero weights over all weights of the connections.

    Connections are `eqx.nn.Linear`, `eqx.nn.Conv` (1-3d), `snnx.SparseLinear` and the
    recurrent matrix of `snnx.Recurrent` (whose removed diagonal counts as zeros), anywhere
    in the model. Biases and neuron parameters are not weights. NeuroBench rounds the
    result to 4 decimals; this does not.

    **Arguments:**

    - `model`: any model (an `snnx.Sequential`, `snnx.Graph`, a layer).

    **Returns:**

    A Python float in `[0, 1]`.

    **Raises:**

    `ValueError` if the model has no connection layer.
    """
    zeros = total = 0
    for layer in _connection_layers(model):
        w = np.asarray(connection_weight(layer))
        zeros += int(w.size - np.count_nonzero(w))
        total += int(w.size)
    if total == 0:
        raise ValueError(
            "`model` has no connection layer (`eqx.nn.Linear`, `eqx.nn.Conv`, "
            "`snnx.SparseLinear`, `snnx.Recurrent`) whose weights could be sparse."
        )
    return zeros / total
