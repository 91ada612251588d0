"""The repository speaks of versions and dates, never of the numbered work periods that made
it: no Markdown file and no comment or docstring of the code may name one. And the README
is for users: short, starting with the tool's name and a quick start."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: folders that are not the project's own text (environments, caches, build and work output)
SKIP_DIRS = {
    ".venv",
    ".git",
    "build",
    "dist",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "demo_work",
    "repro_work",
    "ltd_work",
}
#: folders whose comments and docstrings are checked
CODE_DIRS = ("ltd_bert", "scripts", "benchmarks", "tests", "experiments")
#: a numbered work period: "session 12", "sessions 10–11", "stage 19" (as a period of
#: work), "S14", or a path of one such as /work/runs/s14/
PERIOD = [
    re.compile(r"\bsessions?\s+\d", re.IGNORECASE),
    re.compile(r"\bstages?\s+\d", re.IGNORECASE),
    re.compile(r"\bS\d{1,2}\b"),
    re.compile(r"/runs/s\d{1,2}\b", re.IGNORECASE),
]
THIS_FILE = Path(__file__).resolve()


def skipped(path: Path) -> bool:
    rel = path.relative_to(ROOT).parts
    return any(p in SKIP_DIRS or p.endswith(".egg-info") for p in rel[:-1])


def markdown_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md") if not skipped(p))


def code_files() -> list[Path]:
    out = []
    for d in CODE_DIRS:
        for p in (ROOT / d).rglob("*"):
            wanted = p.suffix in (".py", ".sh", "")
            if wanted and p.is_file() and not skipped(p) and p.resolve() != THIS_FILE:
                out.append(p)
    return sorted(out)


def python_text(path: Path) -> list[tuple[int, str]]:
    """(first line, text) of every docstring and every run of comment lines."""
    source = path.read_text(encoding="utf-8")
    blocks: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                blocks.append((node.body[0].lineno, doc))
    run: list[str] = []
    start = last = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line = tok.start[0]
        if run and line != last + 1:
            blocks.append((start, "\n".join(run)))
            run = []
        if not run:
            start = line
        run.append(tok.string.lstrip("#"))
        last = line
    if run:
        blocks.append((start, "\n".join(run)))
    return blocks


def shell_text(path: Path) -> list[tuple[int, str]]:
    """(first line, text) of every run of comment lines (`# ...`, whole or after code)."""
    blocks: list[tuple[int, str]] = []
    run: list[str] = []
    start = last = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"(?:^|\s)#(?!!)(.*)$", line)
        if m is None:
            continue
        if run and n != last + 1:
            blocks.append((start, "\n".join(run)))
            run = []
        if not run:
            start = n
        run.append(m.group(1))
        last = n
    if run:
        blocks.append((start, "\n".join(run)))
    return blocks


def periods(blocks: list[tuple[int, str]], name: str) -> list[str]:
    """`name:line: match` for every work period named in the blocks."""
    found = []
    for first, text in blocks:
        for pattern in PERIOD:
            for m in pattern.finditer(text):
                line = first + text[: m.start()].count("\n")
                found.append(f"{name}:{line}: {m.group(0)!r}")
    return found


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_no_markdown_file_names_a_work_period():
    files = markdown_files()
    assert ROOT / "README.md" in files
    found = []
    for path in files:
        found += periods([(1, path.read_text(encoding="utf-8"))], shown(path))
    assert not found, "name versions or dates, not work periods:\n" + "\n".join(found)


def test_no_comment_or_docstring_names_a_work_period():
    found = []
    for path in code_files():
        if path.suffix == ".py":
            blocks = python_text(path)
        elif path.suffix == ".sh" or path.read_bytes().startswith(b"#!"):
            blocks = shell_text(path)
        else:
            continue
        found += periods(blocks, shown(path))
    assert not found, "name versions or dates, not work periods:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        "# session 12: words only",
        "# sessions 10–11",
        "# Stage 19, shipped",
        "# see /work/runs/s14/gl/general12k.txt",
        "# the S14 run",
    ],
)
def test_the_patterns_catch_a_work_period(text, tmp_path):
    path = tmp_path / "x.py"
    path.write_text(f"x = 1  {text}\n", encoding="utf-8")
    assert periods(python_text(path), "x.py")
    sh = tmp_path / "x.sh"
    sh.write_text(f"#!/bin/bash\necho hi  {text}\n", encoding="utf-8")
    assert periods(shell_text(sh), "x.sh")


def test_the_patterns_leave_ordinary_code_alone(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(
        '"""A step of the pipeline; s1<TAB>s2 pairs."""\n'
        'stage = "session"  # a model 21 of the recipe, run 3, step 14\n',
        encoding="utf-8",
    )
    assert periods(python_text(path), "x.py") == []


def test_readme_is_short_and_starts_with_the_tool():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines (at most 300)"
    first = next(line for line in lines if line.strip())
    assert first.startswith("# ") and "ltd" in first.lower(), first
    quick = [i for i, line in enumerate(lines, 1) if re.match(r"#+ .*quick start", line, re.I)]
    assert quick and quick[0] < 80, "the quick start must come before line 80"
