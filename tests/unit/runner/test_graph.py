from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.graph import (
    children_of,
    downstream,
    find_cycle,
    format_cycle,
    parents_of,
    topological_order,
)


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1) -> tuple[list[str], list[tuple[str, str]]]:
    """A random DAG: edges go only from a lower to a higher index; node order is shuffled so
    that the input order is not already a topological order."""
    count = draw(st.integers(min_value=min_nodes, max_value=12))
    names = [f"n{i}" for i in range(count)]
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    order = draw(st.permutations(names))
    return list(order), [(names[i], names[j]) for i, j in chosen]


def _is_cycle_of(cycle: list[str], edges: list[tuple[str, str]]) -> bool:
    links = set(edges)
    return all((a, b) in links for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True))


@given(dags())
def test_random_dags_are_acyclic_and_ordered_parents_first(dag) -> None:
    nodes, edges = dag
    assert find_cycle(nodes, edges) is None
    order = topological_order(nodes, edges)
    assert sorted(order) == sorted(nodes)
    position = {node: i for i, node in enumerate(order)}
    assert all(position[parent] < position[child] for parent, child in edges)


@given(dags(min_nodes=2), st.data())
def test_a_back_edge_makes_a_cycle_through_both_of_its_ends(dag, data) -> None:
    nodes, edges = dag
    names = sorted(nodes, key=lambda n: int(n[1:]))
    low = data.draw(st.integers(0, len(names) - 2))
    high = data.draw(st.integers(low + 1, len(names) - 1))
    # Make sure a path low -> high exists, then close it with the back edge high -> low.
    chain = [(names[i], names[i + 1]) for i in range(low, high)]
    edges = [*edges, *(e for e in chain if e not in edges), (names[high], names[low])]
    cycle = find_cycle(nodes, edges)
    assert cycle is not None
    assert len(set(cycle)) == len(cycle)
    assert _is_cycle_of(cycle, edges)
    # Every cycle in this graph uses the only back edge, so it holds both of its ends.
    assert {names[low], names[high]} <= set(cycle)
    with pytest.raises(ValueError, match="cycle"):
        topological_order(nodes, edges)


@given(dags(), st.data())
def test_downstream_is_closed_under_children(dag, data) -> None:
    nodes, edges = dag
    start = data.draw(st.lists(st.sampled_from(nodes), max_size=3))
    reached = downstream(start, edges)
    assert set(start) <= reached
    children = children_of(nodes, edges)
    assert all(set(children[node]) <= reached for node in reached)


def test_it_breaks_ties_by_the_input_order() -> None:
    assert topological_order(["c", "a", "b"], []) == ["c", "a", "b"]
    assert topological_order(["c", "a", "b"], [("b", "c")]) == ["a", "b", "c"]


def test_it_names_a_cycle_in_walking_order() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a")]
    assert find_cycle(["a", "b", "c"], edges) == ["a", "b", "c"]
    assert format_cycle(["a", "b", "c"]) == "a -> b -> c -> a"
    with pytest.raises(ValueError, match="a -> b -> c -> a"):
        topological_order(["a", "b", "c"], edges)


def test_a_self_loop_is_a_cycle_of_one() -> None:
    assert find_cycle(["a", "b"], [("a", "b"), ("b", "b")]) == ["b"]


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    nodes = [f"n{i}" for i in range(5000)]
    edges = list(zip(nodes, nodes[1:], strict=False))
    assert find_cycle(nodes, edges) is None
    assert topological_order(list(reversed(nodes)), edges) == nodes
    assert find_cycle(nodes, [*edges, (nodes[-1], nodes[0])]) == nodes


def test_parents_and_children_list_each_neighbour_once_and_ignore_unknown_nodes() -> None:
    edges = [("a", "b"), ("a", "b"), ("c", "b"), ("x", "b")]
    assert parents_of(["a", "b", "c"], edges) == {"a": [], "b": ["a", "c"], "c": []}
    assert children_of(["a", "b", "c"], edges) == {"a": ["b"], "b": [], "c": ["b"]}


def test_downstream_includes_the_start_nodes() -> None:
    edges = [("a", "b"), ("b", "c"), ("x", "y")]
    assert downstream(["b"], edges) == {"b", "c"}
    assert downstream([], edges) == set()
