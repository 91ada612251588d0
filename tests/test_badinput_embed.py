"""`ltd teacher-embed` (and `merge`) fed what real corpora and users produce: odd text,
undecodable bytes, very long lines, broken files and paths, a full disk. docs/robustness.md
lists the behaviour each test pins down."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_error

from ltd_bert.cli import cli
from ltd_bert.teacher import store
from ltd_bert.teacher.store import TeacherFile

CLEAN = ["我们去公园", "", "今天天气很好", "iPhone 12 很好用", "北京买家店 ABC"]


@pytest.fixture
def embed(tiny_bert):
    def run(*args, idf="jieba"):
        base = ["teacher-embed", "--idf", str(idf), "--teacher", str(tiny_bert), "-q"]
        base += ["--chunk-size", "2", "--batch-size", "4", "--threads", "1"]
        return CliRunner().invoke(cli, base + [str(a) for a in args])

    return run


def rows(path: Path):
    with TeacherFile(path) as tf:
        sents, vecs, weights = tf.read(0, len(tf))
        return sents, vecs, weights, tf.f["line"][:].tolist()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- text -------------------------------------------------------------------------------


def test_bom_crlf_fullwidth_and_zero_width_give_the_same_file(embed, tmp_path):
    clean = write(tmp_path / "clean.txt", CLEAN)
    dirty = tmp_path / "dirty.txt"
    lines = [
        "我们去\u200b公园",
        "  \u3000 ",
        "今天天气很好\u200d",
        "ｉＰｈｏｎｅ　１２ 很好用",
        "北京买家店 ＡＢＣ",
    ]
    dirty.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    assert embed("-i", clean, "-o", tmp_path / "a.h5").exit_code == 0
    result = embed("-i", dirty, "-o", tmp_path / "b.h5")
    assert result.exit_code == 0, result.output
    a, b = rows(tmp_path / "a.h5"), rows(tmp_path / "b.h5")
    assert a[0] == b[0] == ["我们去公园", "今天天气很好", "iPhone 12 很好用", "北京买家店 ABC"]
    np.testing.assert_array_equal(a[1], b[1])
    assert a[3] == b[3] == [0, 2, 3, 4]


def test_empty_lines_skipped_and_counted_the_rest_kept(embed, tmp_path):
    lines = [
        "",  # 0 empty
        "   ",  # 1 spaces only
        "\u200b\u200c\ufeff",  # 2 zero-width only: empty once cleaned
        "。。！！",  # 3 punctuation only: kept, uniform weights
        "我爱😀北京🎉",  # 4 emoji
        "臺灣的天氣很好",  # 5 traditional characters
        "ABC123我们abc第3.5版",  # 6 mixed
        "我们去公园",  # 7
        "我们去公园",  # 8 duplicates are kept
    ]
    src = write(tmp_path / "odd.txt", lines)
    out = tmp_path / "t.h5"
    result = embed("-i", src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "6 vectors" in result.output and "3 empty lines skipped" in result.output
    sents, vecs, weights, line = rows(out)
    assert line == [3, 4, 5, 6, 7, 8]
    assert sents[0] == "。。!!" and sents[1:3] == lines[4:6]  # NFKC: full-width ！ → !
    np.testing.assert_allclose(weights[0], [0.25] * 4)
    assert np.isfinite(vecs).all() and (np.linalg.norm(vecs, axis=1) > 0).all()
    assert weights[1][2] > 0  # 😀 is content


@pytest.mark.parametrize("mode, truncated", [("windows", 0), ("truncate", 1)])
def test_a_line_of_100k_characters_is_pooled_over_windows_or_truncated(
    embed, tmp_path, mode, truncated
):
    long = "今天天气很好我们去公园散步。" * 7200  # 100,800 characters
    src = write(tmp_path / "long.txt", [long, "短句"])
    out = tmp_path / "t.h5"
    result = embed("-i", src, "-o", out, "--long-texts", mode)
    assert result.exit_code == 0, result.output
    # the tiny teacher has 64 positions: the limit is the smaller of that and --max-length
    assert f"0 empty lines skipped, {truncated} truncated to 64 tokens" in result.output
    sents, vecs, weights, _ = rows(out)
    assert sents[0] == long and len(weights[0]) == len(long)  # stored whole
    assert np.isfinite(vecs).all()


def test_rows_of_equal_length(embed, tmp_path):
    """A block whose rows all have the same length (here: four-character idioms, and a
    last block of one line) once crashed in h5py's writing of the weights."""
    src = write(
        tmp_path / "idioms.txt", ["一心一意", "三心二意", "七上八下", "十全十美", "五湖四海"]
    )
    result = embed("-i", src, "-o", tmp_path / "t.h5")
    assert result.exit_code == 0, result.output
    sents, _, weights, line = rows(tmp_path / "t.h5")
    assert len(sents) == 5 and line == [0, 1, 2, 3, 4]
    assert all(len(w) == 4 and w.sum() == pytest.approx(1.0) for w in weights)


