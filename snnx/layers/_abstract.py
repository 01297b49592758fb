"""The layer contract: what a layer declares, and what `snnx.run` plans from.

A layer is one of

- **stateless**: any callable of one step's input. An `equinox.Module` is called as
  `layer(x, key=key)` (every `equinox.nn` layer takes `key`; so must yours); any other
  callable (a plain function such as `jnp.ravel`) as `layer(x)`.
- **stateful**: a subclass of `AbstractStatefulLayer`, declaring `init_state` and a one-step
  `__call__(x, state, *, key=None) -> (y, state)`. Every neuron is one.

Any layer may also declare its **all-steps form** by subclassing `AbstractAllSteps`: how it
runs over a whole sequence `(T, ...)` at once (one matmul for all steps, a pooling of all
frames, a ring buffer read as a shift, a fused neuron kernel). `snnx.run` asks each layer for
that declaration and otherwise scans its one-step call (stateful) or maps it over time
(stateless), so adding a layer kind never edits the engine. `equinox.nn` layers, which cannot
subclass snnx's classes, get their all-steps forms from one table in `snnx.engine`.
`AbstractEventReader` marks an all-steps form that also reads `snnx.SpikeEvents`.

Capabilities are declared by these classes and checked with `isinstance`, never found by
probing attributes (Equinox's "abstract or final" pattern).
"""

import abc
from typing import TYPE_CHECKING, Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

if TYPE_CHECKING:
    from ..engine._planner import RunContext


class LayerRecord(NamedTuple):
    """What `snnx.run(..., record=True)` keeps for one layer: outputs and states over time.

    `output` has a leading time axis. `state` is the layer's state after every step (leading
    time axis on every leaf), or `None` for a stateless layer.
    """

    output: Array
    state: PyTree[Array] | None


class AbstractStatefulLayer(eqx.Module):
    """A layer that carries state from one time step to the next.

    Subclasses implement `init_state` and `__call__`; `snnx.run` threads the state through a
    `lax.scan`, and `snnx.Sequential` / `snnx.Graph` thread it through their layers.
    """

    @abc.abstractmethod
    def init_state(self, shape: tuple[int, ...], dtype: Any = jnp.float32) -> PyTree[Array]:
        """The resting state for one sample whose per-step input has `shape`.

        Containers pass `dtype` only when it is not float32, so a layer that only ever
        runs in float32 may leave the argument out.
        """

    @abc.abstractmethod
    def __call__(
        self, x: Array, state: PyTree[Array], *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, PyTree[Array]]:
        """Advance one time step; return `(output, new_state)`."""


class AbstractAllSteps(eqx.Module):
    """A layer (stateless or stateful) that declares how it runs over all time steps at once.

    `snnx.run` calls `all_steps` in layer-major execution instead of scanning the layer's
    one-step call (or mapping it over time). Both must give the same numbers.
    """

    @abc.abstractmethod
    def all_steps(
        self,
        xs: Array,
        state: PyTree[Array] | None,
        *,
        keys: PRNGKeyArray | None,
        context: "RunContext",
    ) -> tuple[Array, PyTree[Array] | None, PyTree[Array] | None]:
        """Run the layer over a whole sequence.

        **Arguments:**

        - `xs`: inputs with time first, `(T, *input_shape)` (an `snnx.SpikeEvents` for an
            `AbstractEventReader`).
        - `state`: the initial state (`None` for a stateless layer).
        - `keys`: `None` or one PRNG key per step, shape `(T,)`.
        - `context`: the run's options (`unroll`, `record`) and the planner itself:
            `context.run_layer(layer, xs, state, keys)` runs a sub-layer the way `snnx.run`
            would, `context.scan(layer, xs, state, keys)` scans its one-step call.

        **Returns:**

        `(outputs, final_state, trace)`: outputs `(T, *output_shape)`, the state after the
        last step (`None` if stateless), and with `context.record` the state after every
        step (leading time axis; `None` if stateless or not recording).
        """

    def has_all_steps(self) -> bool:
        """Whether this instance can run all steps at once (as `equinox.nn.StatefulLayer`'s
        `is_stateful`: a graph with feedback edges cannot). Default True."""
        return True


class AbstractEventReader(AbstractAllSteps):
    """An all-steps form that also reads `snnx.SpikeEvents` (an event table) as `xs`.

    Any other layer that an event table reaches gets the dense spikes (`to_dense()`).
    """
