"""`ltd encode` and the commands that read text through a trained student (similarity,
index, search, cluster, eval) fed what real inputs and users produce: odd text, undecodable
bytes, broken files and model folders, vectors of another dimension, a full disk.
docs/robustness.md lists the behaviour each test pins down."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_error

from ltd_bert.cli import cli
from ltd_bert.student.model import BiLSTMStudent, Student, StudentConfig, save_model_folder
from ltd_bert.teacher import store

CLEAN = ["我们去公园", "", "今天天气很好", "iPhone 12 很好用", "北京买家店 ABC"]
LONG = "今天天气很好我们去公园散步。" * 7200  # 100,800 characters
BAD = "我们去公园\n".encode() + b"\xff\xfe bad\n" + "天气很好\n".encode()


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def model(tiny_model) -> Path:
    return tiny_model[0]


@pytest.fixture(scope="module")
def teacher_file(tiny_model) -> Path:
    return tiny_model[1]


@pytest.fixture(scope="module")
def model8(model, tmp_path_factory) -> Path:
    """A model folder like `model` but giving 8-dimensional vectors."""
    s = Student.load(model)
    out = tmp_path_factory.mktemp("dim8") / "model8"
    cfg = StudentConfig(len(s.vocab), embedding_dim=8, hidden_size=8, output_dim=8)
    save_model_folder(out, BiLSTMStudent(cfg), s.vocab, str(model / "idf.tsv.gz"), s.meta)
    return out


# --- text -------------------------------------------------------------------------------


def test_bom_crlf_fullwidth_and_zero_width_give_the_same_vectors(model, tmp_path):
    clean = write(tmp_path / "clean.txt", CLEAN)
    bom_crlf = tmp_path / "bom_crlf.txt"
    bom_crlf.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(CLEAN).encode("utf-8") + b"\r\n")
    odd = [
        "我们去\u200b公园",
        "  \u3000 ",
        "今天天气很好\u200d",
        "ｉＰｈｏｎｅ　１２ 很好用",
        "北京买家店 ＡＢＣ",
    ]
    dirty = tmp_path / "dirty.txt"
    dirty.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(odd).encode("utf-8") + b"\r\n")
    for src in (clean, bom_crlf, dirty):
        for ext in ("npy", "jsonl"):
            result = run("encode", src, "-m", model, "-o", src.with_suffix(f".{ext}"))
            assert result.exit_code == 0, result.output
    # BOM and CRLF are not part of the text: the very same output, sentences included
    assert bom_crlf.with_suffix(".jsonl").read_bytes() == clean.with_suffix(".jsonl").read_bytes()
    a = np.load(clean.with_suffix(".npy"))
    np.testing.assert_array_equal(np.load(dirty.with_suffix(".npy")), a)
    assert a.shape == (5, 16) and not a[1].any()


def test_blank_odd_and_long_lines(model, tmp_path):
    lines = [
        "",  # 0: zero vector
        "   \t",  # 1: zero vector
        "\u200b\ufeff",  # 2: only format characters: zero vector
        "。。！！",  # 3: punctuation only: uniform weights, a real vector
        "我爱😀北京🎉",  # 4
        "臺灣的天氣很好",  # 5: characters the student may never have seen: <unk>
        "ＡＢＣ１２３我们",  # 6: full-width
        "ABC123我们",  # 7: its half-width twin
        LONG,  # 8
        LONG[:5000] + "完全不同的结尾" * 100,  # 9: differs after 5000 characters
    ]
    src = write(tmp_path / "odd.txt", lines)
    result = run("encode", src, "-m", model, "-o", tmp_path / "v.npy")
    assert result.exit_code == 0, result.output
    assert "encode: 10 vectors of dim 16" in result.output
    v = np.load(tmp_path / "v.npy")
    assert np.isfinite(v).all()
    assert not v[:3].any() and (np.linalg.norm(v[3:], axis=1) > 0).all()
    np.testing.assert_array_equal(v[6], v[7])
    # the student reads the first max_chars (4096) characters of a line
    np.testing.assert_allclose(v[8], v[9], atol=1e-5)


@pytest.mark.parametrize(
    "command",
    ["encode", "index", "cluster", "similarity --pairs", "search --queries", "eval"],
)
def test_undecodable_line_is_one_clear_error_everywhere(model, tmp_path, command):
    src = tmp_path / "bad.txt"
    src.write_bytes(BAD.replace(b"\n", b"\t\xe5\x85\xac\xe5\x9b\xad\t1\n"))  # s1<TAB>公园<TAB>1
    if command == "search --queries":
        assert run("index", write(tmp_path / "s.txt", CLEAN), "-m", model, "-o", tmp_path / "i.h5")
    args = {
        "encode": ["encode", src],
        "index": ["index", src, "-o", tmp_path / "out.h5"],
        "cluster": ["cluster", src, "-k", 2],
        "similarity --pairs": ["similarity", "--pairs", src],
        "search --queries": ["search", tmp_path / "i.h5", "--queries", src],
        "eval": ["eval", src],
    }[command]
    assert_one_error(run(*args, "-m", model), f"{src}:2: not valid UTF-8", "--errors replace")
    result = run(*args, "-m", model, "--errors", "replace")
    assert result.exit_code == 0, result.output
    assert f"Warning: {src}: 1 line not valid UTF-8 (first: line 2) kept" in result.output
    assert not (tmp_path / "out.h5").exists() or command == "index"


@pytest.mark.parametrize(("policy", "rows"), [("replace", 3), ("skip", 2)])
def test_undecodable_line_replaced_or_skipped(model, tmp_path, policy, rows):
    src = tmp_path / "bad.txt"
    src.write_bytes(BAD)
    result = run("encode", src, "-m", model, "--errors", policy, "-o", tmp_path / "v.jsonl")
    assert result.exit_code == 0, result.output
    assert f"encode: {rows} vectors" in result.output
    assert "Warning: " in result.output and f"(--errors {policy})" in result.output
    got = [json.loads(x)["sentence"] for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    expected = {
        "replace": ["我们去公园", "\ufffd\ufffd bad", "天气很好"],
        "skip": ["我们去公园", "天气很好"],
    }
    assert got == expected[policy]


def test_index_skips_undecodable_and_empty_lines_with_exact_line_numbers(model, tmp_path):
    src = tmp_path / "bad.txt"
    tail = "\r\n  \r\n\u200b\r\n好的\r\n".encode()  # blank, spaces, zero-width only
    src.write_bytes(b"\xef\xbb\xbf" + BAD.replace(b"\n", b"\r\n") + tail)
    out = tmp_path / "i.h5"
    result = run("index", src, "-m", model, "-o", out, "--errors", "skip", "-q")
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert [s.decode() for s in f["sentences"][:]] == ["我们去公园", "天气很好", "好的"]
        assert f["line"][:].tolist() == [1, 3, 7]


def test_empty_inputs(model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n  \r\n\xe2\x80\x8b\n")
    result = run("encode", empty, "-m", model, "-o", tmp_path / "v.npy")
    assert result.exit_code == 0 and np.load(tmp_path / "v.npy").shape == (0, 16)
    result = run("encode", blank, "-m", model, "-o", tmp_path / "b.npy")
    assert result.exit_code == 0 and not np.load(tmp_path / "b.npy").any()
    assert np.load(tmp_path / "b.npy").shape == (3, 16)
    assert_one_error(run("cluster", blank, "-k", 2, "-m", model), "no sentences to cluster")
    assert_one_error(run("eval", blank, "-m", model), "blank.txt: no pairs")
    result = run("similarity", "--pairs", blank, "-m", model)
    assert result.exit_code == 0 and result.output.strip() == "similarity: 0 pairs"
    result = run("search", tmp_path / "none.h5", "--queries", blank, "-m", model)
    assert result.exit_code == 2 and "the query is empty" in result.output


def test_similarity_pairs_with_bom_crlf_and_blank_lines(model, tmp_path):
    pairs = ["我们去公园\t今天天气很好\t1", "北京买家店\t我们去公园\t0"]
    clean = write(tmp_path / "clean.tsv", pairs)
    dirty = tmp_path / "dirty.tsv"
    dirty.write_bytes(b"\xef\xbb\xbf\r\n" + "\r\n\r\n".join(pairs).encode() + b"\r\n")
    a, b = (
        run("similarity", "--pairs", clean, "-m", model),
        run("similarity", "--pairs", dirty, "-m", model),
    )
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 2


# --- files ------------------------------------------------------------------------------


def unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root ignores modes: /proc refuses new files to everyone
        return Path("/proc")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def test_missing_or_misplaced_files(model, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    assert_one_error(run("encode", tmp_path / "nope.txt", "-m", model), "nope.txt: no such file")
    assert_one_error(run("encode", tmp_path, "-m", model), "is a directory, expected a text")
    for out, message in [
        (tmp_path / "no" / "v.npy", "no: output directory does not exist"),
        (src / "v.npy", "c.txt: is not a directory"),
        (unwritable_dir(tmp_path) / "v.npy", "v.npy: cannot write there"),
    ]:
        if out.parent.name == "ro":
            message = "ro: output directory is not writable"
        assert_one_error(run("encode", src, "-m", model, "-o", out), message)
        assert_one_error(run("index", src, "-m", model, "-o", out), message)
    result = run("encode", src, "-m", model, "-o", tmp_path / "v.txt")
    assert_one_error(result, "v.txt: unknown extension; use one of .npy .h5 .jsonl .tsv")
    assert_one_error(run("encode", src, "-m", model, "--format", "npy"), "--format npy needs -o")
    bad_dir = unwritable_dir(tmp_path)
    result = run("similarity", "--pairs", src, "-m", model, "-o", bad_dir / "s.txt")
    assert_one_error(result)
    assert files_in(tmp_path) == sorted(["c.txt", *(["ro"] if bad_dir.name == "ro" else [])])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input(model, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    src.chmod(0)
    assert_one_error(run("encode", src, "-m", model), "not readable")


BROKEN = {
    "no-weights": ("model.safetensors", None, "model folder is missing model.safetensors"),
    "no-vocab": ("vocab.json", None, "model folder is missing vocab.json"),
    "no-idf": ("idf.tsv.gz", None, "model folder is missing idf.tsv.gz"),
    "newer": ("config.json", "newer", "(model format 99); this is"),
    "config-not-json": ("config.json", b'{"student": ', "unreadable config.json or vocab.json"),
    "truncated-weights": ("model.safetensors", "half", "model.safetensors: cannot load"),
    "vocab-mismatch": ("vocab.json", b'["<pad>", "<unk>", "a"]', "vocab.json has 3 entries"),
    "idf-changed": ("idf.tsv.gz", "other-idf", "differs from the IDF the model was trained"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_folder(model, tmp_path, case):
    name, content, message = BROKEN[case]
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    target = broken / name
    if content is None:
        target.unlink()
    elif content == "newer":
        cfg = json.loads(target.read_text(encoding="utf-8"))
        target.write_text(json.dumps(dict(cfg, format_version=99, tool_version="9.0")))
        message = f"written by ltd-bert 9.0 {message}"
    elif content == "half":
        raw = target.read_bytes()
        target.write_bytes(raw[: len(raw) // 2])
    elif content == "other-idf":
        import gzip

        target.write_bytes(gzip.compress("我们\t1.0\n".encode()))
    else:
        target.write_bytes(content)
    src = write(tmp_path / "c.txt", CLEAN)
    assert_one_error(run("encode", src, "-m", broken), message)
    if case == "newer":  # every command that loads a model says the same
        for args in (["similarity", "a", "b"], ["cluster", src, "-k", 2], ["quantize"]):
            assert_one_error(run(*args, "-m", broken) if args[0] != "quantize" else run(
                "quantize", broken, "-o", tmp_path / "q"), "(model format 99)")  # fmt: skip


def test_not_a_model_folder(tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    result = run("encode", src, "-m", tmp_path / "nothing")
    assert_one_error(result, "nothing: no such model folder (train one with `ltd train`)")


@pytest.mark.parametrize("fmt", ["jsonl", "npy", "h5", "tsv"])
def test_disk_full_while_encoding_leaves_nothing(model, tmp_path, monkeypatch, fmt):
    import ltd_bert.tasks.encode as encode_mod

    src = write(tmp_path / "c.txt", CLEAN)

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fmt in ("jsonl", "tsv"):
        monkeypatch.setattr(encode_mod, "_write_text", full)
    elif fmt == "npy":
        monkeypatch.setattr(np.lib.format, "open_memmap", full)
    else:
        monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    result = run("encode", src, "-m", model, "-o", tmp_path / f"v.{fmt}")
    assert_one_error(result, "No space left on device")
    assert files_in(tmp_path) == ["c.txt"]


def test_disk_full_while_indexing_leaves_nothing(model, tmp_path, monkeypatch):
    src = write(tmp_path / "c.txt", CLEAN)

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    assert_one_error(run("index", src, "-m", model, "-o", tmp_path / "i.h5"), "No space left")
    assert files_in(tmp_path) == ["c.txt"]


# --- vectors that do not fit --------------------------------------------------------------


def other_teacher_file(teacher_file: Path, dst: Path, dim: int | None = None, **changes):
    """A copy of `teacher_file` with changed settings, or one of random `dim`-d vectors."""
    if dim is None:
        shutil.copyfile(teacher_file, dst)
        with h5py.File(dst, "r+") as f:
            f.attrs["settings"] = json.dumps(dict(json.loads(f.attrs["settings"]), **changes))
        return dst
    with store.TeacherFile(teacher_file) as tf:
        sents, _, weights = tf.read(0, len(tf))
        settings = dict(tf.settings, dim=dim)
    f = store.create_store(dst, dim, settings)
    vecs = np.random.default_rng(0).normal(size=(len(sents), dim)).astype(np.float32)
    store.append_rows(f, sents, vecs, weights, list(range(len(sents))), len(sents))
    store.finalize(f)
    f.close()
    return dst


@pytest.mark.parametrize(
    "case", ["dim", "eps", "teacher", "idf", "plain-h5py", "truncated", "text", "missing"]
)
def test_eval_fidelity_with_a_teacher_file_that_does_not_fit(model, teacher_file, tmp_path, case):
    data = tmp_path / "t.h5"
    message = {
        "dim": "t.h5: vectors of dimension 8, the model gives 16",
        "eps": "other settings than model",
        "teacher": "(teacher: 'other', the model's:",
        "idf": "(idf_sha256:",
        "plain-h5py": "t.h5: not an ltd-bert teacher file",
        "truncated": "t.h5: not a readable HDF5 file (truncated or corrupt?)",
        "text": "t.h5: not a readable HDF5 file",
        "missing": "t.h5: no such teacher file",
    }[case]
    if case == "dim":
        other_teacher_file(teacher_file, data, dim=8)
    elif case in ("eps", "teacher", "idf"):
        change = {"eps": {"eps": 0.5}, "teacher": {"teacher": "other"}}.get(case)
        other_teacher_file(teacher_file, data, **(change or {"idf_sha256": "0" * 64}))
    elif case == "plain-h5py":
        with h5py.File(data, "w") as f:
            f["vectors"] = np.zeros((4, 16), np.float32)
    elif case == "truncated":
        raw = teacher_file.read_bytes()
        data.write_bytes(raw[: len(raw) // 2])
    elif case == "text":
        write(data, CLEAN)
    assert_one_error(run("eval", "fidelity", "--data", data, "-m", model), message)


def test_eval_fidelity_on_its_own_file(model, teacher_file):
    result = run("eval", "fidelity", "--data", teacher_file, "-m", model, "--json")
    assert result.exit_code == 0, result.output
    assert -1 <= json.loads(result.output)["centred_cosine"] <= 1


def test_eval_fidelity_calibrate_writes_the_mean_scale(model, teacher_file, tmp_path, monkeypatch):
    from ltd_bert.student import calibrate

    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    monkeypatch.setattr(calibrate, "MIN_ROWS", 2)  # the fixture file holds only a few rows
    result = run("eval", "fidelity", "--data", teacher_file, "-m", copy, "--calibrate")
    assert result.exit_code == 0, result.output
    assert "neighbour pairs: Spearman" in result.output and "written to" in result.output
    meta = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    assert len(meta["mean_scale_scores"]) == len(calibrate.SCALES)
    assert len(meta["whiten_scores"]) == len(calibrate.ALPHAS)
    loaded = Student.load(copy)
    assert loaded.mean_scale == meta["mean_scale"]
    assert (loaded.similarity_map != np.eye(loaded.dim)).any() == (meta["whiten"] > 0)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in model.iterdir())


def test_search_with_a_model_or_index_that_does_not_fit(model, model8, teacher_file, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    index = tmp_path / "i.h5"
    assert run("index", src, "-m", model, "-o", index, "-q").exit_code == 0
    result = run("search", index, "我们", "-m", model8)
    assert_one_error(result, "(dimension 16)", "gives dimension 8", f"search with -m {model}")
    raw = index.read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[: len(raw) // 2])
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["vectors"] = np.zeros((2, 16), np.float32)
    for path, message in [
        (tmp_path / "cut.h5", "cut.h5: not an HDF5 index file"),
        (tmp_path / "plain.h5", "plain.h5: not an ltd index (build one with `ltd index`)"),
        (teacher_file, "not an ltd index"),
        (tmp_path / "none.h5", "none.h5: no such index"),
        (src, "c.txt: not an HDF5 index file"),
    ]:
        assert_one_error(run("search", path, "我们", "-m", model), message)
