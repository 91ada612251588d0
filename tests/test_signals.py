"""Real signals sent to real subprocesses: nothing half-written under a final name, and
reruns continue to the same result as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import SAMPLE_CORPUS
from safetensors.numpy import load_file

pytestmark = pytest.mark.slow


def ltd(*args, cwd=None):
    return [sys.executable, "-m", "ltd_bert", *map(str, args)]


def interactive() -> None:
    """In the child: Ctrl-C as at a terminal. A shell without job control starts its
    background commands with SIGINT ignored (so would a test run started that way), and
    Python then keeps it ignored, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        ltd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=interactive,
    )


def wait_for(pred, proc, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def run_ok(*args):
    out = subprocess.run(
        ltd(*args), capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_idf_build_interrupted_leaves_nothing(tmp_path, sig):
    corpus = tmp_path / "big.txt"
    text = SAMPLE_CORPUS.read_text(encoding="utf-8")
    corpus.write_text(text * 60, encoding="utf-8")
    out = tmp_path / "idf.tsv"
    proc = start("idf", "build", corpus, "-o", out, "--workers", "1", "-q")
    time.sleep(3)
    assert proc.poll() is None, "finished before the signal: make the input bigger"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("Error: interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


def test_teacher_embed_sigterm_then_resume(tiny_bert, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(SAMPLE_CORPUS.read_text(encoding="utf-8"), encoding="utf-8")
    common = (
        "-i",
        corpus,
        "--idf",
        "jieba",
        "--teacher",
        tiny_bert,
        "--chunk-size",
        "64",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "-q",
    )
    out = tmp_path / "t.h5"
    part = tmp_path / "t.h5.partial"

    def some_rows():
        try:
            with h5py.File(part, "r", locking=False) as f:
                return int(f.attrs.get("lines_done", 0)) >= 256
        except (OSError, KeyError):
            return False

    proc = start("teacher-embed", *common, "-o", out)
    assert wait_for(some_rows, proc), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and not out.exists() and part.exists()
    res = run_ok("teacher-embed", *common, "-o", out)
    assert "resumed at line" in res.stderr
    clean = tmp_path / "clean.h5"
    run_ok("teacher-embed", *common, "-o", clean)
    with h5py.File(out) as a, h5py.File(clean) as b:
        np.testing.assert_array_equal(a["vectors"][:], b["vectors"][:])
        assert list(a["sentences"][:]) == list(b["sentences"][:])


def test_train_sigterm_then_resume(tiny_teacher_file, tmp_path):
    common = (
        "--data",
        tiny_teacher_file,
        "--embedding-dim",
        "8",
        "--hidden-size",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "10",
        "--min-count",
        "1",
        "--threads",
        "1",
        "-q",
    )
    out = tmp_path / "model"
    ckpt = tmp_path / "model.partial" / "checkpoint.pt"
    proc = start("train", *common, "-o", out)
    assert wait_for(ckpt.exists, proc), proc.communicate()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("training finished before the signal")
    assert proc.returncode == 130 and not out.exists()
    run_ok("train", *common, "-o", out, "--resume")
    clean = tmp_path / "clean"
    run_ok("train", *common, "-o", clean)
    a = load_file(str(out / "model.safetensors"))
    b = load_file(str(clean / "model.safetensors"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert Path(out / "config.json").is_file()
