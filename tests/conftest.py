import jax
import jax.numpy as jnp
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture
def getkey():
    """A fresh PRNG key on every call: `getkey()`."""
    keys = iter(jax.random.split(jax.random.key(1234), 10_000))
    return lambda: next(keys)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Each numerical test in float32 (what users get) and in float64."""
    if request.param == "float64":
        jax.config.update("jax_enable_x64", True)
        yield jnp.float64
        jax.config.update("jax_enable_x64", False)
    else:
        yield jnp.float32
