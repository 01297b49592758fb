"""NIR graph -> snnx model."""

import os
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import nir
import numpy as np

from .._checks import check_choice, check_dt
from ..layers._util import is_stateful
from ..layers.basic import Flatten, Scale, SumPool2d, Threshold
from ..layers.delay import Delay
from ..layers.delayed import DelayedLinear
from ..layers.graph import Graph
from ..layers.recurrent import Recurrent
from ..layers.sequential import Sequential
from ..neurons._dynamics import METHODS, RESET_MODES
from ..neurons.cuba import CuBaLI, CuBaLIF
from ..neurons.if_ import IF
from ..neurons.integrator import Integrator
from ..neurons.li import LI
from ..neurons.lif import LIF
from ._read import SUPPORTED_NODES, _join, read_file as _read_file

_KEY = jax.random.key(0)  # placeholder for constructors; every weight is overwritten


class _Options:
    def __init__(self, dt, method, reset_mode, surrogate):
        self.dt = dt
        self.method = method
        self.reset_mode = reset_mode
        self.surrogate = surrogate

    def neuron(self, node, *, spiking=True, leaky=True) -> dict:
        meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in node.metadata.items()}
        opts = {"dt": self.dt}
        if leaky:
            opts["method"] = self.method or str(meta.get("snnx_method", "euler"))
        if spiking:
            opts["reset_mode"] = self.reset_mode or str(meta.get("snnx_reset_mode", "to_value"))
            opts["surrogate"] = self.surrogate
        return opts


def _a(x) -> jnp.ndarray:
    return jnp.asarray(np.asarray(x, dtype=np.float32))


def _ints(x, n, what, path) -> tuple[int, ...]:
    arr = np.asarray(x).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise ValueError(f"NIR node {path!r}: `{what}` must have {n} entries, got {x!r}.")
    return tuple(int(v) for v in arr)


def _padding(node, nd, path):
    """'same', 'valid' or a tuple of ints (a file may hold the string as bytes)."""
    padding = node.padding
    if isinstance(padding, np.ndarray) and padding.dtype.kind in "SUO":
        padding = padding.reshape(-1)[0]
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, str):
        return padding
    return _ints(padding, nd, "padding", path)


def _conv(node, path, nd):
    w = np.asarray(node.weight, dtype=np.float32)
    c_out, c_in_g = w.shape[:2]
    kernel = w.shape[2:]
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    stride = _ints(node.stride, nd, "stride", path)
    dilation = _ints(node.dilation, nd, "dilation", path)
    padding = _padding(node, nd, path)
    if padding == "valid":
        pads = ((0, 0),) * nd
    elif padding == "same":  # as PyTorch: the odd extra zero goes to the end
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
    else:
        pads = tuple((p, p) for p in padding)
    conv = eqx.nn.Conv(
        nd, c_in_g * groups, c_out, kernel, stride=stride, padding=pads, dilation=dilation,
        groups=groups, use_bias=True, key=_KEY,
    )
    bias = np.asarray(node.bias, dtype=np.float32).reshape((c_out,) + (1,) * nd)
    return eqx.tree_at(lambda c: (c.weight, c.bias), conv, (jnp.asarray(w), jnp.asarray(bias)))


def _linear(weight, bias, path):
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(
            f"NIR node {path!r}: only 2-D weights (out, in) are supported, got shape {w.shape}."
        )
    lin = eqx.nn.Linear(w.shape[1], w.shape[0], use_bias=bias is not None, key=_KEY)
    lin = eqx.tree_at(lambda m: m.weight, lin, jnp.asarray(w))
    if bias is not None:
        lin = eqx.tree_at(lambda m: m.bias, lin, _a(bias).reshape(w.shape[0]))
    return lin


