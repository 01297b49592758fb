"""The neuron contract and the helpers every built-in neuron shares."""

import abc
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ..spikes import AbstractSurrogate, FastSigmoid

ResetMode = Literal["subtract", "to_value", "none"]
Method = Literal["exact", "euler"]
_RESET_MODES = ("subtract", "to_value", "none")
_METHODS = ("exact", "euler")


class AbstractNeuron(eqx.Module):
    """Base class of all neurons: one population stepped over one time step `dt`.

    A neuron acts on **one sample**; batch with `jax.vmap`. Its state is an explicit PyTree
    that the caller threads through time (`snnx.run` does this for you).

    Subclasses implement the discrete-time pair

    - `init_state(shape)`: the resting state of a population of that shape;
    - `__call__(x, state, *, key=None) -> (output, new_state)`: advance one step, where `x`
        is the input current over the step and `output` is usually spikes in `{0., 1.}`;

    and, to be usable in continuous time (`snnx.ode`, `snnx.eventprop`), the trio

    - `vector_field(t, state, x)`: $d(\\text{state})/dt$ between spikes;
    - `spike_condition(state)`: an array that crosses zero upwards where a neuron spikes;
    - `reset(state, spiked)`: the jump applied to the state where `spiked` is True.

    The continuous-time trio is optional: a neuron without it still runs everywhere in
    discrete time, and continuous-time tools say which method is missing.
    """

    @abc.abstractmethod
    def init_state(self, shape: int | tuple[int, ...]) -> PyTree[Array]:
        """Return the resting state of a population of the given shape (one sample)."""

    @abc.abstractmethod
    def __call__(
        self, x: ArrayLike, state: PyTree[Array], *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, PyTree[Array]]:
        """Advance one time step; return `(output, new_state)`."""


class AbstractParametrisedNeuron(AbstractNeuron):
    """A neuron whose physical parameters are arrays, each optionally trainable.

    Subclasses declare `_parameters`, a mapping from a public parameter name (`"tau"`) to the
    field that stores it (`"log_tau"` for time constants, kept positive by storing their
    logarithm), and a static `trainable` field listing the public names that learn.
    Parameters not listed are wrapped in `jax.lax.stop_gradient` where they are used, and
    `snnx.trainable_spec(model)` leaves them out of optimisers.
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
            arrays[name] = _param(cls, name, values[name], positive=log, log=log)
            setattr(self, field, arrays[name])
        _check_mutual_broadcast(cls, **arrays)

    def _set_options(self, **options: Any) -> None:
        """Validate and store the static options a neuron's constructor takes."""
        cls = type(self).__name__
        for name, value in options.items():
            if name == "dt":
                value = _check_dt(cls, value)
            elif name == "reset_mode":
                value = _check_choice(cls, name, value, _RESET_MODES)
            elif name == "method":
                value = _check_choice(cls, name, value, _METHODS)
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
            try:
                out = np.broadcast_shapes(p_shape, shape)
            except ValueError:
                out = None
            if out != shape:
                raise ValueError(
                    f"{type(self).__name__} parameter `{name}` has shape {p_shape}, which does "
                    f"not broadcast to the layer shape {shape}; give a scalar or an array of "
                    f"shape {shape}."
                )


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(
            f"`shape` must be an int or a tuple of ints, got {shape!r}."
        ) from None
    if any(s < 0 for s in shape):
        raise ValueError(f"`shape` must have non-negative sizes, got {shape}.")
    return shape


def _param(
    cls: str, name: str, value: ArrayLike, *, positive: bool = False, log: bool = False
) -> Array:
    """Convert a constructor argument to a float array, checking it when concrete."""
    if value is None:
        raise ValueError(f"{cls} parameter `{name}` must be given, got None.")
    try:
        arr = jnp.asarray(value, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{cls} parameter `{name}` must be a number or a float array, got {value!r}."
        ) from e
    if not isinstance(arr, jax.core.Tracer):
        host = np.asarray(arr)
        if not np.all(np.isfinite(host)):
            shown = host if host.size < 8 else "an array with NaN/inf"
            raise ValueError(f"{cls} parameter `{name}` must be finite, got {shown}.")
        if positive and not np.all(host > 0):
            shown = host if host.size < 8 else "an array with values <= 0"
            raise ValueError(f"{cls} parameter `{name}` must be > 0, got {shown}.")
    return jnp.log(arr) if log else arr


def _check_dt(cls: str, dt: Any) -> float:
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise TypeError(f"{cls} `dt` must be a positive number, got {dt!r}.") from None
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"{cls} `dt` must be a finite number > 0, got {dt}.")
    return dt


def _check_choice(cls: str, name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{cls} `{name}` must be one of {choices}, got {value!r}.")
    return value


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


def _decay_and_gain(tau: Array, dt: float, method: str) -> tuple[Array, Array]:
    """Per-step decay factor and input gain of `tau dv/dt = -v + I` over `dt`.

    `exact` holds the input constant over the step (zero-order hold): the decay is
    $e^{-dt/\\tau}$ and the input enters with weight $1 - e^{-dt/\\tau}$. `euler` is the
    forward-Euler step $1 - dt/\\tau$, $dt/\\tau$ that snnTorch/Norse-style exporters assume.
    """
    if method == "exact":
        gain = -jnp.expm1(-dt / tau)
        return 1.0 - gain, gain
    return 1.0 - dt / tau, dt / tau


def _apply_reset(
    v: Array, spikes: Array, mode: str, threshold: Array, v_reset: Array, detach: bool
) -> Array:
    s = jax.lax.stop_gradient(spikes) if detach else spikes
    if mode == "subtract":
        return v - s * (threshold - v_reset)
    if mode == "to_value":
        return v + s * (v_reset - v)
    return v


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
