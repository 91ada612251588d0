"""The package's layers (docs/architecture.md): every module of ltd_bert is parsed with `ast`,
its imports (at the top of the module and inside functions alike) make the module import
graph, and the graph must have no cycle, point only down the layer order, and keep `click` in
the command-line layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ltd_bert"

#: bottom to top; a module may import its own layer and the ones below it, never one above.
#: A module belongs to the layer of the longest prefix that names it.
LAYERS = [
    ("common", ("ltd_bert.common", "ltd_bert.models", "ltd_bert.suites")),
    ("text", ("ltd_bert.text",)),
    ("runtime", ("ltd_bert.runtime",)),
    ("teacher", ("ltd_bert.teacher",)),
    ("student", ("ltd_bert.student",)),
    ("tasks", ("ltd_bert.tasks",)),
    ("cli", ("ltd_bert.cli",)),
    ("api", ("ltd_bert", "ltd_bert.__main__")),  # the public API and `python -m ltd_bert`
]
#: the only layer that may import click
CLICK_LAYERS = {"cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact_only = prefix in ("ltd_bert", "ltd_bert.__main__")
            matches = module == prefix or (not exact_only and module.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, found = len(prefix), i
    if found is None:
        raise AssertionError(f"{module} belongs to no layer: place it in one (see LAYERS)")
    return found


def resolve(name: str) -> str | None:
    """The package module `name` (dotted) refers to: itself, or the package that holds it
    (`from ltd_bert.x import Name` names module ltd_bert.x)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(ltd_bert modules imported, top-level names of other packages imported), wherever in
    the module the import statement stands."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source] + [f"{source}.{a.name}" for a in node.names]
        for name in names:
            if name == "ltd_bert" or name.startswith("ltd_bert."):
                target = resolve(name)
                if target is not None and target != module:
                    inner.add(target)
            elif name:
                outer.add(name.split(".")[0])
    return inner, outer


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_resolve_to_modules():
    """The graph sees the package's modules (a sanity check of the parsing above)."""
    assert "ltd_bert.student.model" in GRAPH["ltd_bert.student.quantize"][0]
    assert "ltd_bert.common.errors" in GRAPH["ltd_bert.text.idf"][0]
    assert "click" in GRAPH["ltd_bert.cli.base"][1]


def test_no_import_cycles():
    edges = {m: sorted(inner) for m, (inner, _) in GRAPH.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in edges[m]:
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_layer_order():
    wrong = []
    for module, (inner, _) in sorted(GRAPH.items()):
        here = layer_of(module)
        for target in sorted(inner):
            if layer_of(target) > here:
                wrong.append(
                    f"{module} ({LAYERS[here][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_click_only_in_the_command_line():
    users = [m for m, (_, outer) in GRAPH.items() if "click" in outer]
    assert users
    outside = [m for m in users if LAYERS[layer_of(m)][0] not in CLICK_LAYERS]
    assert not outside, f"click imported outside the command line: {outside}"


def test_no_flat_modules_left():
    """Every module lives in a layer's package, except the package's own two files."""
    flat = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not flat, f"modules at the top of ltd_bert/: {flat} (move them into a layer)"


def test_public_api():
    """Every name of `ltd_bert.__all__` resolves, from the module the API table says."""
    import ltd_bert

    for name in ltd_bert.__all__:
        assert getattr(ltd_bert, name) is not None, name
    from ltd_bert.student.model import Student

    assert ltd_bert.Student is Student
    with pytest.raises(AttributeError):
        ltd_bert.no_such_name  # noqa: B018


def test_importing_the_package_stays_light():
    import subprocess
    import sys

    code = "import sys, ltd_bert; print('torch' in sys.modules, 'click' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
