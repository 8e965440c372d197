#!/usr/bin/env python3
"""Fails when the source files of a crate import each other, directly or through a cycle.

Usage: python3 scripts/import_circles.py [ROOT]   (ROOT: the workspace, by default this script's)

Each crate is a folder holding Cargo.toml and src/; each .rs file under src/ is one module, named
by its place there (lib.rs, main.rs and mod.rs name their folder). A file imports the module of
another file when it names it by a path that starts at `crate::`, `$crate::`, `super::` or
`self::`: in a `use` declaration (trees such as `use crate::a::{b, c::d}` included) or inline in
the code. A path names the deepest module file it walks through, so `crate::cpu::int8::sat8`
imports cpu/int8.rs. A file naming a module that encloses it (its parent, which declares it with
`mod`, or any ancestor) imports nothing by that: a child reading its parent's items is how Rust
modules nest. `mod` declarations themselves are not imports.

Prints each circle (a set of two or more files each reachable from the others) with one cycle
through it and the line of every import on that cycle, and exits 1 when there is any.
"""

import os
import re
import sys
from collections import deque

PRUNED = {"target", "node_modules", "dist"}
ROOT_FILES = {"lib.rs", "main.rs", "mod.rs"}
# A path from the crate root, the parent module or the module itself, with at least one name after.
PATH_START = re.compile(r"(?<![\w:])\$?(crate|super|self)((?:\s*::\s*\w+)+)")
USE_DECL = re.compile(r"\buse\s+(\$?(?:crate|super|self)\s*::[^;]*);")
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def crate_sources(root):
    """The src/ folder of every crate under `root`."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(s for s in subfolders if s not in PRUNED and not s.startswith("."))
        if "Cargo.toml" in names and os.path.isdir(os.path.join(folder, "src")):
            yield os.path.join(folder, "src")


def module_path(src, file):
    """The module a file holds, as a tuple of names from the crate root."""
    parts = os.path.relpath(file, src).split(os.sep)
    if parts[-1] in ROOT_FILES:
        return tuple(parts[:-1])
    return tuple(parts[:-1]) + (parts[-1][: -len(".rs")],)


def without_comments(text):
    """`text` with line and block comments blanked, line breaks kept (for line numbers)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def use_tree_paths(tree):
    """The paths of a use tree: `a::{b, c::{d, e as f}}` gives a::b, a::c::d, a::c::e."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, body = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    paths = []
    for item in filter(None, items):
        paths += use_tree_paths(prefix + item)
    return paths


def named_paths(text):
    """(line, path) of every crate-, super- or self-relative path in `text`."""
    found = []
    for m in USE_DECL.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        found += [(line, p) for p in use_tree_paths(m.group(1))]
    for m in PATH_START.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        found.append((line, m.group(1) + re.sub(r"\s+", "", m.group(2))))
    return found


def imported_module(here, path, modules):
    """The deepest module with a file that `path`, named in module `here`, walks through."""
    names = path.lstrip("$").split("::")
    if names[0] == "crate":
        at, rest = (), names[1:]
    else:
        at, rest = here, names
        while rest and rest[0] in ("super", "self"):
            at = at[:-1] if rest[0] == "super" else at
            rest = rest[1:]
    deepest = None
    for name in rest:
        at = at + (name,)
        if at not in modules:
            break
        deepest = at
    return deepest


def import_graph(src):
    """Every file under `src` and, per file, the files it imports with the line of the first import."""
    files = []
    for folder, subfolders, names in os.walk(src):
        subfolders[:] = sorted(s for s in subfolders if s not in PRUNED)
        files += [os.path.join(folder, name) for name in sorted(names) if name.endswith(".rs")]
    modules = {module_path(src, f): f for f in files}
    graph = {f: {} for f in files}
    for f in files:
        here = module_path(src, f)
        with open(f, encoding="utf-8", errors="replace") as source:
            text = without_comments(source.read())
        for line, path in named_paths(text):
            target = imported_module(here, path, modules)
            if target is None or here[: len(target)] == target:
                continue
            graph[f].setdefault(modules[target], line)
    return graph


def strongly_connected(graph):
    """The strongly connected sets of `graph` with two or more files (Tarjan, without recursion)."""
    index, low, on_stack, stack, sets = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    sets.append(sorted(members))
    return sets


def a_cycle(graph, members):
    """One cycle through the first of `members`, staying within them (breadth first: a shortest one)."""
    inside, first = set(members), members[0]
    came_from = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt not in inside or nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt == first:
                cycle = [first]
                while cycle[-1] != first or len(cycle) == 1:
                    cycle.append(came_from[cycle[-1]])
                return cycle[::-1]
            queue.append(nxt)
    return [first]


def name(file):
    """A file's path from the workspace, as the messages show it."""
    return os.path.relpath(file, ROOT)


def main():
    circles = 0
    for src in crate_sources(ROOT):
        graph = import_graph(src)
        for members in strongly_connected(graph):
            circles += 1
            print(f"import circle among {', '.join(name(f) for f in members)}:")
            cycle = a_cycle(graph, members)
            for a, b in zip(cycle, cycle[1:]):
                print(f"  {name(a)}:{graph[a][b]} imports {name(b)}")
    if circles:
        print(
            f"{circles} import circle(s): files of a crate must not import each other directly or through "
            "other files; move what both need into a module of its own that neither imports back",
            file=sys.stderr,
        )
        return 1
    print("no import circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