def _layer(node, path, opt):
    if isinstance(node, nir.NIRGraph):
        return _from_graph(node, path, opt)
    if isinstance(node, nir.Affine):
        return _linear(node.weight, node.bias, path)
    if isinstance(node, nir.Linear):
        return _linear(node.weight, None, path)
    if isinstance(node, nir.Scale):
        return Scale(_a(node.scale))
    if isinstance(node, nir.Conv1d):
        return _conv(node, path, 1)
    if isinstance(node, nir.Conv2d):
        return _conv(node, path, 2)
    if isinstance(node, nir.SumPool2d):
        return SumPool2d(_ints(node.kernel_size, 2, "kernel_size", path),
                         _ints(node.stride, 2, "stride", path),
                         _ints(node.padding, 2, "padding", path))
    if isinstance(node, nir.AvgPool2d):
        return eqx.nn.AvgPool2d(_ints(node.kernel_size, 2, "kernel_size", path),
                                _ints(node.stride, 2, "stride", path),
                                _ints(node.padding, 2, "padding", path))
    if isinstance(node, nir.Flatten):
        return Flatten(int(node.start_dim), int(node.end_dim))
    if isinstance(node, nir.Threshold):
        return Threshold(_a(node.threshold), surrogate=opt.surrogate)
    if isinstance(node, nir.Delay):
        return Delay(np.asarray(node.delay, dtype=np.float64), dt=opt.dt)
    if isinstance(node, nir.LIF):
        return LIF(_a(node.tau), _a(node.r), _a(node.v_leak), _a(node.v_threshold),
                   _a(node.v_reset), **opt.neuron(node))
    if isinstance(node, nir.IF):
        return IF(_a(node.r), _a(node.v_threshold), _a(node.v_reset),
                  **opt.neuron(node, leaky=False))
    if isinstance(node, nir.LI):
        return LI(_a(node.tau), _a(node.r), _a(node.v_leak), **opt.neuron(node, spiking=False))
    if isinstance(node, nir.CubaLIF):
        return CuBaLIF(_a(node.tau_syn), _a(node.tau_mem), _a(node.r), _a(node.v_leak),
                       _a(node.v_threshold), _a(node.v_reset), _a(node.w_in),
                       **opt.neuron(node))
    if isinstance(node, nir.CubaLI):
        return CuBaLI(_a(node.tau_syn), _a(node.tau_mem), _a(node.r), _a(node.v_leak),
                      _a(node.w_in), **opt.neuron(node, spiking=False))
    if isinstance(node, nir.I):
        return Integrator(_a(node.r), dt=opt.dt)
    raise ValueError(
        f"from_nir: NIR node {path!r} of type {type(node).__name__} has no snnx equivalent. "
        f"Supported: {SUPPORTED_NODES}."
    )


def _convert(node, path, opt):
    try:
        return _layer(node, path, opt)
    except (ValueError, TypeError) as e:
        if str(e).startswith("from_nir"):
            raise
        raise type(e)(f"from_nir: NIR node {path!r} of type {type(node).__name__}: {e}") from e


def _declared(types):
    if not types:
        return None
    values = list(types.values())
    if len(values) != 1 or values[0] is None:
        return None
    return tuple(int(s) for s in np.asarray(values[0]).reshape(-1))


def _declared_input(node):
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        # nir's own input_type takes the channels from the weight, wrong for groups > 1.
        if node.input_shape is None:
            return None
        spatial = np.asarray(node.input_shape).reshape(-1).tolist()
        groups = int(np.asarray(node.groups).reshape(-1)[0])
        return (int(node.weight.shape[1]) * groups, *(int(s) for s in spatial))
    return _declared(node.input_type)


