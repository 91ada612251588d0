"""Every command from a pip install: a wheel built from the checkout, installed in a fresh
venv (torch pinned first, as the README installs it, then the wheel with its serve, builtin
and onnx extras), run from a folder outside the checkout with LTD_HOME in a temporary folder:
encode, similarity, eval suite (its default suite), adapt without --replay (the shipped
replay set), serve (one request under another model's name), quantize and export. Nothing
may print a warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ROOT, SAMPLE_CORPUS, SAMPLE_SENTENCES

pytestmark = pytest.mark.slow

TORCH = "torch==2.13.0"  # the CPU build on local disk; an open range would pull CUDA
EXTRAS = "serve,builtin,onnx"
#: texts per kind of the shipped suite and calibration mix: the teacher embeds them here from
#: nothing (a fresh LTD_HOME), and 12 keep that to a minute
TEXTS = "12"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding the pinned torch and the wheel built from the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: the build leaves nothing in the checkout
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "ltd_bert", src / "ltd_bert", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*pip, "-w", str(tmp / "dist"), str(src)])
    (wheel,) = (tmp / "dist").glob("ltd_bert-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", TORCH])
    run([py, "-m", "pip", "install", "-q", f"{wheel}[{EXTRAS}]", TORCH])
    return venv


@pytest.fixture(scope="module")
def user(venv, tmp_path_factory):
    """`ltd` of the fresh venv as a user runs it: in a folder of their own, LTD_HOME in a
    temporary folder, none of this checkout's settings."""
    here = tmp_path_factory.mktemp("user")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LTD_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", LTD_HOME=str(here / "home"))
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:200]
    (here / "domain.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(SAMPLE_SENTENCES, here / "sentences.txt")

    def ltd(*args: str) -> subprocess.CompletedProcess:
        result = run([str(venv / "bin" / "ltd"), *args], cwd=here, env=env)
        assert "Warning" not in result.stderr and "warn" not in result.stderr.lower(), result.stderr
        return result

    ltd.here, ltd.env = here, env
    return ltd


def test_the_package_runs_from_the_venv(venv, user):
    where = run(
        [str(venv / "bin" / "python"), "-c", "import ltd_bert; print(ltd_bert.__file__)"],
        cwd=user.here,
        env=user.env,
    )
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout


def test_encode_and_similarity(user):
    out = user("encode", "sentences.txt", "-o", "v.npy")
    assert "12 vectors of dim 384" in out.stderr
    assert np.load(user.here / "v.npy").shape == (12, 384)
    score = float(user("similarity", "今天天气很好", "今天天气不错").stdout.split()[0])
    assert 0.5 < score <= 1.0


def test_eval_suite_on_its_default_suite(user):
    """The suite shipped in the package; the built-in teacher converted into LTD_HOME."""
    rows = json.loads(user("eval", "suite", "--texts-per-kind", TEXTS, "--json").stdout)
    kinds = [r["kind"] for r in rows if r["fidelity"] is not None]
    assert len(kinds) == 10 and "docs_1000_4000" in kinds and "latin" in kinds
    assert all(r["fidelity"] > 0.7 for r in rows if r["fidelity"] is not None)
    assert (user.here / "home" / "teachers").is_dir()
    assert list((user.here / "home" / "suite").glob("*/short-*-first12.h5"))


def test_adapt_without_replay(user):
    """The shipped replay set, its teacher vectors cached under LTD_HOME."""
    out = user(
        "adapt", "domain.txt", "-o", "adapted", "--replay-lines", "100",
        "--texts-per-kind", TEXTS, "-q",
    )  # fmt: skip
    assert "200 domain rows, 100 replayed" in out.stdout, out.stdout
    assert (user.here / "adapted" / "config.json").is_file()
    assert list((user.here / "home" / "replay").glob("*/replay-*.h5"))


def test_quantize_and_export(user):
    user("quantize", "-o", "q8")
    user("encode", "-m", "q8", "sentences.txt", "-o", "q.npy")
    q, v = np.load(user.here / "q.npy"), np.load(user.here / "v.npy")
    cos = (q * v).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(v, axis=1)
    assert cos.min() > 0.95
    user("export", "--onnx", "m.onnx")
    user("encode", "--onnx", "m.onnx", "sentences.txt", "-o", "o.npy")
    assert np.abs(np.load(user.here / "o.npy") - v).max() < 1e-3


def test_serve_answers_another_model_name(venv, user):
    proc = subprocess.Popen(
        [str(venv / "bin" / "ltd"), "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=user.here,
        env=user.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            found = re.search(r" on (http://127\.0\.0\.1:\d+),", line)
            if found:
                break
        assert found, "".join(seen)
        r = httpx.post(
            found.group(1) + "/v1/embeddings",
            json={"input": ["今天天气很好"], "model": "text-embedding-ada-002"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "zh-small" and len(r.json()["data"][0]["embedding"]) == 384
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
