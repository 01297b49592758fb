import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture
def getkey():
    """A fresh PRNG key on every call: `getkey()`."""
    keys = iter(jax.random.split(jax.random.key(1234), 10_000))
    return lambda: next(keys)
