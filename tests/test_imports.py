"""The import graph of ``pipeline/`` and ``stages/``: no circle (lazy imports inside functions
count too), and ``stages/`` never imports ``pipeline/``."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "stylecascade": ROOT / "pipeline",
    "stylecascade.stages": ROOT / "stages",
    "stylecascade.studio": ROOT / "pipeline" / "studio",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (relative imports
    resolved; ``from . import x`` counts as importing ``x``)."""
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (
                (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            )
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    return found - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph``, as the list of modules around it, or ``None``."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_graph_is_read():
    graph = _graph()
    assert "stylecascade.launch" in graph["stylecascade.cli"] or any(
        "launch" in m for m in graph["stylecascade.cli"]
    )
    assert "stylecascade.stages.losses" in graph["stylecascade.stages.cascade"]


def test_no_import_circle():
    circle = _circle(_graph())
    assert circle is None, "import circle: " + " → ".join(circle)


def test_a_circle_is_found_when_there_is_one():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_stages_never_import_pipeline():
    for name, imported in _graph().items():
        if name.startswith("stylecascade.stages"):
            upward = {m for m in imported if not m.startswith("stylecascade.stages")}
            assert not upward, f"{name} imports {sorted(upward)}"


def test_the_records_leaf_imports_nothing_of_the_package():
    assert _graph()["stylecascade.records"] == set()


def test_the_package_imports_from_the_folder_that_holds_the_clone(tmp_path):
    """Issue 28.7: from the clone's parent, the clone (a folder named stylecascade) shadowed
    the editable install: "cannot import name 'render' from 'stylecascade' (unknown
    location)". CI installs as README says (editable_mode=strict)."""
    clone = Path(__file__).resolve().parent.parent
    (tmp_path / "stylecascade").symlink_to(clone)
    done = subprocess.run(
        [sys.executable, "-c", "from stylecascade import render; print(render.__module__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "stylecascade.api", done.stderr
