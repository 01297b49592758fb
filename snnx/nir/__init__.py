r"""NIR interop: `to_nir` and `from_nir` (needs the optional `nir` package).

[NIR](https://neuroir.org) describes a spiking network as a graph of continuous-time nodes.
snnx neurons are defined by the same continuous-time parameters, so parameters cross over
unchanged; what NIR leaves open is **how time is discretised**. `from_nir(graph, dt=...)`
steps every node with the time step `dt` as follows ($x$ is the node's input during the
step, held constant over it; an input spike is a value of 1 for one step):

| NIR node | snnx layer | one step of length `dt` |
| --- | --- | --- |
| `LIF` | `snnx.LIF` | (1), then spike $s = H(v - v_\text{th})$ and reset |
| `LI` | `snnx.LI` | (1); the output is $v$ |
| `IF` | `snnx.IF` | $v \leftarrow v + dt\, r\, x$, then spike and reset |
| `I` | `snnx.Integrator` | $v \leftarrow v + dt\, r\, x$; the output is $v$ |
| `CubaLIF` | `snnx.CuBaLIF` | (2), then spike and reset |
| `CubaLI` | `snnx.CuBaLI` | (2); the output is $v$ |
| `Delay` | `snnx.Delay` | $y_t = x_{t-k}$, $k = \operatorname{round}(d/dt)$ (3) |
| `Threshold` | `snnx.Threshold` | $H(x - \theta)$, surrogate gradient |
| `Affine`, `Linear` | `eqx.nn.Linear` | within the step |
| `Scale` | `snnx.Scale` | within the step |
| `Conv1d`, `Conv2d` | `eqx.nn.Conv` | within the step (4) |
| `SumPool2d`, `AvgPool2d` | `snnx.SumPool2d`, `eqx.nn.AvgPool2d` | within the step (4) |
| `Flatten` | `snnx.Flatten` | axes counted without the batch axis |
| `NIRGraph` | `Sequential` / `Recurrent` / `Graph` | (5) |

1. `method="euler"`: $v \leftarrow v + \frac{dt}{\tau}(v_\text{leak} - v + r x)$;
    `method="exact"`: $v \leftarrow v_\text{leak} + \beta(v - v_\text{leak}) + (1-\beta) r x$,
    $\beta = e^{-dt/\tau}$ (the exact solution for $x$ held over the step).
2. `"euler"`: $i \leftarrow i + \frac{dt}{\tau_s}(w_\text{in} x - i)$, then
    $v \leftarrow v + \frac{dt}{\tau_m}(v_\text{leak} - v + r\, i)$ with the **new** $i$;
    `"exact"`: the exact solution of both linear ODEs over the step.
3. A warning says when a delay is not a whole multiple of `dt`; `to_nir` writes the delay
    as simulated, `steps * dt`.
4. PyTorch conventions: weight `(out, in/groups, *kernel)`, zero padding on both sides,
    `'same'` puts the odd extra zero at the end; average pooling counts padded zeros.
5. A chain becomes `snnx.Sequential` (run layer-major), a neuron with a `Linear` feedback edge
    `snnx.Recurrent`, anything else `snnx.Graph`. Edges deliver within the step; an edge that
    closes a cycle delivers the previous step's value. Inputs into one node are summed.

`method` and `reset_mode` default to what snnx wrote into the node's metadata (so a round
trip is exact), else to `method="euler"` (what every exporter below assumes) and
`reset_mode="to_value"` ($v \leftarrow v_\text{reset}$, the NIR definition).

**Graphs from other libraries** (import with the exporter's `dt`):

- **snnTorch** writes `dt = 1e-4`: `Leaky(beta)` becomes `LIF` with $\tau = dt/(1-\beta)$,
    $r = \tau/dt$, $v_\text{leak} = 0$, so the Euler step is $v \leftarrow \beta v + x$;
    `Synaptic(alpha, beta)` becomes `CubaLIF` with $\tau_s = dt/(1-\alpha)$,
    $w_\text{in} = \tau_s/dt$, $\tau_m = dt/(1-\beta)$, $r = \tau_m/dt$: Euler gives
    $i \leftarrow \alpha i + x$, $v \leftarrow \beta v + i$ exactly; `RSynaptic` becomes a
    subgraph `input -> lif <-> w_rec, lif -> output`, imported as `snnx.Recurrent`. Use
    `from_nir(g, dt=1e-4, reset_mode="subtract")`. Below threshold this reproduces snnTorch
    exactly; snnTorch subtracts the threshold one step after a spike (from the stored
    membrane) where snnx resets within the step, so membranes differ after the first spike.
- **Norse** writes $\tau = 1/\tau^{-1}$, $r = 1$, in seconds (its default `dt = 1e-3`):
    `LIFBoxCell` and `LIBoxCell` are reproduced with `method="euler"`,
    `reset_mode="to_value"`. Norse's `IAFCell` (exported as `IF` with $r = 1$) adds its
    input unscaled, $v \leftarrow v + x$, which is NIR's `IF` only when $dt\, r = 1$; its
    `LIFCell` (a `CubaLIF` with $w_\text{in} = 1$) adds its input to the current unscaled and
    drives the membrane with the previous current. snnx follows the NIR equations, so for
    those two cells the membranes differ from Norse's.
- **Spyx** (default `dt = 1`) writes $\tau = dt/(1-\beta)$ with $r = \beta$ and ignores `r`
    on import; set `r` to $\tau/dt$ after import to get Spyx's $v \leftarrow \beta v + x$.

`to_nir(model, input_shape)` writes the continuous-time parameters (not `dt`, `method` or the
surrogate: NIR has no field for them; snnx keeps `method` and `reset_mode` in each node's
metadata and `dt` in the graph's).
"""

