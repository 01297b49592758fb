"""Stateful composition of stateless layers and neurons."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._checks import shape_tuple
from ..events import SpikeEvents
from ._abstract import AbstractEventReader, AbstractStatefulLayer, LayerRecord
from ._shapes import propagate
from ._util import call_stateless, check_layer, is_stateful, layer_name

__all__ = ["Sequential", "LayerRecord"]


def _split(key, n):
    return [None] * n if key is None else list(jax.random.split(key, n))


class Sequential(AbstractStatefulLayer, AbstractEventReader):
    """A stack of layers applied in order, threading each stateful layer's state.

    Layers are stateless callables (`equinox.nn.Linear`, `Conv2d`, pooling, `Dropout`,
    `Lambda`, or plain functions such as `jnp.ravel`) and stateful layers (any neuron,
    `snnx.Recurrent`, a nested `Sequential`: any `snnx.layers.AbstractStatefulLayer`).

    `snnx.run` runs it layer-major: every layer over all time steps before the next layer
    (one matmul per `Linear` for the whole sequence; each neuron scanned on its own).

    ```python
    model = snnx.Sequential([
        eqx.nn.Linear(700, 128, key=k1), snnx.LIF(tau=10.0),
        eqx.nn.Linear(128, 20, key=k2), snnx.LI(tau=10.0),
    ])
    state = model.init_state((700,))
    out, state = model(x_t, state)            # one time step
    outs, state = snnx.run(model, xs)         # a whole sequence (faster: layer-major)
    ```

    **Arguments:**

    - `layers`: a sequence of layers.
    """

    layers: tuple[Any, ...]

    def __init__(self, layers: Sequence[Callable]):
        if isinstance(layers, Callable) and not isinstance(layers, (list, tuple)):
            raise TypeError(
                "`layers` must be a list of layers, e.g. `snnx.Sequential([linear, lif])`, "
                f"got a single {type(layers).__name__}."
            )
        layers = tuple(layers)
        for i, layer in enumerate(layers):
            check_layer(f"Sequential layer {i}", layer, "be callable (a layer, neuron or function)")
        self.layers = layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(self.layers[i])
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def init_state(self, shape, dtype=jnp.float32) -> tuple:
        """The resting state of every layer for one sample whose per-step input has `shape`.

        Shapes are propagated through the stack (`jax.eval_shape`, nothing is computed), so
        a layer that cannot take its input is reported with its index and both shapes.

        **Arguments:**

        - `shape`: the shape of one time step of one sample's input, e.g. `(700,)`.
        - `dtype`: the floating dtype of the states. Default float32.

        **Returns:**

        A tuple with one entry per layer: that layer's state, or `None` if stateless.
        """
        states, _ = self._init_and_output_shape(shape_tuple(shape), dtype)
        return states

    def output_shape(self, shape, dtype=jnp.float32) -> tuple[int, ...]:
        """The per-step output shape for a per-step input of `shape`."""
        return self._init_and_output_shape(shape_tuple(shape), dtype)[1].shape

    def _init_and_output_shape(self, shape, dtype):
        x = jax.ShapeDtypeStruct(tuple(shape), dtype)
        states = []
        for i, layer in enumerate(self.layers):
            _check_known_input(i, layer, x.shape)
            try:
                state, x = propagate(layer, x, dtype)
            except Exception as e:  # re-raised with the layer's position and the shapes
                raise ValueError(
                    f"Sequential layer {i} ({layer_name(layer)}) cannot take an input of shape "
                    f"{tuple(x.shape)}: {type(e).__name__}: {e}"
                ) from e
            if not isinstance(x, jax.ShapeDtypeStruct):
                raise TypeError(
                    f"Sequential layer {i} ({layer_name(layer)}) must return one array per "
                    f"step, got {jax.tree.structure(x)}."
                )
            states.append(state)
        return tuple(states), x

    def __call__(
        self, x: Array, state: tuple, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, tuple]:
        """Advance the whole stack by one time step (step-major).

        **Arguments:**

        - `x`: one time step of one sample's input.
        - `state`: as returned by `init_state` or a previous call.
        - `key`: optional PRNG key, split once per layer (for dropout, stochastic spikes).

        **Returns:**

        `(output, new_state)`.
        """
        y, new_state, _ = self._step(x, state, key, record=False)
        return y, new_state

    def all_steps(self, xs, state, *, keys, context):
        """Layer-major: each layer over all time steps, then the next (see `snnx.run`)."""
        ys, states, records = context.run_layers(self.layers, xs, state, keys)
        trace = tuple(r.state for r in records) if context.record else None
        return ys, states, trace

    def _step(self, x, state, key, record):
        if isinstance(x, SpikeEvents):
            raise TypeError(
                "`x` is an `snnx.SpikeEvents`, but a one-step call takes one step's dense "
                "input; give the event table to `snnx.run(model, events)`, or pass "
                "`events.to_dense()`."
            )
        if not isinstance(state, tuple) or len(state) != len(self.layers):
            raise ValueError(
                f"`state` must be the tuple of {len(self.layers)} layer states from "
                f"`init_state`, got {type(state).__name__}"
                f"{' of length ' + str(len(state)) if isinstance(state, tuple) else ''}."
            )
        new_states, records = [], []
        for layer, s, k in zip(self.layers, state, _split(key, len(self.layers))):
            if is_stateful(layer):
                if record and isinstance(layer, Sequential):
                    x, s, _ = layer._step(x, s, k, record=False)
                else:
                    x, s = layer(x, s, key=k)
            else:
                x = call_stateless(layer, x, k)
            new_states.append(s)
            if record:
                records.append((x, s))
        return x, tuple(new_states), (tuple(records) if record else None)


def _check_known_input(i, layer, shape):
    """Clear messages for the layers whose expected input we know."""
    if isinstance(layer, eqx.nn.Linear):
        expected = () if layer.in_features == "scalar" else (layer.in_features,)
        if tuple(shape) != expected:
            raise ValueError(
                f"Sequential layer {i} (Linear) expects input of shape {expected}, but receives "
                f"shape {tuple(shape)}; set `in_features={shape[-1] if shape else 'scalar'}` "
                f"or fix the layer before it (flatten with `jnp.ravel`)."
            )
    if isinstance(layer, (eqx.nn.Conv, eqx.nn.ConvTranspose)):
        expected_rank = layer.num_spatial_dims + 1
        if len(shape) != expected_rank or shape[0] != layer.in_channels:
            raise ValueError(
                f"Sequential layer {i} ({type(layer).__name__}) expects input of shape "
                f"(channels={layer.in_channels}, {layer.num_spatial_dims} spatial dims), but "
                f"receives shape {tuple(shape)}."
            )
