"""The four commands chained through a working directory, with no other arguments."""

from __future__ import annotations

import json

import h5py
import numpy as np
from click.testing import CliRunner
from conftest import SAMPLE_CORPUS

from ltd_bert.cli import cli
from ltd_bert.student.model import Student


def invoke(*args, **kw):
    result = CliRunner().invoke(cli, [str(a) for a in args], **kw)
    assert result.exit_code == 0, result.output
    return result


def test_chain_through_workdir(tiny_bert, tmp_path):
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:150]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    w = tmp_path / "work"
    ltd = ("--workdir", w)

    for cmd, step in [
        (("teacher-embed", "--teacher", tiny_bert), "idf build"),
        (("train",), "teacher-embed"),
        (("encode", corpus), "train"),
    ]:
        result = CliRunner().invoke(cli, [str(a) for a in (*ltd, *cmd)])
        if cmd[0] != "encode":  # encode falls back to the shipped model when there is one
            assert result.exit_code == 1 and f"`ltd {step}" in result.output, result.output

    invoke(*ltd, "idf", "build", corpus, "-q", "--workers", "1")
    out = invoke(*ltd, "teacher-embed", "--teacher", tiny_bert, "-q", "--batch-size", "16")
    assert "150 vectors" in out.output
    again = invoke(*ltd, "teacher-embed", "--teacher", tiny_bert, "-q")
    assert "already complete" in again.output
    refused = CliRunner().invoke(
        cli, [*map(str, ltd), "teacher-embed", "--teacher", str(tiny_bert), "--eps", "0.5", "-q"]
    )
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    invoke(
        *ltd,
        "train",
        "--embedding-dim",
        "8",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "-q",
    )
    record = json.loads((w / "run.json").read_text())
    assert set(record) == {"idf", "teacher", "model"}
    assert (w / "model" / "model.safetensors").is_file()

    out = invoke(*ltd, "encode", corpus, "-o", w / "v.npy", "-q")
    assert "150 vectors of dim 16" in out.output
    invoke(*ltd, "encode", corpus, "-o", w / "c.h5", "--space", "centred", "-q")
    student = Student.load(w / "model")
    with h5py.File(w / "c.h5", "r") as f:
        assert f.attrs["space"] == "centred" and f.attrs["mean_scale"] == 0.0
        centred = f["vectors"][:]
    similarity = np.load(w / "v.npy")
    filled = np.abs(centred).sum(1) > 0
    np.testing.assert_allclose(
        similarity[filled] - centred[filled],
        np.tile(student.mean_scale * student.mean, (filled.sum(), 1)),
        atol=1e-5,
    )

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "".join(f"{lines[i]}\t{lines[i + 1]}\t{i % 3}\n" for i in range(20)), encoding="utf-8"
    )
    res = json.loads(invoke(*ltd, "eval", pairs, "--json").output)
    assert set(res["rows"]) == {"student"} and list(res["pairs"].values()) == [20]
    table = invoke(*ltd, "eval", pairs, "--teacher", tiny_bert, "--baselines").output
    for row in (
        "student",
        "teacher, IDF pooling",
        "teacher, mean pooling",
        "static floor",
        "TF-IDF",
        "% teacher",
    ):
        assert row in table
    fid = json.loads(invoke(*ltd, "eval", "fidelity", "--json").output)
    assert fid["rows"] == 3 and -1 <= fid["centred_cosine"] <= 1


def test_merge_and_teacher_list(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("LTD_HOME", str(tmp_path / "home"))
    out = invoke("teacher", "list").output
    assert "no teachers cached" in out
    show = invoke("teacher", "show", tiny_bert).output
    assert "hidden:      16" in show
    corpus = tmp_path / "c.txt"
    corpus.write_text(
        "\n".join(SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:30]), encoding="utf-8"
    )
    parts = []
    for i in range(2):
        p = tmp_path / f"p{i}.h5"
        invoke(
            "teacher-embed",
            "-i",
            corpus,
            "--idf",
            "jieba",
            "--teacher",
            tiny_bert,
            "--shard",
            f"{i}/2",
            "--chunk-size",
            "8",
            "-o",
            p,
            "-q",
        )
        parts.append(p)
    res = invoke("teacher-embed", "merge", *parts, "-o", tmp_path / "all.h5")
    assert "30 rows from 2 parts" in res.output
