#!/usr/bin/env python3
"""Import circles between the modules of each crate of the host: module A names B (`crate::b`,
`use crate::{b, ..}`, `super::b`) and B, through any path, names A. Reports the strongly
connected components at two levels: the crate's top-level modules, and the submodules inside
each top-level module directory. Text-level, like a reader following `use` lines; `#[cfg(test)]`
modules count too (a test that needs the module above it is still a circle to read around).
  scripts/module-circles.py [CRATE_SRC_DIR ...]   (default: host/src and crates/*/src)"""
import glob
import os
import re
import sys


def modules(src):
    """Top-level module name -> its files (name.rs and name/**/*.rs)."""
    out = {}
    for entry in os.listdir(src):
        name = entry[:-3] if entry.endswith(".rs") else entry
        if name in ("main", "lib") or entry.startswith("."):
            continue
        path = os.path.join(src, entry)
        if os.path.isdir(path):
            files = glob.glob(os.path.join(path, "**", "*.rs"), recursive=True)
        elif entry.endswith(".rs"):
            files = [path]
        else:
            continue
        out.setdefault(name, []).extend(files)
    return out


def named(text, prefix):
    """Module names following `prefix::` either directly or inside a `{...}` group."""
    found = set()
    for m in re.finditer(prefix + r"::(\{[^;]*?\}|[a-z_][a-z0-9_]*)", text, re.S):
        group = m.group(1)
        if group.startswith("{"):
            found.update(re.findall(r"(?:^|[{,])\s*([a-z_][a-z0-9_]*)", group))
        else:
            found.add(group)
    return found


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def report(src):
    mods = modules(src)
    graph = {}
    for name, files in mods.items():
        text = "".join(open(f).read() for f in files)
        refs = named(text, "crate")
        # In src/name.rs and src/name/mod.rs, `super::` is the crate root.
        for f in files:
            if os.path.dirname(f) == src.rstrip("/") or f.endswith(os.path.join(name, "mod.rs")):
                refs |= named(open(f).read(), "super")
        graph[name] = (refs & set(mods)) - {name}
    circles = sccs(graph)
    # Inside each top-level directory: submodule files naming each other.
    for name in mods:
        d = os.path.join(src, name)
        if not os.path.isdir(d):
            continue
        subs = {f[:-3]: os.path.join(d, f) for f in os.listdir(d) if f.endswith(".rs") and f != "mod.rs"}
        subs.update({f: os.path.join(d, f) for f in os.listdir(d) if os.path.isdir(os.path.join(d, f))})
        sub_graph = {}
        for sub, path in subs.items():
            files = glob.glob(os.path.join(path, "**", "*.rs"), recursive=True) if os.path.isdir(path) else [path]
            text = "".join(open(f).read() for f in files)
            refs = named(text, "super") | named(text, "crate::" + name)
            sub_graph[sub] = (refs & set(subs)) - {sub}
        circles += [[f"{name}/{s}" for s in c] for c in sccs(sub_graph)]
    return len(mods), circles


def main():
    roots = sys.argv[1:] or ["host/src"] + sorted(glob.glob("crates/*/src"))
    total = 0
    for src in roots:
        count, circles = report(src)
        total += len(circles)
        print(f"{src}: {count} top-level modules, {len(circles)} circles")
        for c in circles:
            print("   ", " <-> ".join(c))
    print(f"total: {total} circles")


if __name__ == "__main__":
    main()
