"""One shape and state propagation for the containers (`Sequential`, `Graph`)."""

import jax

from ._util import call_stateless, init_layer_state, is_stateful


def propagate(layer, x: jax.ShapeDtypeStruct, dtype):
    """The initial state of `layer` and its per-step output structure for input `x`.

    Nothing is computed (`jax.eval_shape`). The layer is closed over, not traced, so its
    static flags stay Python values; a dummy key satisfies layers that need one (dropout).
    Errors propagate as they are; containers re-raise them naming the layer's position.

    **Returns:**

    `(state, output)`: the state (`None` for a stateless layer) and the output's
    `jax.ShapeDtypeStruct` (or whatever PyTree the layer returned, for the caller to refuse).
    """
    key = jax.random.key(0)
    if is_stateful(layer):
        state = init_layer_state(layer, x.shape, dtype)
        out = jax.eval_shape(lambda xx, s: layer(xx, s, key=key)[0], x, state)
    else:
        state = None
        out = jax.eval_shape(lambda xx: call_stateless(layer, xx, key), x)
    return state, out
