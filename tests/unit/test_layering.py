"""The PVE layer's layering (pvelab/pve/__init__.py states the rule), read from the imports of every
module, lazy ones inside functions included."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PVE = Path(__file__).resolve().parents[2] / "pvelab" / "pve"
FOUNDATIONS = ("members", "remote", "version", "certs", "refusal", "apiclient")


def modules(root: Path = PVE) -> dict[str, Path]:
    """{dotted name: file} of every module of the PVE layer (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The layer's modules that `name` imports (`from pkg import mod` counts as importing pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        yield from (t for t in targets if t in known and t != name)


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def subsystem(name: str) -> str | None:
    """The package of the PVE layer a module belongs to (None for the foundations at its top)."""
    parts = name.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and (PVE / parts[2]).is_dir()) else None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root, first in edges.items():
        if root in index:
            continue
        work = [(root, iter(sorted(first)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def violations(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for name, targets in sorted(edges.items()):
        for target in sorted(targets):
            source_pkg, target_pkg = subsystem(name), subsystem(target)
            if source_pkg == "api" and target_pkg not in (None, "api"):
                found.append(f"{name} imports {target}: the API framework imports no subsystem")
            if source_pkg is None and name.rsplit(".", 1)[-1] in FOUNDATIONS and target_pkg is not None \
                    and target_pkg != "api":
                found.append(f"{name} imports {target}: a foundation module imports no subsystem")
            if (source_pkg, target_pkg) in (("guests", "ha"), ("cluster", "storage")):
                found.append(f"{name} imports {target}: {source_pkg} never imports {target_pkg}")
    found += [f"modules that import each other: {' -> '.join(group)}" for group in cycles(edges)]
    return found


def test_the_pve_layer_keeps_its_layering() -> None:
    assert violations(graph(modules())) == []


@pytest.mark.parametrize(("edges", "expected"), [
    ({"pvelab.pve.api.server": {"pvelab.pve.cluster.api"}, "pvelab.pve.cluster.api": set()},
     "the API framework imports no subsystem"),
    ({"pvelab.pve.guests.api": {"pvelab.pve.ha.redirect"}, "pvelab.pve.ha.redirect": set()},
     "guests never imports ha"),
    ({"pvelab.pve.cluster.cfs": {"pvelab.pve.storage.config"}, "pvelab.pve.storage.config": set()},
     "cluster never imports storage"),
    ({"pvelab.pve.guests.api": {"pvelab.pve.guests.backup"}, "pvelab.pve.guests.backup": {"pvelab.pve.guests.api"}},
     "modules that import each other: pvelab.pve.guests.api -> pvelab.pve.guests.backup"),
    ({"pvelab.pve.guests.a": {"pvelab.pve.guests.b"}, "pvelab.pve.guests.b": {"pvelab.pve.guests.c"},
      "pvelab.pve.guests.c": {"pvelab.pve.guests.a"}}, "modules that import each other"),
])
def test_each_kind_of_violation_is_caught(edges: dict[str, set[str]], expected: str) -> None:
    assert any(expected in line for line in violations(edges)), violations(edges)


def test_lazy_imports_and_from_imports_are_read(tmp_path: Path) -> None:
    layer = tmp_path / "pvelab" / "pve"
    (layer / "guests").mkdir(parents=True)
    (layer / "ha").mkdir()
    for init in (layer / "__init__.py", layer / "guests" / "__init__.py", layer / "ha" / "__init__.py"):
        init.write_text("")
    (layer / "ha" / "redirect.py").write_text("")
    (layer / "guests" / "api.py").write_text("def start():\n    from pvelab.pve.ha import redirect\n")
    known = modules(layer)
    assert graph(known)["pvelab.pve.guests.api"] == {"pvelab.pve.ha.redirect"}
