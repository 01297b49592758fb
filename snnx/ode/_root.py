"""The default spike-time root finder: Chandrupatla's bracketed method."""

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Int, PyTree, Scalar


class _ChandrupatlaState(eqx.Module):
    a: Scalar  # the last point evaluated
    b: Scalar  # the bracket is always [a, b] (in either order)
    c: Scalar  # the previous value of a or b, for inverse quadratic interpolation
    fa: Scalar
    fb: Scalar
    fc: Scalar
    best: Scalar
    done: Bool[Array, ""]
    count: Int[Array, ""]


def _safe_div(x, y):
    return x / jnp.where(y == 0, 1, y)


class Chandrupatla(optx.AbstractRootFinder):
    r"""Chandrupatla's bracketed root finder (the default of `snnx.ode`).

    A spike lies between the endpoints of the solver step in which the spike condition
    changed sign, so the root is bracketed before the search starts. Each iteration keeps
    the bracket and takes an inverse quadratic interpolation step when it is safe, a
    bisection step otherwise; unlike Newton's method it cannot diverge, and since its
    stopping rule is the bracket width (never a function value that rounding may keep
    above a tolerance) it cannot stall either, in float32 as in float64.

    The search stops once the bracket is narrower than `atol + rtol * |t|` or after
    `max_iterations` (64 is far more than a bracket of float64 width needs). Without a
    bracket (a sign change the dense output does not reproduce) the endpoint with the
    smaller condition is returned.

    **Arguments:**

    - `rtol`, `atol`: relative and absolute tolerances on the spike time; `None` (default)
        follows the dtype: 4 units of roundoff (`4 * jnp.finfo(dtype).eps`).
    - `max_iterations`: a static bound on the iterations; reaching it is not an error.
    """

    rtol: float | None = None
    atol: float | None = None
    max_iterations: int = eqx.field(static=True, default=64)
    norm: ClassVar[Callable[[PyTree], Scalar]] = jnp.abs

    def __check_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(
                    f"`{name}` of `Chandrupatla` must be a non-negative float or None (follow "
                    f"the dtype), got {value!r}."
                )
        if not (isinstance(self.max_iterations, int) and self.max_iterations >= 1):
            raise ValueError(
                f"`max_iterations` of `Chandrupatla` must be a positive int, got "
                f"{self.max_iterations!r}."
            )

    def _tols(self, dtype):
        eps = float(jnp.finfo(dtype).eps)
        rtol = 4 * eps if self.rtol is None else self.rtol
        atol = 4 * eps if self.atol is None else self.atol
        return rtol, atol

    def init(self, fn, y, args, options: dict[str, Any], f_struct, aux_struct, tags):
        del aux_struct, tags
        if "lower" not in options or "upper" not in options:
            raise ValueError(
                "`Chandrupatla` needs a bracket: pass `options=dict(lower=..., upper=...)` "
                "(diffrax's events do this for you)."
            )
        dtype = jnp.result_type(y)
        a = jnp.asarray(options["lower"], dtype)
        b = jnp.asarray(options["upper"], dtype)
        fa, _ = fn(a, args)
        fb, _ = fn(b, args)
        fa, fb = jnp.asarray(fa, dtype), jnp.asarray(fb, dtype)
        bracketed = jnp.sign(fa) != jnp.sign(fb)
        best = jnp.where(jnp.abs(fa) < jnp.abs(fb), a, b)
        exact = (fa == 0) | (fb == 0)
        return _ChandrupatlaState(
            a=a, b=b, c=a, fa=fa, fb=fb, fc=fa, best=best,
            done=(~bracketed) | exact | (a == b), count=jnp.array(0),
        )

    def step(self, fn, y, args, options, state: _ChandrupatlaState, tags):
        del y, options, tags
        rtol, atol = self._tols(jnp.result_type(state.a))
        s = state
        # The next point: inverse quadratic interpolation when the three points make it
        # well-posed (Chandrupatla's criterion), else bisection; never closer than the
        # tolerance to an endpoint.
        xi = _safe_div(s.a - s.b, s.c - s.b)
        phi = _safe_div(s.fa - s.fb, s.fc - s.fb)
        iqi = (phi**2 < xi) & ((1 - phi) ** 2 < 1 - xi) & (s.count > 0)
        t_iqi = _safe_div(s.fa, s.fb - s.fa) * _safe_div(s.fc, s.fb - s.fc) + _safe_div(
            s.c - s.a, s.b - s.a
        ) * _safe_div(s.fa, s.fc - s.fa) * _safe_div(s.fb, s.fc - s.fb)
        tol = atol + rtol * jnp.abs(s.best)
        tlim = jnp.clip(_safe_div(tol, jnp.abs(s.b - s.a)), 0.0, 0.5)
        t = jnp.clip(jnp.where(iqi, t_iqi, 0.5), tlim, 1 - tlim)
        xt = s.a + t * (s.b - s.a)
        ft, aux = fn(xt, args)
        ft = jnp.asarray(ft, s.fa.dtype)
        same = jnp.sign(ft) == jnp.sign(s.fa)
        # Keep [a, b] a bracket: xt replaces the endpoint whose condition has its sign.
        c, fc = jnp.where(same, s.a, s.b), jnp.where(same, s.fa, s.fb)
        b, fb = jnp.where(same, s.b, s.a), jnp.where(same, s.fb, s.fa)
        a, fa = xt, ft
        best = jnp.where(jnp.abs(fa) < jnp.abs(fb), a, b)
        width = jnp.abs(b - a)
        done = (width <= 2 * (atol + rtol * jnp.abs(best))) | (ft == 0)
        done = done | (s.count + 1 >= self.max_iterations)

        def keep(new, old):
            return jnp.where(s.done, old, new)

        new = _ChandrupatlaState(
            a=keep(a, s.a), b=keep(b, s.b), c=keep(c, s.c), fa=keep(fa, s.fa),
            fb=keep(fb, s.fb), fc=keep(fc, s.fc), best=keep(best, s.best),
            done=s.done | done, count=s.count + 1,
        )
        return new.best, new, aux

    def terminate(self, fn, y, args, options, state: _ChandrupatlaState, tags):
        del fn, y, args, options, tags
        return state.done, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state: _ChandrupatlaState, tags, result):
        del fn, y, args, options, tags, result
        return state.best, aux, {}


def _default_root_finder(root_finder, root_tol) -> optx.AbstractRootFinder:
    """The root finder `simulate` uses, from its `root_finder` and `root_tol` arguments."""
    if root_finder is None:
        if root_tol is None:
            return Chandrupatla()
        return Chandrupatla(rtol=root_tol, atol=root_tol)
    if root_tol is not None:
        raise ValueError(
            "Give either `root_finder` or `root_tol` (the tolerance of the default "
            "`snnx.ode.Chandrupatla` finder), not both: set the tolerances on the root "
            "finder object instead."
        )
    if not isinstance(root_finder, optx.AbstractRootFinder):
        raise TypeError(
            f"`root_finder` must be an `optimistix.AbstractRootFinder` (e.g. "
            f"`snnx.ode.Chandrupatla()`, `optimistix.Bisection(rtol, atol)`, "
            f"`optimistix.Newton(rtol, atol)`), got {type(root_finder).__name__}."
        )
    return root_finder

