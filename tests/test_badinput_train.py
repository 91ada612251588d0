"""`ltd train` fed what real runs produce: teacher files of odd text (100 k-character rows,
emoji, traditional characters), and teacher files that are truncated, from another tool,
incomplete, mismatched or whose IDF file is gone; outputs that cannot be written; a bad
checkpoint. docs/robustness.md lists the behaviour each test pins down."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SAMPLE_CORPUS, assert_one_error, needs_native_bf16, tiny_train_config

from ltd_bert.cli import cli
from ltd_bert.common import cpu
from ltd_bert.student.model import Student
from ltd_bert.student.train import train
from ltd_bert.teacher import store
from ltd_bert.text.idf import idf_file_sha256, load_idf, recorded_source
from ltd_bert.text.weights import Weighter

TINY = ["--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--batch-size", "16"]
TINY += ["--min-count", "1", "--init-embeddings", "random", "--threads", "1", "-q"]

LONG = "今天天气很好我们去公园散步。" * 7200  # 100,800 characters
ODD = [LONG, "我爱😀北京🎉", "臺灣的天氣很好", "ABC123我们abc第3.5版", "。。!!", "iPhone 12"]


def run_train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args), *TINY])


def copy_with(src: Path, dst: Path, **changes) -> Path:
    """A copy of a teacher file with some settings or attributes changed."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        settings = json.loads(f.attrs["settings"])
        for key, value in changes.items():
            if key in settings:
                settings[key] = value
            else:
                f.attrs[key] = value
        f.attrs["settings"] = json.dumps(settings)
    return dst


@pytest.fixture(scope="module")
def odd_teacher_file(tiny_idf, tmp_path_factory) -> Path:
    """A teacher file (random 16-d vectors) of odd rows and 40 sample sentences, with the
    weights the real pipeline would store."""
    weighter = Weighter(load_idf(tiny_idf), 1.0)
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:40]
    texts, weights = zip(*(weighter(s) for s in ODD + lines), strict=True)
    settings = {
        "teacher": "random-16",
        "teacher_config": "none",
        "pooling": "idf",
        "layer": -1,
        "prefix": "",
        "eps": 1.0,
        "segmenter": "jieba",
        "idf_source": str(tiny_idf),
        "idf_sha256": idf_file_sha256(tiny_idf),
        "dim": 16,
    }
    out = tmp_path_factory.mktemp("odd") / "odd.h5"
    f = store.create_store(out, 16, settings)
    vecs = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    store.append_rows(f, list(texts), vecs, list(weights), list(range(len(texts))), len(texts))
    store.finalize(f)
    f.close()
    return out


def test_odd_rows_train_and_long_rows_are_cut(odd_teacher_file, tmp_path):
    result = run_train("--data", odd_teacher_file, "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    student = Student.load(tmp_path / "model")
    assert {"😀", "🎉", "臺", "灣"} <= set(student.vocab)
    vecs = student.encode([LONG, LONG[:5000] + "完全不同的结尾" * 100, *ODD[1:]])
    assert np.isfinite(vecs).all() and (np.linalg.norm(vecs, axis=1) > 0).all()
    # the student reads max_chars (4096) characters: what follows does not count
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-5)


@pytest.fixture
def teacher_file(tiny_model) -> Path:
    return tiny_model[1]


