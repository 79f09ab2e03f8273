"""The house rules, checked on the source: layers that import one way (no cycle, type-only imports
included), no class past 450 lines, public LangGraph APIs only, a documented public surface, and
an ARCHITECTURE.md that names every module of the library."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import langgraph_speculative

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "langgraph_speculative"


def _modules() -> dict[str, Path]:
    out = {}
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Library modules `name` imports, anywhere in its file (under TYPE_CHECKING and in functions too)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                hit = sub if sub in known else target
                if hit in known and hit != name:
                    out.add(hit)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known and a.name != name}
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_counting_type_only_imports() -> None:
    mods = _modules()
    edges = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    # the package's own __init__ re-exports its modules: modules must not import it back
    back = sorted(m for m, e in edges.items() if "langgraph_speculative" in e and m.count(".") == 1)
    assert back == [], f"modules that import the package root (a cycle through __init__): {back}"
    assert _cycles(edges) == []


def test_no_class_is_longer_than_450_lines() -> None:
    long = []
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                n = node.end_lineno - node.lineno + 1
                if n > 450:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({n} lines)")
    assert long == []


def test_public_langgraph_apis_only() -> None:
    bad = [
        str(p.relative_to(ROOT))
        for p in [*LIB.rglob("*.py"), *(ROOT / "langgraph_speculative_graphs").rglob("*.py")]
        if "langgraph._internal" in p.read_text()
    ]
    assert bad == []


def test_the_public_surface_is_small_and_documented() -> None:
    names = langgraph_speculative.__all__
    assert len(names) <= 24
    for name in names:
        obj = getattr(langgraph_speculative, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_architecture_md_names_every_module() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = [
        p.relative_to(LIB).as_posix()
        for p in LIB.rglob("*.py")
        if p.name != "__init__.py" and p.relative_to(LIB).as_posix() not in text
    ]
    assert missing == [], f"ARCHITECTURE.md does not describe {missing}"
