#!/usr/bin/env python3
"""Checks the linked dependency tree of every workspace package (offline,
from `cargo metadata`):

  * licenses: no GPL, LGPL or AGPL unless an OR offers a permissive choice
    ("MIT OR Apache-2.0 OR LGPL-2.1-or-later" is fine; "GPL-2.0",
    "MIT AND GPL-3.0" and a missing license are not);
  * rust-version: each package declares one, at least the highest
    rust-version of the dependencies it links.

Only what is linked counts: normal and build dependencies for this
machine's target, not dev-dependencies. Exits 1 naming every problem.
Usage: python3 ci/check-deps.py [--manifest-path PATH]
"""

import json
import re
import subprocess
import sys

COPYLEFT = re.compile(r"\b(A|L)?GPL\b|\bAGPL|\bLGPL|\bGPL", re.IGNORECASE)


def alternatives(expr):
    """The top-level OR alternatives of an SPDX expression."""
    expr = expr.replace("/", " OR ")
    depth, cur, out = 0, "", []
    tokens = re.split(r"(\(|\)|\s+OR\s+)", expr)
    for t in tokens:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+OR\s+", t or ""):
            out.append(cur.strip())
            cur = ""
        else:
            cur += t or ""
    out.append(cur.strip())
    return [a.strip("() ") for a in out if a.strip()]


def license_ok(expr):
    if not expr:
        return False
    return any(not COPYLEFT.search(a) for a in alternatives(expr))


def version(v):
    parts = [int(x) for x in re.findall(r"\d+", v or "0")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    args = ["cargo", "metadata", "--format-version", "1", "--locked"]
    target = subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True
    ).stdout
    host = re.search(r"^host: (\S+)", target, re.M).group(1)
    args += ["--filter-platform", host] + sys.argv[1:]
    meta = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    problems = []

    def linked(root):
        seen, todo = set(), [root]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            for d in nodes[n]["deps"]:
                kinds = {k["kind"] for k in d["dep_kinds"]}
                if kinds & {None, "build"}:
                    todo.append(d["pkg"])
        return seen

    checked = set()
    for member in meta["workspace_members"]:
        tree = linked(member)
        me = pkgs[member]
        deps = [pkgs[i] for i in tree if i != member]
        needed = max(deps, key=lambda p: version(p.get("rust_version")), default=None)
        declared = me.get("rust_version")
        if not declared:
            problems.append(f"{me['name']}: no rust-version in {me['manifest_path']}")
        elif needed and version(needed.get("rust_version")) > version(declared):
            problems.append(
                f"{me['name']}: rust-version {declared} is below {needed['name']} "
                f"{needed['version']}'s {needed['rust_version']}"
            )
        for p in [me] + deps:
            if p["id"] in checked:
                continue
            checked.add(p["id"])
            if not license_ok(p.get("license")):
                problems.append(
                    f"{p['name']} {p['version']}: license {p.get('license')!r} "
                    f"(linked by {me['name']}) is not permissive"
                )
    for p in problems:
        print(f"check-deps: {p}")
    print(
        f"check-deps: {len(checked)} linked packages of {len(meta['workspace_members'])} "
        f"workspace packages checked, {len(problems)} problem(s)"
    )
    return 1 if problems else 0


def selftest():
    assert license_ok("MIT OR Apache-2.0")
    assert license_ok("MIT OR Apache-2.0 OR LGPL-2.1-or-later")
    assert license_ok("(MIT OR Apache-2.0) AND Unicode-3.0")
    assert license_ok("MIT/Apache-2.0")
    assert not license_ok("GPL-2.0")
    assert not license_ok("LGPL-3.0-only")
    assert not license_ok("MIT AND GPL-3.0")
    assert not license_ok("AGPL-3.0-or-later")
    assert not license_ok(None)
    assert version("1.89") > version("1.88.0")
    assert version("1.89") == version("1.89.0")


if __name__ == "__main__":
    selftest()
    sys.exit(main())