@pytest.mark.parametrize(
    "case", ["missing", "text", "truncated", "plain-h5py", "incomplete", "one-row"]
)
def test_unusable_teacher_file(teacher_file, tmp_path, case):
    data = tmp_path / "t.h5"
    message = {
        "missing": "t.h5: no such teacher file",
        "text": "t.h5: not a readable HDF5 file",
        "truncated": "t.h5: not a readable HDF5 file (truncated or corrupt?)",
        "plain-h5py": "t.h5: not an ltd-bert teacher file",
        "incomplete": "t.h5: incomplete (a run was interrupted); rerun `ltd teacher-embed`",
        "one-row": "t.h5: needs at least 2 rows to train",
    }[case]
    if case == "text":
        data.write_text("我们去公园\n", encoding="utf-8")
    elif case == "truncated":
        raw = teacher_file.read_bytes()
        data.write_bytes(raw[: len(raw) // 2])
    elif case == "plain-h5py":
        with h5py.File(data, "w") as f:
            f["vectors"] = np.zeros((10, 16), np.float32)
            f["sentences"] = ["我们"] * 10
    elif case == "incomplete":
        copy_with(teacher_file, data, complete=False)
    elif case == "one-row":
        copy_with(teacher_file, data)
        with h5py.File(data, "r+") as f:
            for name in ("sentences", "vectors", "weights", "line"):
                f[name].resize(1, axis=0)
    assert_one_error(run_train("--data", data, "-o", tmp_path / "model"), message)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eps": 0.5}, "differ in eps: 0.5 vs 1.0"),
        ({"teacher": "other"}, "differ in teacher: 'other' vs"),
        ({"idf_sha256": "0" * 64}, "differ in idf_sha256"),
    ],
    ids=["eps", "teacher", "idf"],
)
def test_teacher_files_that_do_not_belong_together(teacher_file, tmp_path, change, message):
    other = copy_with(teacher_file, tmp_path / "other.h5", **change)
    result = run_train("--data", teacher_file, "--data", other, "-o", tmp_path / "model")
    assert_one_error(result, message)


