"""The package's layers import downward only: no import circle anywhere in grec/ (imports inside
functions count: a lazy import is still a dependency), and the data layer imports nothing above it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "grec"
# grec.data (contracts, tables, splits, encoding, the simulator) is the bottom layer: it may use
# these shared helpers and nothing else of the package's
BELOW_DATA = {"grec", "grec.io", "grec.settings", "grec.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules `path` imports, at any depth of its code (`from grec.a import b`
    names grec.a.b where b is a module, else grec.a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("grec")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grec") and not node.level:
            for a in node.names:
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_the_package():
    edges = graph()
    found = circles(edges)
    described = ["; ".join(f"{a} -> {', '.join(sorted(edges[a] & set(c)))}" for a in c) for c in found]
    assert not found, "import circles:\n" + "\n".join(described)


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_data_layer_imports_nothing_above_it():
    upward = {f"{name} -> {other}" for name, targets in graph().items() if name.startswith("grec.data")
              for other in targets if not other.startswith("grec.data") and other not in BELOW_DATA}
    assert not upward, f"grec.data imports from the layers above it: {sorted(upward)}"
