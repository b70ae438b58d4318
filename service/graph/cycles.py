"""Cycles in the dependency graph: strongly connected components (Tarjan's algorithm, without
recursion, so it terminates on any graph and never overflows the stack), each named by one
ring that walks through it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ccstate.service.graph.model import Cycle


def find_cycles(nodes: Iterable[str], successors: Callable[[str], list[str]]) -> tuple[Cycle, ...]:
    """Every group of resources that depend on each other (and every resource that depends on
    itself), sorted; each with a ``path`` that walks one ring through the group."""
    found = [
        Cycle(tuple(sorted(group)), _ring(group, successors))
        for group in _components(sorted(nodes), successors)
        if len(group) > 1 or group[0] in successors(group[0])
    ]
    return tuple(sorted(found, key=lambda c: c.members))


def _components(nodes: list[str], successors: Callable[[str], list[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = successors(node)
            for offset, child in enumerate(children[position:], start=position):
                if child not in index:
                    work.append((node, offset + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                if low[node] == index[node]:
                    group: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(group)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return groups


def _ring(group: list[str], successors: Callable[[str], list[str]]) -> tuple[str, ...]:
    """A shortest walk from the group's first member back to itself, inside the group."""
    members = set(group)
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in successors(node):
                if child not in members:
                    continue
                if child == start:
                    path = [start, node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return tuple(reversed(path))
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return (start, start)
