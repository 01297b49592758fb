"""Parameter storage for the built-in neurons: positive parameters as logs, trainability."""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from .._checks import broadcasts_to, check_choice, check_dt, float_array
from ..spikes import AbstractSurrogate, FastSigmoid
from ._abstract import AbstractNeuron
from ._dynamics import METHODS, RESET_MODES


class AbstractParametrisedNeuron(AbstractNeuron):
    """A neuron whose physical parameters are arrays, each optionally trainable.

    Subclasses declare `_parameters`, a mapping from a public parameter name (`"tau"`) to the
    field that stores it (`"log_tau"` for time constants, kept positive by storing their
    logarithm), and a static `trainable` field listing the public names that learn.
    Parameters not listed are wrapped in `jax.lax.stop_gradient` where they are used, and
    `snnx.trainable_spec(model)` leaves them out of optimisers.

    Constructor values are checked when they are concrete (a named `ValueError`); values
    traced under `jit`/`vmap` (a neuron built inside a compiled function) are checked with
    `eqx.error_if`, once at construction, never in the step.
    """

    _parameters: ClassVar[dict[str, str]]
    trainable: eqx.AbstractVar[frozenset[str]]

    def _set_parameters(self, **values: ArrayLike) -> None:
        """Validate and store constructor values for every entry of `_parameters`.

        Fields named `log_*` hold time constants (and other strictly positive quantities):
        their value must be > 0 and is stored as its logarithm.
        """
        cls = type(self).__name__
        arrays = {}
        for name, field in self._parameters.items():
            log = field.startswith("log_")
            arrays[name] = _param(cls, name, values[name], positive=log)
            setattr(self, field, jnp.log(arrays[name]) if log else arrays[name])
        _check_mutual_broadcast(cls, **arrays)

    def _set_options(self, **options: Any) -> None:
        """Validate and store the static options a neuron's constructor takes."""
        cls = type(self).__name__
        for name, value in options.items():
            if name == "dt":
                value = check_dt(cls, value)
            elif name == "reset_mode":
                value = check_choice(cls, name, value, RESET_MODES)
            elif name == "method":
                value = check_choice(cls, name, value, METHODS)
            elif name == "surrogate":
                value = _check_surrogate(cls, value)
            elif name == "detach_reset":
                value = bool(value)
            elif name == "trainable":
                value = _check_trainable(cls, value, self._parameters)
            setattr(self, name, value)

    def _get(self, name: str) -> Array:
        """The value of public parameter `name`, gradient-stopped unless trainable."""
        field = self._parameters[name]
        value = getattr(self, field)
        if field.startswith("log_"):
            value = jnp.exp(value)
        if name not in self.trainable:
            value = jax.lax.stop_gradient(value)
        return value

    def _check_layer_shape(self, shape: tuple[int, ...]) -> None:
        for name, field in self._parameters.items():
            p_shape = jnp.shape(getattr(self, field))
            if not broadcasts_to(p_shape, shape):
                raise ValueError(
                    f"{type(self).__name__} parameter `{name}` has shape {p_shape}, which does "
                    f"not broadcast to the layer shape {shape}; give a scalar or an array of "
                    f"shape {shape}."
                )




def log_parameter(field: str, doc: str = "") -> property:
    """A read-only property giving `exp` of a `log_*` field (e.g. `tau` from `log_tau`)."""
    return property(lambda self: jnp.exp(getattr(self, field)), doc=doc or None)


def _param(cls: str, name: str, value: ArrayLike, *, positive: bool = False) -> Array:
    """A constructor argument as a float array, checked now if concrete, or guarded with
    `eqx.error_if` if traced (so a traced `tau=-1` raises instead of giving NaN)."""
    arr = float_array(f"{cls} parameter", name, value, positive=positive)
    if isinstance(arr, jax.core.Tracer):
        bad = ~jnp.isfinite(arr)
        if positive:
            bad = bad | (arr <= 0)
        arr = eqx.error_if(arr, bad, f"{cls} parameter `{name}` must be finite"
                           + (" and > 0." if positive else "."))
    return arr


def _check_trainable(cls: str, trainable: Any, parameters: dict[str, str]) -> frozenset[str]:
    if isinstance(trainable, str):
        trainable = (trainable,)
    elif trainable is True:
        trainable = tuple(parameters)
    elif trainable is False or trainable is None:
        trainable = ()
    trainable = frozenset(trainable)
    unknown = trainable - set(parameters)
    if unknown:
        raise ValueError(
            f"{cls} `trainable` names unknown parameters {sorted(unknown)}; choose from "
            f"{sorted(parameters)} (or pass True for all)."
        )
    return trainable


def _check_surrogate(cls: str, surrogate: Any) -> AbstractSurrogate:
    if surrogate is None:
        return FastSigmoid()
    if not isinstance(surrogate, AbstractSurrogate):
        raise TypeError(
            f"{cls} `surrogate` must be an `snnx.spikes.AbstractSurrogate` (e.g. "
            f"`snnx.spikes.FastSigmoid()`), got {type(surrogate).__name__}; wrap a derivative "
            f"function with `snnx.spikes.Custom(fn)`."
        )
    return surrogate


def _check_mutual_broadcast(cls: str, **arrays: Array) -> None:
    shapes = {k: jnp.shape(v) for k, v in arrays.items()}
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError(
            f"{cls} parameters have shapes that do not broadcast together: {shapes}; use "
            f"scalars or arrays of the layer's shape."
        ) from None


def trainable_spec(model: PyTree) -> PyTree[bool]:
    """A filter spec marking which leaves of `model` an optimiser should update.

    Every inexact array is trainable except the neuron parameters a neuron does not list in
    its `trainable` field.

    ```python
    params, static = eqx.partition(model, snnx.trainable_spec(model))
    ```

    **Arguments:**

    - `model`: any PyTree containing snnx neurons and layers.

    **Returns:**

    A PyTree of bools with the structure of `model`.
    """

    def spec_of(node):
        if isinstance(node, AbstractParametrisedNeuron):
            spec = jax.tree.map(eqx.is_inexact_array, node)
            for name, field in node._parameters.items():
                if name not in node.trainable:
                    spec = eqx.tree_at(
                        lambda n, f=field: getattr(n, f), spec, False, is_leaf=lambda x: x is None
                    )
            return spec
        return eqx.is_inexact_array(node)

    return jax.tree.map(
        spec_of, model, is_leaf=lambda x: isinstance(x, AbstractParametrisedNeuron)
    )
