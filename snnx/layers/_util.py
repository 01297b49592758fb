"""Helpers shared by stateful containers."""

import functools
import inspect

import equinox as eqx


def is_stateful(layer) -> bool:
    """True for layers that carry state through time (neurons, `Recurrent`, `Sequential`...).

    A stateful layer has `init_state(shape)` and is called as `layer(x, state, *, key)`.
    """
    return callable(getattr(layer, "init_state", None))


@functools.lru_cache(maxsize=256)
def _accepts_key_cached(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "key" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _accepts_key(layer) -> bool:
    fn = type(layer).__call__ if isinstance(layer, eqx.Module) else layer
    try:
        return _accepts_key_cached(fn)
    except TypeError:  # unhashable callable
        return _accepts_key_cached.__wrapped__(fn)


def call_stateless(layer, x, key):
    """Apply a stateless layer (an equinox.nn layer or a plain function) to one sample."""
    if _accepts_key(layer):
        return layer(x, key=key)
    return layer(x)


def layer_name(layer) -> str:
    return getattr(layer, "__name__", None) or type(layer).__name__
