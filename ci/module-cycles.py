#!/usr/bin/env python3
"""Fails on an import cycle between the modules of any crate of the workspace.

Edges: a `use` or a path reference (`crate::`, `super::`, `self::`, braces
expanded) in one file's module that names another module of the same crate
(or an item in it). Not edges: `mod` declarations, and a module's
re-exports of its own children (`pub use child::Item;`). Each crate root
(src/lib.rs, src/main.rs, crates/*/src/lib.rs and main.rs) is its own
crate; files of a crate are found by following `mod` declarations.

    python3 ci/module-cycles.py [--root DIR]   exit 1 and the cycles, if any

Prints each cycle as its modules (a strongly connected component) and, for
each edge inside it, the file and line that makes it.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def strip(text):
    """The code without comments, string and char literals (kept line for line)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and re.match(r"'\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\})'", text[i:i + 12])):
            m = re.match(r"'(\\x[0-9a-fA-F]{2}|\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


MOD_DECL = re.compile(r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
INLINE_MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*\{", re.M)
PATH_ATTR = re.compile(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;')


def crate_files(root_file):
    """{module path tuple: file} of the crate rooted at root_file."""
    files = {}

    def visit(mod, path, is_dir_owner):
        files[mod] = path
        raw = open(path, encoding="utf-8").read()
        text = strip(raw)
        base = os.path.dirname(path)
        if not is_dir_owner:
            base = os.path.join(base, os.path.splitext(os.path.basename(path))[0])
        explicit = {m.group(2): m.group(1) for m in PATH_ATTR.finditer(raw)}
        for m in MOD_DECL.finditer(text):
            name = m.group(1)
            if name in explicit:
                child = os.path.join(os.path.dirname(path), explicit[name])
                if os.path.exists(child):
                    visit(mod + (name,), child, False)
                continue
            for cand, owner in ((os.path.join(base, name + ".rs"), False), (os.path.join(base, name, "mod.rs"), True)):
                if os.path.exists(cand):
                    visit(mod + (name,), cand, owner)
                    break

    visit((), root_file, True)
    return files


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (aliases dropped)."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas[A-Za-z_][A-Za-z0-9_]*", "", tree)
    out = []

    def go(prefix, t):
        # split top-level commas
        parts, depth, cur = [], 0, ""
        for ch in t:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if "{" in p:
                head, rest = p.split("{", 1)
                go(prefix + head, rest[: rest.rfind("}")])
            else:
                out.append(prefix + p)

    go("", tree)
    return out


USE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
PATH_REF = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def resolve(mod, path, modules):
    """The module (tuple) a path names, from module `mod`, or None."""
    segs = path.split("::")
    if segs[0] == "crate":
        cur, rest = (), segs[1:]
    elif segs[0] in ("self", "super"):
        cur = mod
        i = 0
        while i < len(segs) and segs[i] in ("self", "super"):
            if segs[i] == "super":
                if not cur:
                    return None
                cur = cur[:-1]
            i += 1
        rest = segs[i:]
    else:
        # a plain path: a child module of this one (`use child::X`)
        cur, rest = mod, segs
        if (mod + (segs[0],)) not in modules:
            return None
    best = cur if cur in modules else None
    for s in rest:
        cur = cur + (s,)
        if cur in modules:
            best = cur
        else:
            break
    return best


def inline_mods(text):
    """[(start, end, name)] of the `mod NAME { ... }` blocks of a file."""
    spans = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        spans.append((m.start(), i, m.group(1)))
    return spans


def module_at(mod, spans, pos):
    """The module a position of the file is in: the file's, or an inline
    child's (`mod tests { use super::*; }` speaks from `tests`)."""
    inner = [(s, e, n) for (s, e, n) in spans if s <= pos <= e]
    inner.sort()
    return mod + tuple(n for (_, _, n) in inner)


def edges_of(files):
    modules = set(files)
    edges = {}
    for mod, path in files.items():
        text = strip(open(path, encoding="utf-8").read())
        spans = inline_mods(text)
        # Inline `mod tests { ... }` blocks count as the file's module.
        line_of = lambda pos: text.count("\n", 0, pos) + 1
        seen = set()
        for m in USE.finditer(text):
            is_pub = bool(m.group(1))
            here = module_at(mod, spans, m.start())
            for p in expand_use(m.group(2)):
                target = resolve(here, p, modules | {here})
                if target is None or target[: len(mod)] == mod and target not in modules or target == mod:
                    continue
                # a re-export of one's own child (or deeper descendant)
                if is_pub and target[: len(mod)] == mod and len(target) > len(mod):
                    continue
                # using one's own descendant privately is still an edge
                key = (target, line_of(m.start()))
                if key not in seen:
                    seen.add(key)
                    edges.setdefault((mod, target), []).append(f"{os.path.relpath(path, ROOT)}:{line_of(m.start())}")
        for m in PATH_REF.finditer(text):
            # skip the `use` lines, already counted
            ls = text.rfind("\n", 0, m.start()) + 1
            if re.match(r"\s*(pub(\([^)]*\))?\s+)?use\s", text[ls:]):
                continue
            here = module_at(mod, spans, m.start())
            target = resolve(here, m.group(1), modules | {here})
            if target is None or target[: len(mod)] == mod and target not in modules or target == mod:
                continue
            key = (target, line_of(m.start()))
            if key not in seen:
                seen.add(key)
                edges.setdefault((mod, target), []).append(f"{os.path.relpath(path, ROOT)}:{line_of(m.start())}")
    return edges


def sccs(nodes, adj):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                strong(w)
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

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def crate_roots():
    roots = []
    crates = os.path.join(ROOT, "crates")
    for base in [ROOT] + sorted(
        os.path.join(crates, d) for d in (os.listdir(crates) if os.path.isdir(crates) else [])
    ):
        name = os.path.basename(base) if base != ROOT else "leakhound"
        for f in ("lib.rs", "main.rs"):
            p = os.path.join(base, "src", f)
            if os.path.exists(p):
                roots.append((f"{name} ({f})", p))
    return roots


def main():
    global ROOT
    if len(sys.argv) == 3 and sys.argv[1] == "--root":
        ROOT = os.path.abspath(sys.argv[2])
    total = 0
    for name, root in crate_roots():
        files = crate_files(root)
        edges = edges_of(files)
        adj = {}
        for (a, b) in edges:
            adj.setdefault(a, set()).add(b)
        cycles = sccs(set(files), adj)
        for comp in cycles:
            total += 1
            names = ["crate" + "".join("::" + s for s in m) for m in comp]
            print(f"{name}: cycle among {len(comp)} modules: {', '.join(names)}")
            members = set(comp)
            for (a, b), where in sorted(edges.items()):
                if a in members and b in members:
                    print(f"    {'crate' + ''.join('::' + s for s in a)} -> {'crate' + ''.join('::' + s for s in b)}  ({where[0]}{', ...' if len(where) > 1 else ''})")
    if total:
        print(f"module-cycles: {total} cycle(s)")
        return 1
    print("module-cycles: no cycle in any crate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
