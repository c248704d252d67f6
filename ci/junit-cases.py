#!/usr/bin/env python3
"""Compare the test cases of two JUnit files: the sorted (classname, name)
pairs of each, what only one has, and the counts. A redesign that keeps
behaviour keeps the pairs: `python3 ci/junit-cases.py before.xml after.xml`
exits 0 when they are the same, 1 when they differ (and lists how), 2 on a
file it cannot read.

Case names that carry a measured figure (a duration, a count of packets, a
port the kernel chose) would differ between any two runs; the names
leakhound writes carry none, so the names are compared as they are.
"""

import sys
import xml.etree.ElementTree as ET


def pairs(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        sys.exit(2)
    out = []
    for case in root.iter("testcase"):
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = child.tag
        out.append((case.get("classname", ""), case.get("name", ""), status))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a, b = pairs(sys.argv[1]), pairs(sys.argv[2])
    ka = sorted({(c, n) for c, n, _ in a})
    kb = sorted({(c, n) for c, n, _ in b})
    only_a = sorted(set(ka) - set(kb))
    only_b = sorted(set(kb) - set(ka))
    status_a = {(c, n): s for c, n, s in a}
    status_b = {(c, n): s for c, n, s in b}
    changed = sorted(k for k in set(ka) & set(kb) if status_a[k] != status_b[k])
    print(f"{sys.argv[1]}: {len(a)} cases ({len(ka)} distinct)")
    print(f"{sys.argv[2]}: {len(b)} cases ({len(kb)} distinct)")
    for c, n in only_a:
        print(f"- only in {sys.argv[1]}: {c} :: {n}")
    for c, n in only_b:
        print(f"+ only in {sys.argv[2]}: {c} :: {n}")
    for k in changed:
        print(f"~ {k[0]} :: {k[1]}: {status_a[k]} -> {status_b[k]}")
    same = not only_a and not only_b and not changed and len(a) == len(b)
    print("the same cases, with the same outcomes" if same else "they differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