def _conv_output(node):
    """A convolution's output shape (nir's own uses the first kernel dimension for all)."""
    if node.input_shape is None:
        return None
    spatial = np.asarray(node.input_shape).reshape(-1).tolist()
    nd = len(spatial)
    kernel = node.weight.shape[2:]
    stride = _ints(node.stride, nd, "stride", "")
    dilation = _ints(node.dilation, nd, "dilation", "")
    padding = _padding(node, nd, "")
    pads = (0,) * nd if padding == "valid" else None if padding == "same" else padding
    out = []
    for i in range(nd):
        if pads is None:
            out.append(int(spatial[i]))
        else:
            n = spatial[i] + 2 * pads[i] - dilation[i] * (kernel[i] - 1) - 1
            out.append(n // stride[i] + 1)
    return (int(node.weight.shape[0]), *out)


def _declared_output(node):
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return _conv_output(node)
    return _declared(node.output_type)


def _check_edge_types(graph, path):
    """Edges whose two ends both declare a shape must agree (a parameter shape that
    broadcasts, like snnTorch's threshold of shape (1,), is accepted)."""
    for src, dst in graph.edges:
        if isinstance(graph.nodes[dst], nir.Output):
            continue  # derived from its source; nir miscomputes some (non-square kernels)
        out = _declared_output(graph.nodes[src])
        inp = _declared_input(graph.nodes[dst])
        if out is None or inp is None or out == inp:
            continue
        try:
            ok = np.broadcast_shapes(out, inp) == out
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"from_nir: shape mismatch on edge ({_join(path, src)!r} -> "
                f"{_join(path, dst)!r}): {type(graph.nodes[src]).__name__} node {src!r} outputs "
                f"shape {out}, but {type(graph.nodes[dst]).__name__} node {dst!r} takes shape "
                f"{inp}."
            )


def _io(graph, path):
    ins = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    where = f"graph {path!r}" if path else "the graph"
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(
            f"from_nir: {where} has inputs {ins} and outputs {outs}; snnx runs graphs with "
            f"exactly one Input and one Output node. Merge them or split the graph."
        )
    shape = _declared(graph.nodes[ins[0]].input_type)
    return ins[0], outs[0], shape


def _chain_order(graph, inp, out):
    """The node names from input to output if the graph is a simple chain, else None."""
    succ, pred = {}, {}
    for s, d in graph.edges:
        succ.setdefault(s, []).append(d)
        pred.setdefault(d, []).append(s)
    order, cur = [], inp
    while cur != out:
        nxt = succ.get(cur, [])
        if len(nxt) != 1 or len(pred.get(nxt[0], [])) != 1 or nxt[0] in order:
            return None
        cur = nxt[0]
        order.append(cur)
    if len(order) != len(graph.nodes) - 1:
        return None
    return order[:-1]


def _recurrent(graph, inp, out, layers):
    """snnTorch's RLeaky/RSynaptic pattern: input -> neuron <-> Linear, neuron -> output."""
    inner = [k for k in graph.nodes if k not in (inp, out)]
    if len(inner) != 2:
        return None
    for n, w in (inner, inner[::-1]):
        if set(graph.edges) == {(inp, n), (n, w), (w, n), (n, out)} and isinstance(
            graph.nodes[w], (nir.Linear, nir.Affine)
        ) and is_stateful(layers[n]) and not isinstance(layers[n], (Graph, Sequential)):
            weight = jnp.asarray(np.asarray(graph.nodes[w].weight, dtype=np.float32))
            size = weight.shape[0]
            if weight.shape != (size, size):
                return None
            affine = isinstance(graph.nodes[w], nir.Affine)
            rec = Recurrent(layers[n], size, key=_KEY, use_bias=affine)
            rec = eqx.tree_at(lambda r: r.weight, rec, weight)
            if affine:
                bias = jnp.asarray(np.asarray(graph.nodes[w].bias, dtype=np.float32))
                rec = eqx.tree_at(lambda r: r.bias, rec, bias.reshape(size))
            return rec
    return None


