"""Recurrent connections around any neuron."""

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import is_int, shape_tuple
from ._abstract import AbstractStatefulLayer
from ._util import init_layer_state, is_stateful


class RecurrentState(NamedTuple):
    """State of a `Recurrent` layer: the wrapped neuron's state and its last output."""

    neuron: PyTree[Array]
    output: Array


class Recurrent(AbstractStatefulLayer):
    r"""Adds a learnable recurrent weight matrix to any neuron (RLIF, RCuBaLIF, RALIF...).

    $$ y_t, s_t = \text{neuron}(x_t + W y_{t-1} + b,\ s_{t-1}) $$

    where $y$ is the neuron's output (spikes). The recurrent input arrives one step late,
    as in every discrete-time SNN library.

    **Arguments:**

    - `neuron`: any neuron (an `snnx.AbstractNeuron`, or a user's own).
    - `size`: number of neurons $n$; the layer acts on vectors of shape `(n,)`.
    - `key`: PRNG key for the weight initialisation.
    - `init_scale`: weights are drawn from $U(-c/\sqrt{n}, c/\sqrt{n})$ with this $c$.
        Default 1.
    - `zero_diagonal`: if True, remove self-connections (the diagonal stays zero in
        training too). Default False.
    - `use_bias`: if True, add a learnable bias $b$ to the recurrent input (snnTorch's
        `RLeaky` has one; it starts at zero here). Default False.
    """

    neuron: AbstractStatefulLayer
    weight: Float[Array, "n n"]
    bias: Float[Array, " n"] | None
    size: int = eqx.field(static=True)
    zero_diagonal: bool = eqx.field(static=True)

    def __init__(
        self,
        neuron,
        size: int,
        *,
        key: PRNGKeyArray,
        init_scale: float = 1.0,
        zero_diagonal: bool = False,
        use_bias: bool = False,
    ):
        if not is_stateful(neuron):
            raise TypeError(
                f"`neuron` must be a neuron with `init_state` (e.g. `snnx.LIF(...)`, any "
                f"`snnx.layers.AbstractStatefulLayer`), got {type(neuron).__name__}."
            )
        if not (is_int(size) and size > 0):
            raise ValueError(f"`size` must be a positive int, got {size!r}.")
        if key is None:
            raise ValueError("`key` is required to initialise the recurrent weights.")
        lim = init_scale / math.sqrt(size)
        self.neuron = neuron
        self.weight = jax.random.uniform(key, (size, size), minval=-lim, maxval=lim)
        self.bias = jnp.zeros((size,), self.weight.dtype) if use_bias else None
        self.size = size
        self.zero_diagonal = bool(zero_diagonal)

    def _weight(self):
        if self.zero_diagonal:
            return self.weight * (1.0 - jnp.eye(self.size, dtype=self.weight.dtype))
        return self.weight

    def init_state(self, shape, dtype=jnp.float32) -> RecurrentState:
        shape = shape_tuple(shape)
        if shape != (self.size,):
            raise ValueError(
                f"Recurrent layer of `size={self.size}` needs inputs of shape ({self.size},), got "
                f"{shape}; set `size` to match the layer before it."
            )
        neuron_state = init_layer_state(self.neuron, shape, dtype)
        out = jax.eval_shape(lambda s: self.neuron(jnp.zeros(shape, dtype), s)[0], neuron_state)
        return RecurrentState(neuron_state, jnp.zeros(out.shape, out.dtype))

    def __call__(self, x, state: RecurrentState, *, key=None):
        inp = x + self._weight() @ state.output
        if self.bias is not None:
            inp = inp + self.bias
        y, neuron_state = self.neuron(inp, state.neuron, key=key)
        return y, RecurrentState(neuron_state, y)