from typing import Any


def to_nir(model: Any, input_shape: Any, *, dt: float | None = None):
    """Export an snnx model to a NIR graph.

    ```python
    graph = snnx.to_nir(model, (2, 16, 16), dt=1e-3)
    nir.write("model.nir", graph)
    ```

    **Arguments:**

    - `model`: an `snnx.Sequential`, `snnx.Graph`, or a single layer or neuron. Supported
        layers: `equinox.nn.Linear`, `Conv1d`/`Conv2d` (zero, symmetric padding),
        `AvgPool2d`; `jnp.ravel`; `snnx.Scale`, `Threshold`, `SumPool2d`, `Flatten`, `Delay`,
        `IF`, `LIF`, `LI`, `CuBaLIF`, `CuBaLI`, `Integrator`, `Recurrent`, and nested
        `Sequential`/`Graph` containers.
    - `input_shape`: the per-step input shape of one sample, e.g. `(2, 16, 16)`.
    - `dt`: the time step the model is meant to run with. If given, every neuron must have
        been built with it; if None, the neurons' own (common) `dt` is recorded.

    **Returns:**

    A `nir.NIRGraph` whose types are inferred and checked (`infer_types`, `check_types`).
    A `Sequential` becomes a chain with nodes named by position (`"0"`, `"1"`, ... and
    `"2.0"` inside a nested `Sequential`); a `Recurrent` a subgraph
    `input -> neuron <-> w_rec, neuron -> output`; a `Graph` keeps its node names.

    **Raises:**

    `ValueError` naming the layer for a layer with no NIR equivalent (e.g. `snnx.ALIF`,
    asymmetric padding) or a neuron whose `dt` differs from `dt`.
    """
    from ._export import to_nir as _to_nir

    return _to_nir(model, input_shape, dt=dt)


def from_nir(
    graph_or_path: Any,
    *,
    dt: float,
    method: str | None = None,
    reset_mode: str | None = None,
    surrogate: Any = None,
):
    """Import a NIR graph (or `.nir` file) as an snnx model.

    ```python
    model = snnx.from_nir("model.nir", dt=1e-4)           # e.g. exported by snnTorch
    outs, _ = snnx.run(model, xs)
    ```

    **Arguments:**

    - `graph_or_path`: a `nir.NIRGraph`, a single NIR node, or the path of a file written by
        `nir.write`.
    - `dt`: the time step to discretise with (keyword only; NIR graphs carry none). Use the
        exporter's: snnTorch 1e-4, Norse 1e-3, Spyx 1.
    - `method`: `"euler"` or `"exact"` for every leaky neuron; default: the node's snnx
        metadata, else `"euler"` (see the module docstring).
    - `reset_mode`: `"to_value"`, `"subtract"` or `"none"` for every spiking neuron; default:
        the node's snnx metadata, else `"to_value"`.
    - `surrogate`: the surrogate gradient of spiking nodes; default `FastSigmoid()`.

    **Returns:**

    An `snnx.Sequential` when the graph is a chain (so `snnx.run` executes it layer-major),
    otherwise an `snnx.Graph`; a recurrent subgraph (neuron with a `Linear` feedback edge)
    becomes an `snnx.Recurrent`.

    **Raises:**

    `ValueError` naming the node for a node type snnx cannot represent, naming the edge for
    a shape mismatch between its two ends, and for graphs with several Input/Output nodes;
    for a file: `FileNotFoundError` if it is missing, `IsADirectoryError` for a folder, and
    `ValueError` naming `graph_or_path` (and the node) for a file that is not HDF5, is
    truncated, is HDF5 but not NIR, or holds a damaged node (no `type`, an unknown type, a
    missing field, NaN parameters).
    """
    from ._import import from_nir as _from_nir

    return _from_nir(graph_or_path, dt=dt, method=method, reset_mode=reset_mode,
                     surrogate=surrogate)