def _delayed(graph, inp, out, layers):
    """snnx's export of per-synapse delays: input -> Delay(uniform d) -> Linear -> output,
    once per delay value; rebuilt as one `snnx.layers.DelayedLinear`. Only graphs that
    snnx marked so (metadata `snnx_type`); the same pattern from elsewhere stays a Graph."""
    meta = getattr(graph, "metadata", None) or {}
    kind = meta.get("snnx_type", b"")
    if (kind.decode() if isinstance(kind, bytes) else str(kind)) != "DelayedLinear":
        return None
    inner = [k for k in graph.nodes if k not in (inp, out)]
    succ = {}
    for s, d in graph.edges:
        succ.setdefault(s, []).append(d)
    delays = [k for k in inner if isinstance(graph.nodes[k], nir.Delay)]
    if not delays or 2 * len(delays) != len(inner) or len(graph.edges) != 3 * len(delays):
        return None
    W = D = None
    for k in delays:
        nxt = succ.get(k, [])
        if (inp, k) not in graph.edges or len(nxt) != 1 or (nxt[0], out) not in graph.edges:
            return None
        lin, delay = graph.nodes[nxt[0]], np.asarray(graph.nodes[k].delay, np.float64)
        if not isinstance(lin, nir.Linear) or isinstance(lin, nir.Affine):
            return None
        steps = np.unique(np.asarray(layers[k].steps))
        w = np.asarray(lin.weight, np.float32)
        if steps.size != 1 or delay.ndim != 1 or w.ndim != 2 or w.shape[1] != delay.size:
            return None
        W = np.zeros_like(w) if W is None else W
        D = np.zeros(w.shape, np.int32) if D is None else D
        if W.shape != w.shape or np.any((W != 0) & (w != 0)):
            return None
        W, D = W + w, np.where(w != 0, int(steps[0]), D)
    dt = layers[delays[0]].dt
    max_delay = max(int(D.max()), int(np.asarray(meta.get("max_delay", 0))))
    return DelayedLinear(W.shape[1], W.shape[0], max_delay, delay=D,
                         weight=jnp.asarray(W), dt=dt)


def _from_graph(graph, path, opt):
    inp, out, shape = _io(graph, path)
    _check_edge_types(graph, path)
    layers = {
        name: _convert(node, _join(path, name), opt)
        for name, node in graph.nodes.items()
        if name not in (inp, out)
    }
    general = Graph(layers, graph.edges, input=inp, output=out)
    if shape is not None:
        # Propagating shapes through the general graph names the node and edge that fail.
        try:
            general.init_state(shape)
        except ValueError as e:
            where = f" (in subgraph {path!r})" if path else ""
            raise ValueError(f"from_nir{where}: {e}") from e
    model = _recurrent(graph, inp, out, layers)
    if model is None:
        model = _delayed(graph, inp, out, layers)
    if model is not None:
        return model
    order = _chain_order(graph, inp, out)
    return general if order is None else Sequential([layers[n] for n in order])


def from_nir(graph_or_path, *, dt, method=None, reset_mode=None, surrogate=None):
    dt = check_dt("from_nir", dt)
    if method is not None:
        check_choice("from_nir", "method", method, METHODS)
    if reset_mode is not None:
        check_choice("from_nir", "reset_mode", reset_mode, RESET_MODES)
    if isinstance(graph_or_path, (str, os.PathLike)):
        graph = _read_file(graph_or_path)
        if not isinstance(graph, nir.NIRGraph):  # a file holding a single node
            graph = nir.NIRGraph.from_list(graph, type_check=False)
    elif isinstance(graph_or_path, nir.NIRGraph):
        graph = graph_or_path
    elif isinstance(graph_or_path, nir.NIRNode):
        graph = nir.NIRGraph.from_list(graph_or_path, type_check=False)
    else:
        raise TypeError(
            f"`graph_or_path` must be a `nir.NIRGraph`, a NIR node or the path of a .nir file, "
            f"got {type(graph_or_path).__name__}."
        )
    meta = getattr(graph, "metadata", None) or {}
    written = meta.get("dt") if meta.get("source") in ("snnx", b"snnx") else None
    if written is not None and not np.isclose(float(written), dt, rtol=1e-9, atol=0):
        warnings.warn(
            f"from_nir: this graph was exported by snnx from neurons with dt={float(written)}, "
            f"but is imported with `dt={dt}`; its spikes will differ. Pass dt={float(written)} "
            f"to reproduce them.",
            stacklevel=3,
        )
    return _from_graph(graph, "", _Options(dt, method, reset_mode, surrogate))
