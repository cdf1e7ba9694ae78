"""Import circles between the modules of one crate: module A names B (through `crate::`,
`super::`, `self::` or a bare child path) and B, through any chain, names A. Every file is a
module; `#[cfg(test)]` modules and comments are left out; names the crate re-exports from the
layers below (`use runbook_core::{records, ..}`) are not its own modules. `--deps` also prints
each module's imports.
  scripts/module-circles.py CRATE_SRC_DIR [--deps]     e.g. crates/runbook-runtime/src"""
import os, re, sys
root = sys.argv[1].rstrip('/')
show_deps = '--deps' in sys.argv
mods = {}  # module path tuple -> file
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        rel = os.path.relpath(os.path.join(dp, f), root)[:-3].split(os.sep)
        if rel[-1] == 'mod': rel = rel[:-1]
        if rel in (['lib'], ['main']): rel = []
        mods[tuple(rel)] = os.path.join(dp, f)
def strip_tests(t):
    m = re.search(r'#\[cfg\(test\)\]\s*mod \w+\s*\{', t)
    return t[:m.start()] if m else t
def top_names(g):
    # names at depth 1 inside a brace group
    out, depth, tok = [], 0, ''
    for ch in g:
        if ch == '{':
            depth += 1
            if depth == 2 and tok.strip(): out.append(tok.strip()); tok = None
            if depth == 1: tok = ''; continue
        elif ch == '}': depth -= 1
        if depth == 1:
            if ch == ',':
                if tok and tok.strip(): out.append(tok.strip())
                tok = ''
            elif tok is not None: tok += ch
        elif depth == 0: break
    if tok and tok.strip(): out.append(tok.strip())
    return [re.split(r'::|\s', n.strip())[0] for n in out if n.strip()]
def resolve(base, first_names):
    """base: module tuple; names: first segment(s) under it -> target module tuples"""
    res = set()
    for n in first_names:
        if n in ('self', '*', ''): res.add(base); continue
        cand = base + (n,)
        res.add(cand if cand in mods else base)
    return res
graph = {}
# the layers below, re-exported by lib.rs under their old names: not this crate's modules
LOWER = set()
lib = open(mods[()]).read()
lib = re.sub(r'\buse runbook_(\w+) as (\w+)', r'use runbook_\1::{\2}', lib)
for g in re.findall(r'(?:pub\(crate\) )?use runbook_\w+(?:::\{([^}]*)\}| as (\w+))', lib):
    LOWER |= {x.strip() for x in (g[0] or g[1]).split(',') if x.strip()}
for m, f in mods.items():
    t = strip_tests(open(f).read())
    t = re.sub(r'//[^\n]*', '', t)  # comments name modules without importing them
    deps = set()
    for mm in re.finditer(r'\b((?:crate|self|super)(?:::(?:super|self))*)::(\{|[A-Za-z_][A-Za-z0-9_]*)', t):
        head = mm.group(1).split('::')
        base = m
        for h in head:
            if h == 'crate': base = ()
            elif h == 'super': base = base[:-1]
            elif h == 'self': pass
        if mm.group(2) == '{':
            names = top_names(t[mm.end()-1:])
            # group like {App, fleet::Fleet}: resolve nested module names too
        else:
            names = [mm.group(2)]
            # go deeper: crate::ui::live::x
            rest = t[mm.end():]
            path = [mm.group(2)]
            while True:
                n2 = re.match(r'::([a-z_][a-z0-9_]*)', rest)
                if not n2 or base + tuple(path + [n2.group(1)]) not in mods: break
                path.append(n2.group(1)); rest = rest[n2.end():]
            names = ['::'.join(path)]
        for n in names:
            parts = tuple(n.split('::')) if n not in ('self', '*') else ()
            tgt = base + parts
            if base == () and parts and parts[0] in LOWER: continue
            while tgt not in mods: tgt = tgt[:-1]
            deps.add(tgt)
    # bare paths to a child module (`live::events` in ui/mod.rs)
    for c in mods:
        if len(c) == len(m) + 1 and c[:len(m)] == m and re.search(r'(?<![:\w])' + c[-1] + r'::', t):
            deps.add(c)
    # a module does not depend on itself or (for the shape) on its own children
    graph[m] = sorted(d for d in deps if d != m)
name = lambda m: '::'.join(m) or '(lib)'
for m in sorted(graph) if show_deps else []:
    print(f"{name(m)}: {' '.join(name(d) for d in graph[m])}")
# Circles are looked for among siblings, at every level: inside each module, its children (each
# with everything below it) and the module's own file. An edge u -> v counts at the level of their
# lowest common ancestor. A module naming its own children is its contents (`pub use child::X`),
# not an import, so only the children's edges to their parent's file count.
levels = {}
for u, targets in graph.items():
    for v in targets:
        k = 0
        while k < min(len(u), len(v)) and u[k] == v[k]:
            k += 1
        top = u[:k]
        a = u[: k + 1] if len(u) > k else top
        b = v[: k + 1] if len(v) > k else top
        if a == b or a == top:
            continue
        levels.setdefault(top, {}).setdefault(a, set()).add(b)


def tarjan(g):
    idx, low, st, on, out, i = {}, {}, [], set(), [], [0]

    def sc(v):
        idx[v] = low[v] = i[0]
        i[0] += 1
        st.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in idx:
                sc(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop()
                on.discard(w)
                c.append(w)
                if w == v:
                    break
            if len(c) > 1:
                out.append(c)

    for v in list(g):
        if v not in idx:
            sc(v)
    return out


sys.setrecursionlimit(10000)
sccs = [c for top in sorted(levels) for c in tarjan(levels[top])]
print(f"circles: {len(sccs)}" if sccs else "circles: none")
for c in sccs:
    print("  " + " <-> ".join(sorted(name(x) for x in c)))
