"""Keeping learned delays non-negative: a projection after a step, or inside the optimiser."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._network import EventPropNetwork


def clip_delays(net: EventPropNetwork, max_delay: float | None = None) -> EventPropNetwork:
    """`net` with every delay projected onto `[0, max_delay]` (call it after each optimiser
    step, so that no delay goes negative: projected gradient descent).

    **Arguments:**

    - `net`: an `EventPropNetwork`.
    - `max_delay`: the upper bound in time units of `dt`, or None for none (e.g. the trial
        length `T * dt`: longer delays only lose arrivals).

    **Returns:**

    The network with clipped delays (the same object if it has none).

    **Raises:**

    `TypeError` if `net` is not an `EventPropNetwork`; `ValueError` for a negative
    `max_delay`.
    """
    if not isinstance(net, EventPropNetwork):
        raise TypeError(f"`net` must be an `snnx.eventprop.EventPropNetwork`, got "
                        f"{type(net).__name__}.")
    if max_delay is not None and not float(max_delay) >= 0:
        raise ValueError(f"`max_delay` must be >= 0 (or None), got {max_delay!r}.")
    hi = None if max_delay is None else float(max_delay)
    delays = tuple(None if d is None else jnp.clip(jnp.where(d >= 0, d, 0.0), 0.0, hi)
                   for d in net.delays)
    return eqx.tree_at(lambda n: n.delays, net, delays, is_leaf=lambda x: x is None)


def nonnegative_delays(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """`optimizer` followed by a projection that keeps every delay of an `EventPropNetwork`
    >= 0 (`optax.keep_params_nonnegative` on the delay leaves only): pass it to `snnx.fit`
    or `snnx.make_step` so that no delay is ever clamped.

    ```python
    fitted, history = snnx.fit(net, loss, snnx.eventprop.nonnegative_delays(optax.adam(0.1)),
                               (xs, ys), epochs=20, key=key)
    ```

    **Arguments:**

    - `optimizer`: any optax `GradientTransformation`.

    **Returns:**

    The chained `GradientTransformation` (its `init` must be given the trainable part of an
    `EventPropNetwork`, as `snnx.fit` does).

    **Raises:**

    `TypeError` (from `init`) if the parameters are not those of an `EventPropNetwork`.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"`optimizer` must be an optax `GradientTransformation`, got "
                        f"{type(optimizer).__name__}.")

    def mask(params):
        if not isinstance(params, EventPropNetwork):
            raise TypeError("`nonnegative_delays` trains an `EventPropNetwork`: its parameters "
                            f"must be one (`eqx.filter(net, ...)`), got {type(params).__name__}.")
        m = jax.tree.map(lambda _: False, params)
        on = tuple(None if d is None else True for d in params.delays)
        return eqx.tree_at(lambda p: p.delays, m, on, is_leaf=lambda x: x is None)

    return optax.chain(optimizer, optax.masked(optax.keep_params_nonnegative(), mask))
