"""`snnx.Graph`: a stateful layer that runs any directed graph of layers, cycles included."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._checks import shape_tuple
from ..events import SpikeEvents
from ._abstract import AbstractEventReader, AbstractStatefulLayer
from ._shapes import propagate
from ._util import call_stateless, check_layer, is_stateful, layer_name


class GraphState(NamedTuple):
    """State of a `Graph`: each node's state, and last step's output of every node that
    starts a feedback edge."""

    nodes: dict[str, PyTree[Array]]
    feedback: dict[str, Array]


def _fmt(edges) -> str:
    return ", ".join(f"({s!r} -> {d!r})" for s, d in edges)


def _dense(x):
    return x.to_dense() if isinstance(x, SpikeEvents) else x


class Graph(AbstractStatefulLayer, AbstractEventReader):
    """A directed graph of layers, run one time step at a time (NIR semantics).

    Nodes are any layers `snnx.Sequential` accepts: stateless ones (`equinox.nn.Linear`,
    `Conv2d`, plain functions) and stateful ones (neurons, `snnx.Delay`, `snnx.Recurrent`,
    nested `Graph`s). Two pseudo-nodes, named by `input` and `output`, are the graph's
    entry and exit. Every edge `(src, dst)` carries `src`'s output to `dst`;
    **several edges into one node are summed**.

    **Cycles.** Edges that close a cycle (found by a depth-first search from the input,
    following edges in the order given) are *feedback* edges: they carry the source's
    output of the **previous** step (zero at the first step), a one-step delay like
    `snnx.Recurrent`. All other edges deliver within the same step, in topological order.
    So a neuron with a Linear feedback edge computes
    $s_t = \\text{neuron}(x_t + W s_{t-1})$.

    ```python
    graph = snnx.Graph(
        {"fc": eqx.nn.Linear(4, 3, key=k1), "lif": snnx.LIF(tau=5.0),
         "rec": eqx.nn.Linear(3, 3, use_bias=False, key=k2)},
        [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
    )
    ys, state = snnx.run(graph, xs)      # step-major: the graph has a feedback edge
    ```

    **Execution.** `snnx.run` runs a graph without feedback edges node-major (like
    `snnx.Sequential`: each node over all time steps, one matmul per `Linear`), and a graph
    with feedback edges step by step. Both orders give the same numbers.

    **Arguments:**

    - `nodes`: a mapping from node name to layer.
    - `edges`: `(src, dst)` pairs of node names (or the `input`/`output` names).
    - `input`: the name of the entry pseudo-node. Default `"input"`.
    - `output`: the name of the exit pseudo-node. Default `"output"`.

    **Raises:**

    `ValueError` for an edge naming an unknown node, a duplicate edge, an edge into the
    input or out of the output, or a node that no path from the input reaches.
    """

    nodes: dict[str, Any]
    edges: tuple[tuple[str, str], ...] = eqx.field(static=True)
    input: str = eqx.field(static=True)
    output: str = eqx.field(static=True)
    order: tuple[str, ...] = eqx.field(static=True)
    feedback_edges: tuple[tuple[str, str], ...] = eqx.field(static=True)

    def __init__(
        self,
        nodes: Mapping[str, Callable],
        edges: Sequence[tuple[str, str]],
        *,
        input: str = "input",
        output: str = "output",
    ):
        if not isinstance(nodes, Mapping):
            raise TypeError(
                f"`nodes` must be a mapping from names to layers, got {type(nodes).__name__}."
            )
        nodes = {str(k): v for k, v in nodes.items()}
        for name in (input, output):
            if name in nodes:
                raise ValueError(
                    f"`nodes` has a node named {name!r}, the name of the graph's "
                    f"{'input' if name == input else 'output'}; rename the node or pass "
                    f"another `{'input' if name == input else 'output'}=` name."
                )
        for name, layer in nodes.items():
            check_layer(f"Graph node {name!r}", layer, "be a layer, neuron or function")
        try:
            edges = tuple((str(s), str(d)) for s, d in edges)
        except (TypeError, ValueError):
            raise TypeError(f"`edges` must be a sequence of (src, dst) pairs, got {edges!r}.")
        known = set(nodes) | {input, output}
        seen = set()
        for s, d in edges:
            for end in (s, d):
                if end not in known:
                    raise ValueError(
                        f"Graph edge ({s!r} -> {d!r}) names the unknown node {end!r}; known "
                        f"nodes are {sorted(known)}."
                    )
            if d == input:
                raise ValueError(f"Graph edge ({s!r} -> {d!r}) leads into the input node.")
            if s == output:
                raise ValueError(f"Graph edge ({s!r} -> {d!r}) leaves the output node.")
            if (s, d) in seen:
                raise ValueError(f"Graph edge ({s!r} -> {d!r}) is given twice; give it once.")
            seen.add((s, d))

        succ = {n: [] for n in known}
        for s, d in edges:
            succ[s].append(d)
        colour, post, back = {}, [], []

        def visit(n):
            colour[n] = 1
            for m in succ[n]:
                c = colour.get(m, 0)
                if c == 0:
                    visit(m)
                elif c == 1:
                    back.append((n, m))
            colour[n] = 2
            post.append(n)

        visit(input)
        unreached = [n for n in list(nodes) + [output] if n not in colour]
        if unreached:
            raise ValueError(
                f"Graph nodes {unreached} are not reachable from the input node {input!r}; "
                f"connect them or remove them."
            )
        self.nodes = nodes
        self.edges = edges
        self.input = input
        self.output = output
        self.order = tuple(reversed(post))
        self.feedback_edges = tuple(back)

    def _incoming(self, name):
        fwd = [(s, d) for s, d in self.edges if d == name and (s, d) not in self.feedback_edges]
        back = [(s, d) for s, d in self.edges if d == name and (s, d) in self.feedback_edges]
        return fwd, back

    def init_state(self, shape, dtype=jnp.float32) -> GraphState:
        """The resting state of every node for per-step inputs of `shape`.

        Shapes are propagated through the graph (nothing is computed); a node that cannot
        take its input, or edges that bring different shapes into one node, are reported
        with the node's name and the edges.

        **Arguments:**

        - `shape`: the shape of one time step of one sample's input.
        - `dtype`: the floating dtype of the states. Default float32.

        **Returns:**

        A `GraphState`.
        """
        return self._propagate(shape, dtype)[0]

    def node_shapes(self, shape, dtype=jnp.float32) -> dict[str, tuple[tuple[int, ...], ...]]:
        """The per-step `(input_shape, output_shape)` of every node for inputs of `shape`.

        **Arguments:**

        - `shape`: the shape of one time step of one sample's input.
        - `dtype`: the floating dtype. Default float32.

        **Returns:**

        A dict from node name (the output pseudo-node included) to a pair of shapes.
        """
        return self._propagate(shape, dtype)[2]

    def output_shape(self, shape, dtype=jnp.float32) -> tuple[int, ...]:
        """The per-step output shape for a per-step input of `shape`."""
        return tuple(self._propagate(shape, dtype)[1].shape)

    def _propagate(self, shape, dtype):
        shape = shape_tuple(shape)
        structs = {self.input: jax.ShapeDtypeStruct(shape, dtype)}
        in_shapes, states = {}, {}
        for name in self.order:
            if name == self.input:
                continue
            fwd, back = self._incoming(name)
            if not fwd:
                raise ValueError(
                    f"Graph node {name!r} receives input only through the feedback edge(s) "
                    f"{_fmt(back)}, so its input shape is unknown; give it an input from the "
                    f"graph's input side."
                )
            got = {e: tuple(structs[e[0]].shape) for e in fwd}
            if len(set(got.values())) > 1:
                shown = ", ".join(f"({s!r} -> {d!r}) brings {sh}" for (s, d), sh in got.items())
                raise ValueError(
                    f"Graph node {name!r} sums inputs of different shapes: {shown}; the edges "
                    f"into one node must carry the same shape."
                )
            x = jax.ShapeDtypeStruct(next(iter(got.values())), dtype)
            in_shapes[name] = tuple(x.shape)
            if name == self.output:
                structs[name] = x
                continue
            layer = self.nodes[name]
            try:
                s, y = propagate(layer, x, dtype)
            except Exception as e:
                raise ValueError(
                    f"Graph node {name!r} ({layer_name(layer)}) cannot take an input of shape "
                    f"{tuple(x.shape)} arriving on edge(s) {_fmt(fwd)}: {type(e).__name__}: {e}"
                ) from e
            if not isinstance(y, jax.ShapeDtypeStruct):
                raise TypeError(
                    f"Graph node {name!r} ({layer_name(layer)}) must return one array per "
                    f"step, got {jax.tree.structure(y)}."
                )
            states[name] = s
            structs[name] = y
        feedback = {}
        for s, d in self.feedback_edges:
            if tuple(structs[s].shape) != in_shapes[d]:
                raise ValueError(
                    f"Graph feedback edge ({s!r} -> {d!r}) carries shape "
                    f"{tuple(structs[s].shape)}, but node {d!r} takes shape {in_shapes[d]}; "
                    f"the edges into one node must carry the same shape."
                )
            feedback[s] = jnp.zeros(structs[s].shape, structs[s].dtype)
        shapes = {n: (in_shapes[n], tuple(structs[n].shape)) for n in in_shapes}
        return GraphState(states, feedback), structs[self.output], shapes

    def __call__(
        self, x: Array, state: GraphState, *, key: PRNGKeyArray | None = None
    ) -> tuple[Array, GraphState]:
        """Advance the whole graph by one time step.

        **Arguments:**

        - `x`: one time step of one sample's input.
        - `state`: from `init_state` or a previous call.
        - `key`: optional PRNG key, split once per node.

        **Returns:**

        `(output, new_state)`.
        """
        if not isinstance(state, GraphState):
            raise TypeError(
                f"`state` must be the `GraphState` from `graph.init_state(shape)`, got "
                f"{type(state).__name__}."
            )
        names = [n for n in self.order if n not in (self.input, self.output)]
        keys = [None] * len(names) if key is None else list(jax.random.split(key, len(names)))
        values = {self.input: x}
        new_states = dict(state.nodes)
        for name in self.order:
            if name == self.input:
                continue
            fwd, back = self._incoming(name)
            terms = [values[s] for s, _ in fwd] + [state.feedback[s] for s, _ in back]
            h = terms[0]
            for t in terms[1:]:
                h = h + t
            if name == self.output:
                values[name] = h
                continue
            layer = self.nodes[name]
            k = keys[names.index(name)]
            if is_stateful(layer):
                values[name], new_states[name] = layer(h, state.nodes[name], key=k)
            else:
                values[name] = call_stateless(layer, h, k)
        feedback = {s: values[s] for s in state.feedback}
        return values[self.output], GraphState(new_states, feedback)

    def has_all_steps(self) -> bool:
        """False for a graph with feedback edges: each step needs the previous one's output,
        so it runs step by step (also inside a layer-major `Sequential`)."""
        return not self.feedback_edges

    def all_steps(self, xs, state: GraphState, *, keys, context):
        """Run a graph without feedback edges over a whole sequence, node after node.

        Every node runs over all time steps the way `snnx.run` runs a layer (stateless
        nodes at once, one matmul per `Linear`; stateful ones scanned or by their own
        all-steps form). Same numbers as stepping the graph: node `i` at step `t` gets
        `split(keys[t], n_nodes)[i]`, as in `__call__`. An `snnx.SpikeEvents` input reaches
        the nodes fed by the input alone as events, and is densified where it is summed.

        **Raises:**

        `ValueError` for a graph with feedback edges.
        """
        if self.feedback_edges:
            raise ValueError(
                f"A graph with feedback edges {_fmt(self.feedback_edges)} must run step-major "
                f"(`snnx.run(..., mode='step')`): each step needs the previous step's output."
            )
        names = [n for n in self.order if n not in (self.input, self.output)]
        node_keys = None
        if keys is not None:
            node_keys = jax.vmap(lambda k: jax.random.split(k, len(names)))(keys)
        values = {self.input: xs}
        new_states, traces = dict(state.nodes), {}
        for name in self.order:
            if name == self.input:
                continue
            fwd, _ = self._incoming(name)
            h = values[fwd[0][0]]
            for s, _ in fwd[1:]:
                h = _dense(h) + _dense(values[s])
            if name == self.output:
                values[name] = _dense(h)
                continue
            k = None if node_keys is None else node_keys[:, names.index(name)]
            values[name], new_states[name], traces[name] = context.run_layer(
                self.nodes[name], h, state.nodes[name], k
            )
        trace = GraphState(traces, {}) if context.record else None
        return values[self.output], GraphState(new_states, state.feedback), trace
