"""Turn a JAX loss / forward function into timed zero-argument steps."""

import jax
import optax
from common import jax_peak_bytes


def train_step(loss_fn, params, data, lr=1e-3, compiler_options=None):
    """A jitted Adam step `(params, opt_state, *data) -> (params, opt_state, loss)`.

    **Returns:** `(call, peak_bytes, loss0)`: `call()` runs one step and keeps the updated
    parameters, `peak_bytes` is XLA's memory analysis of the compiled step.
    """
    opt = optax.adam(lr)
    opt_state = opt.init(params)

    def step(params, opt_state, *data):
        loss, g = jax.value_and_grad(loss_fn)(params, *data)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, compiler_options=compiler_options)
    mem = jax_peak_bytes(step, params, opt_state, *data)
    holder = [params, opt_state]

    def call():
        p, o, loss = step(holder[0], holder[1], *data)
        holder[0], holder[1] = p, o
        return loss

    return call, mem


def forward_step(fn, params, data, compiler_options=None):
    f = jax.jit(fn, compiler_options=compiler_options)
    mem = jax_peak_bytes(f, params, *data)
    return (lambda: f(params, *data)), mem
