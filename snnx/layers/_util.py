"""How containers call and initialise the layers they hold (the rules of `_abstract.py`)."""

import equinox as eqx
import jax.numpy as jnp

from ._abstract import AbstractStatefulLayer


def is_stateful(layer) -> bool:
    """True for layers that carry state through time: subclasses of
    `snnx.layers.AbstractStatefulLayer` (neurons, `Recurrent`, `Delay`, `Sequential`...)."""
    return isinstance(layer, AbstractStatefulLayer)


# equinox.nn layers whose `__call__` takes no `key` (all others do).
_NO_KEY = (eqx.nn.PReLU,)


def call_stateless(layer, x, key):
    """Apply a stateless layer to one sample: an `equinox.Module` with `key=`, any other
    callable (a plain function) without it."""
    if isinstance(layer, eqx.Module) and not isinstance(layer, _NO_KEY):
        return layer(x, key=key)
    return layer(x)


def init_layer_state(layer: AbstractStatefulLayer, shape, dtype):
    """`layer.init_state(shape, dtype)`, leaving `dtype` out when it is float32 (so a user's
    layer that only runs in float32 may define `init_state(self, shape)`)."""
    if jnp.dtype(dtype) == jnp.float32:
        return layer.init_state(shape)
    return layer.init_state(shape, dtype)


def layer_name(layer) -> str:
    if isinstance(layer, eqx.Module):
        return type(layer).__name__
    return getattr(layer, "__name__", None) or type(layer).__name__


def check_layer(where: str, layer, expected: str) -> None:
    """A container's check of one layer it is given: callable, and stateful only if it
    declares it (`where` names the position, `expected` what a layer must be)."""
    if not callable(layer):
        raise TypeError(f"{where} must {expected}, got {type(layer).__name__}.")
    hint = stateful_hint(layer)
    if hint:
        raise TypeError(f"{where}:{hint}")


def stateful_hint(layer) -> str:
    """A hint for a layer that looks stateful but does not declare it (for error messages
    only: what a layer can do is declared, never probed)."""
    if not is_stateful(layer) and callable(getattr(layer, "init_state", None)):
        return (f" {layer_name(layer)} defines `init_state` but does not subclass "
                f"`snnx.layers.AbstractStatefulLayer` (or `snnx.AbstractNeuron`), so it is "
                f"called as a stateless layer; subclass it to declare its state.")
    return ""
