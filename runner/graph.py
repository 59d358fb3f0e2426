"""Pure functions over a directed graph given as node ids and (parent, child) edges.

The spec validator, the orchestrator and the editor's "run from here" all walk the same graph, so
the walks live here once. Edges whose ends are not among `nodes` are ignored by the functions that
take `nodes`; callers validate edges first (`runner.spec`) and pass only edges between known nodes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

Edge = tuple[str, str]


def parents_of(nodes: Iterable[str], edges: Iterable[Edge]) -> dict[str, list[str]]:
    """Map every node to its parents, each listed once, in the order of the edges."""
    return _adjacency(nodes, ((child, parent) for parent, child in edges))


def children_of(nodes: Iterable[str], edges: Iterable[Edge]) -> dict[str, list[str]]:
    """Map every node to its children, each listed once, in the order of the edges."""
    return _adjacency(nodes, edges)


def _adjacency(nodes: Iterable[str], pairs: Iterable[Edge]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {node: [] for node in nodes}
    # Two edges between the same nodes (two ports) still make one parent.
    seen: set[Edge] = set()
    for source, target in pairs:
        if source in result and target in result and (source, target) not in seen:
            seen.add((source, target))
            result[source].append(target)
    return result


def topological_order(nodes: Sequence[str], edges: Iterable[Edge]) -> list[str]:
    """Order nodes so that every parent comes before its children.

    Stable: among nodes that are ready at the same time, the one earlier in `nodes` comes first,
    so the same document always gives the same order. Raises ValueError when the graph has a
    cycle.
    """
    edges = list(edges)
    index = {node: i for i, node in enumerate(nodes)}
    children = children_of(nodes, edges)
    waiting = {node: 0 for node in index}
    for node_children in children.values():
        for child in node_children:
            waiting[child] += 1
    ready = [index[node] for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(order) < len(index):
        cycle = find_cycle(nodes, edges)
        raise ValueError(f"the graph has a cycle: {format_cycle(cycle or [])}")
    return order


def find_cycle(nodes: Sequence[str], edges: Iterable[Edge]) -> list[str] | None:
    """Return the nodes of one cycle in walking order (["a", "b", "c"] for a->b->c->a), or None.

    A self-loop is a cycle of one node. The search starts from nodes in input order, so the
    answer is deterministic.
    """
    children = children_of(nodes, edges)
    # Iterative depth-first search: a deep chain must not hit Python's recursion limit.
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    for root in nodes:
        if root in state:
            continue
        path: list[str] = [root]
        iterators = [iter(children[root])]
        state[root] = 1
        while path:
            child = next(iterators[-1], None)
            if child is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(child) == 1:
                return path[path.index(child):]
            elif child not in state:
                state[child] = 1
                path.append(child)
                iterators.append(iter(children[child]))
    return None


def format_cycle(cycle: Sequence[str]) -> str:
    """Write a cycle as people read it: "a -> b -> c -> a"."""
    return " -> ".join([*cycle, cycle[0]]) if cycle else ""


def downstream(start: Iterable[str], edges: Iterable[Edge]) -> set[str]:
    """The start nodes plus every node reachable from them."""
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    reached = set(start)
    todo = list(reached)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in reached:
                reached.add(child)
                todo.append(child)
    return reached