BAD = "我们去公园\n".encode() + b"\xff\xfe bad\n" + "天气很好\n\n好的\n".encode()


def test_undecodable_line_stops_then_skip_resumes_with_exact_line_numbers(embed, tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(BAD)
    out = tmp_path / "t.h5"
    result = embed("-i", src, "-o", out)
    assert_one_error(result, f"{src}:2: not valid UTF-8", "--errors replace")
    assert not out.exists()
    result = embed("-i", src, "-o", out, "--errors", "skip")
    assert result.exit_code == 0, result.output
    assert "3 vectors" in result.output and "from 5 lines" in result.output
    assert "1 empty lines skipped" in result.output and "1 undecodable" in result.output
    assert f"Warning: {src}: 1 line not valid UTF-8 (first: line 2) skipped" in result.output
    sents, _, _, line = rows(out)
    assert sents == ["我们去公园", "天气很好", "好的"]
    assert line == [0, 2, 4]  # input line numbers, the skipped line counted
    with h5py.File(out) as f:
        assert f.attrs["lines_done"] == 5


def test_undecodable_line_replaced(embed, tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(BAD)
    out = tmp_path / "t.h5"
    result = embed("-i", src, "-o", out, "--errors", "replace")
    assert result.exit_code == 0, result.output
    assert "4 vectors" in result.output and "1 undecodable" in result.output
    assert "(first: line 2) kept, bad bytes replaced by U+FFFD" in result.output
    sents, _, _, line = rows(out)
    assert sents[1] == "\ufffd\ufffd bad" and line == [0, 1, 2, 4]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "no lines to embed"), (b"\n \n\xe2\x80\x8b\n", "no non-empty sentences to embed")],
    ids=["empty", "blank"],
)
def test_nothing_to_embed(embed, tmp_path, content, message):
    src = tmp_path / "c.txt"
    src.write_bytes(content)
    assert_one_error(embed("-i", src, "-o", tmp_path / "t.h5"), message)
    assert not (tmp_path / "t.h5").exists()


# --- files ------------------------------------------------------------------------------


def unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root ignores modes: /proc refuses new files to everyone
        return Path("/proc")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def test_missing_unreadable_or_misplaced_files(embed, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    out = tmp_path / "t.h5"
    assert_one_error(embed("-i", tmp_path / "nope.txt", "-o", out), "nope.txt")
    assert_one_error(embed("-i", tmp_path, "-o", out), "is a directory")
    assert_one_error(embed("-i", src, "-o", tmp_path / "no" / "t.h5"), "output directory does")
    assert_one_error(embed("-i", src, "-o", src / "t.h5"), "c.txt: is not a directory")
    bad_dir = unwritable_dir(tmp_path)
    msg = "cannot create" if bad_dir.name == "proc" else "not writable"
    assert_one_error(embed("-i", src, "-o", bad_dir / "t.h5"), msg)
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input(embed, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    src.chmod(0)
    assert_one_error(embed("-i", src, "-o", tmp_path / "t.h5"), "not readable")


def test_idf_file_with_a_bad_line(embed, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    idf = tmp_path / "idf.tsv"
    idf.write_text("# ltd-bert idf v1\n我们\t1.5\n公园\t1,5\n", encoding="utf-8")
    result = embed("-i", src, "-o", tmp_path / "t.h5", idf=idf)
    assert_one_error(result, f"{idf}:3: IDF value '1,5' is not a number")
    result = embed("-i", src, "-o", tmp_path / "t.h5", idf=tmp_path / "none.tsv")
    assert_one_error(result, "none.tsv: no such IDF file")


def test_teacher_folder_that_is_not_a_model(tiny_bert, tmp_path):
    src = write(tmp_path / "c.txt", CLEAN)
    base = ["teacher-embed", "-i", str(src), "--idf", "jieba", "-q", "-o", str(tmp_path / "t")]
    empty = tmp_path / "empty_teacher"
    empty.mkdir()
    result = CliRunner().invoke(cli, [*base, "--teacher", str(empty)])
    assert_one_error(result, "not a transformers model folder (no config.json)")
    broken = tmp_path / "broken_teacher"
    shutil.copytree(tiny_bert, broken)
    (broken / "config.json").write_text("{ not json", encoding="utf-8")
    result = CliRunner().invoke(cli, [*base, "--teacher", str(broken)])
    assert_one_error(result, "cannot load teacher")


@pytest.fixture
def made(embed, tmp_path):
    """A complete file from the clean corpus (eps 1, jieba IDF, chunk size 2)."""
    src = write(tmp_path / "c.txt", CLEAN)
    out = tmp_path / "t.h5"
    assert embed("-i", src, "-o", out).exit_code == 0
    return src, out


def test_file_made_with_other_settings_is_refused(embed, made, tiny_idf, tiny_bert, tmp_path):
    src, out = made
    before = out.read_bytes()
    result = embed("-i", src, "-o", out, "--eps", "0.5")
    assert_one_error(result, "made with other settings (eps: 1.0, now 0.5)", "--overwrite")
    result = embed("-i", src, "-o", out, idf=tiny_idf)
    assert_one_error(result, "made with other settings (idf_sha256:")
    other = tmp_path / "other_teacher"
    shutil.copytree(tiny_bert, other)
    result = CliRunner().invoke(
        cli,
        ["teacher-embed", "-i", str(src), "-o", str(out), "--idf", "jieba", "-q"]
        + ["--chunk-size", "2", "--batch-size", "4", "--teacher", str(other)],
    )
    assert_one_error(result, "made with other settings (teacher:", "'other_teacher'")
    assert out.read_bytes() == before  # refused means untouched


@pytest.mark.parametrize("which", ["output", "partial"])
@pytest.mark.parametrize("damage", ["truncated", "plain-h5py"])
def test_unusable_earlier_file_is_refused_until_overwrite(embed, made, which, damage):
    src, out = made
    target = out if which == "output" else out.with_name("t.h5.partial")
    if which == "partial":
        out.rename(target)
    if damage == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        message = "not a readable HDF5 file (truncated or corrupt?)"
    else:
        target.unlink()
        with h5py.File(target, "w") as f:
            f["vectors"] = np.zeros((3, 16), np.float32)
        message = "not an ltd-bert teacher file"
    assert_one_error(embed("-i", src, "-o", out), message, "use --overwrite to start over")
    result = embed("-i", src, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(rows(out)[0]) == 4 and not out.with_name("t.h5.partial").exists()


def test_merge_refuses_bad_parts(embed, made, tmp_path):
    src, _ = made
    for i in range(2):
        r = embed("-i", src, "-o", tmp_path / f"p{i}.h5", "--shard", f"{i}/2")
        assert r.exit_code == 0, r.output
    r = embed("-i", src, "-o", tmp_path / "odd.h5", "--shard", "1/2", "--eps", "0.5")
    assert r.exit_code == 0, r.output
    data = (tmp_path / "p1.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    out = tmp_path / "all.h5"

    def merge(*parts):
        args = ["teacher-embed", "merge", *[str(tmp_path / p) for p in parts], "-o", str(out)]
        return CliRunner().invoke(cli, args)

    assert_one_error(merge("p0.h5", "odd.h5"), "made with other settings (eps: 0.5, now 1.0)")
    assert_one_error(merge("p0.h5", "cut.h5"), "cut.h5: not a readable HDF5 file")
    assert_one_error(merge("p0.h5", "c.txt"), "c.txt: not a readable HDF5 file")
    assert_one_error(merge("p0.h5"), "shards [1] of 2 are missing")
    assert not out.exists() and not out.with_name("all.h5.partial").exists()
    assert merge("p0.h5", "p1.h5").exit_code == 0
    assert rows(out)[0] == rows(tmp_path / "t.h5")[0]


def test_disk_full_keeps_the_partial_file_and_resumes(embed, tmp_path, monkeypatch):
    src = write(tmp_path / "c.txt", CLEAN + ["他说中国很大", "我爱北京"])
    out = tmp_path / "t.h5"
    real = store.append_rows
    calls = []

    def full(f, *args):
        calls.append(1)
        if len(calls) == 2:  # the second block: the disk fills up in the middle of it
            f["vectors"].resize(f["vectors"].shape[0] + 1, axis=0)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(f, *args)

    monkeypatch.setattr(store, "append_rows", full)
    assert_one_error(embed("-i", src, "-o", out), "No space left on device")
    assert not out.exists() and out.with_name("t.h5.partial").exists()
    monkeypatch.setattr(store, "append_rows", real)
    result = embed("-i", src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "resumed at line 2" in result.output
    assert embed("-i", src, "-o", tmp_path / "clean.h5").exit_code == 0
    a, b = rows(out), rows(tmp_path / "clean.h5")
    assert a[0] == b[0] and a[3] == b[3]
    np.testing.assert_array_equal(a[1], b[1])