def test_segmenters_of_jieba_words_agree(teacher_file, tmp_path):
    """Teacher files cut by jieba and by rjieba (the same words but for HMM near-ties) train
    together, a segmenter of other words does not; `--segmenter` is what the model encodes
    with."""
    assert store.same_setting("segmenter", "rjieba", "jieba")
    assert store.same_setting("segmenter", "fast", "rjieba")
    assert not store.same_setting("segmenter", "jieba", "pkuseg")
    other = copy_with(teacher_file, tmp_path / "other.h5", segmenter="rjieba")
    result = run_train(
        "--data", teacher_file, "--data", other, "-o", tmp_path / "m", "--segmenter", "rjieba"
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert meta["segmenter"] == "rjieba"
    assert Student.load(tmp_path / "m").weighter.segmenter == "rjieba"
    foreign = copy_with(teacher_file, tmp_path / "foreign.h5", segmenter="pkuseg")
    result = run_train("--data", teacher_file, "--data", foreign, "-o", tmp_path / "m2")
    assert_one_error(result, "differ in segmenter: 'pkuseg' vs 'jieba'")


def test_idf_file_gone_or_changed(teacher_file, tiny_idf, tmp_path):
    moved = copy_with(teacher_file, tmp_path / "t.h5", idf_source=str(tmp_path / "gone.tsv"))
    result = run_train("--data", moved, "-o", tmp_path / "model")
    assert_one_error(result, "gone.tsv, which is gone or has changed since", "rerun teacher-embed")


def test_relative_idf_path_is_found_beside_the_teacher_file(
    teacher_file, tiny_idf, tmp_path, monkeypatch
):
    """Older files record the IDF path as given (`idf.tsv`): training from another folder
    looks beside the teacher file; new files record it absolute."""
    shutil.copyfile(tiny_idf, tmp_path / "idf.tsv")
    old = copy_with(teacher_file, tmp_path / "t.h5", idf_source="idf.tsv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_train("--data", old, "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model" / "idf.tsv.gz").is_file()
    assert recorded_source("idf.tsv") == str(elsewhere / "idf.tsv")
    assert recorded_source("jieba") == "jieba"


def test_output_where_it_cannot_go(teacher_file, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    assert_one_error(run_train("--data", teacher_file, "-o", afile / "model"), "Not a directory")
    if os.geteuid() == 0:  # root ignores modes: /proc refuses new folders to everyone
        bad = Path("/proc/model")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        bad = tmp_path / "ro" / "model"
    assert_one_error(run_train("--data", teacher_file, "-o", bad), "model.partial")


@pytest.fixture
def checkpoint(teacher_file, tmp_path) -> Path:
    """An interrupted run's checkpoint (tiny_train_config, 6 steps, checkpoint at 5)."""
    cfg = tiny_train_config(epochs=1, init_embeddings="random")
    with pytest.raises(KeyboardInterrupt):
        train([str(teacher_file)], tmp_path / "model", cfg, stop_after_steps=6)
    path = tmp_path / "model.partial" / "checkpoint.pt"
    assert path.is_file()
    return path


def test_resume_with_other_settings_is_refused(teacher_file, checkpoint, tmp_path):
    result = run_train("--data", teacher_file, "-o", tmp_path / "model", "--resume")
    assert_one_error(result, "checkpoint.pt: made with other settings (", "drop --resume")
    assert checkpoint.is_file()  # refused: the checkpoint is kept for a correct --resume


def test_resume_from_a_corrupt_checkpoint(teacher_file, checkpoint, tmp_path):
    raw = checkpoint.read_bytes()
    checkpoint.write_bytes(raw[: len(raw) // 2])
    args = ["--batch-size", "16", "--val-fraction", "0.1", "--checkpoint-every", "5"]
    args += ["--lr", "5e-3", "--patience", "10", "--hidden-size", "12"]
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(teacher_file), "-o", str(tmp_path / "model"), "--resume"]
        + TINY
        + args,
    )
    assert_one_error(result, "checkpoint.pt")


def test_init_from_without_a_model_or_shrinking_it(teacher_file, tmp_path):
    nope = tmp_path / "nope"
    result = run_train("--data", teacher_file, "-o", tmp_path / "m", "--init-from", nope)
    assert_one_error(result, f"--init-from: {nope}: no such model folder")
    first = tmp_path / "first"
    assert run_train("--data", teacher_file, "-o", first).exit_code == 0  # 8/8
    args = ["train", "--data", str(teacher_file), "-o", str(tmp_path / "m")]
    result = CliRunner().invoke(
        cli, [*args, "--init-from", str(first), "--embedding-dim", "6", "-q"]
    )
    assert_one_error(result, f"--init-from {first}: can only grow the model (8/8), not shrink")
    # fewer units narrow a model, but this one has no projection (2 × 8 = 16 outputs)
    result = CliRunner().invoke(cli, [*args, "--init-from", str(first), "--hidden-size", "6", "-q"])
    assert_one_error(
        result,
        f"--init-from {first}: can only narrow a one-layer model with a projection; this one "
        "has 1 layer and no projection",
    )
    result = CliRunner().invoke(cli, [*args, "--init-from", str(nope), "-q"])
    assert_one_error(result, f"--init-from: {nope}: no such model folder")
    assert not (tmp_path / "m").exists()


@pytest.mark.precision
@needs_native_bf16
def test_bf16_training_and_resume_in_another_precision(teacher_file, checkpoint, tmp_path):
    """--precision is how, not what, a run computes: a checkpoint resumes in either, and a
    bf16 run learns (its validation cosine rises) and writes an ordinary float32 model."""
    cfg = tiny_train_config(epochs=1, init_embeddings="random", precision="bf16")
    result = train([str(teacher_file)], tmp_path / "model", cfg, resume=True)
    assert result["resumed"]
    student = Student.load(tmp_path / "model")
    assert student.meta["train"]["precision"] == "bf16"
    assert next(student.model.parameters()).dtype == torch.float32
    fresh = train([str(teacher_file)], tmp_path / "m2", tiny_train_config(precision="bf16"))
    cos = [json.loads(x)["val_cos"] for x in (tmp_path / "m2" / "metrics.jsonl").open()]
    assert np.isfinite(cos).all() and cos[-1] > cos[0], (fresh, cos)


@pytest.mark.precision
def test_bf16_refused_where_not_native(teacher_file, checkpoint, tmp_path, monkeypatch):
    """Without native bf16, `--precision bf16` is one line and exit 1, before any work: no
    model, and the interrupted run's checkpoint is left as it was."""
    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    before = checkpoint.read_bytes()
    result = run_train("--data", teacher_file, "-o", tmp_path / "model", "--precision", "bf16")
    assert_one_error(result, "--precision bf16: this CPU does not multiply bf16 natively")
    assert not (tmp_path / "model").exists() and checkpoint.read_bytes() == before
    with pytest.raises(cpu.PrecisionError, match="use fp32"):
        train([str(teacher_file)], tmp_path / "m2", tiny_train_config(precision="bf16"))
    assert not (tmp_path / "m2").exists()
