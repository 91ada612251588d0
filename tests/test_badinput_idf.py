"""`ltd idf build` / `ltd idf weights` fed what real corpora and users produce: odd text,
undecodable bytes, broken files and paths, a full disk. docs/robustness.md lists the
behaviour each test pins down."""

from __future__ import annotations

import errno
import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_one_error

from ltd_bert.cli import cli
from ltd_bert.text.clean import is_content_word
from ltd_bert.text.idf import load_idf

CLEAN = ["我们去公园散步", "今天天气很好", "iPhone 12 很好用 3.5", "北京买家店 ABC 123"]


def build(*args, output: Path, **kw):
    return CliRunner().invoke(
        cli, ["idf", "build", *map(str, args), "-o", str(output), "--workers", "1", "-q"], **kw
    )


def body(path: Path) -> list[str]:
    """The table without its header (which names the corpus files)."""
    return [x for x in path.read_text(encoding="utf-8").splitlines() if not x.startswith("#")]


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- text -------------------------------------------------------------------------------


def test_bom_crlf_fullwidth_zero_width_and_blank_lines_give_the_same_table(tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("\n".join(CLEAN) + "\n", encoding="utf-8")
    dirty = tmp_path / "dirty.txt"
    lines = [
        "我们去\u200b公园\u200d散步",  # zero-width space and joiner
        "",
        "   \t ",  # only white space
        "今天天气很好\u3000",  # ideographic space at the end
        "\u200b\ufeff",  # only format characters
        "ｉＰｈｏｎｅ　１２ 很好用 ３．５",  # full-width forms
        "北京买家店 ABC 123",
    ]
    dirty.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    assert build(clean, output=tmp_path / "a.tsv").exit_code == 0
    result = build(dirty, output=tmp_path / "b.tsv")
    assert result.exit_code == 0, result.output
    assert "from 4 documents (7 lines)" in result.output  # blank-after-cleaning: not documents
    assert body(tmp_path / "b.tsv") == body(tmp_path / "a.tsv")
    table = load_idf(tmp_path / "b.tsv")
    assert "iphone" in table.idf and "ｉｐｈｏｎｅ" not in table.idf


def test_punctuation_emoji_traditional_and_mixed_lines(tmp_path):
    src = tmp_path / "odd.txt"
    src.write_text(
        "。。！！……\n?!.,\n我爱😀北京🎉\n臺灣的天氣很好\nABC123我们abc\n第3.5版 iPhone12\n",
        encoding="utf-8",
    )
    result = build(src, output=tmp_path / "idf.tsv")
    assert result.exit_code == 0, result.output
    # punctuation-only lines are documents (non-empty) without words
    assert "from 6 documents (6 lines)" in result.output
    table = load_idf(tmp_path / "idf.tsv")
    assert table.n_docs == 6
    assert {"😀", "🎉", "abc123"} <= set(table.idf)  # symbols are content; lower-cased
    assert all(is_content_word(w) for w in table.idf)  # no punctuation-only words
    assert any(set(w) & set("臺灣") for w in table.idf)


def test_a_line_of_100k_characters(tmp_path):
    src = tmp_path / "long.txt"
    src.write_text("今天天气很好我们去公园散步。" * 7200 + "\n短句\n", encoding="utf-8")
    result = build(src, output=tmp_path / "idf.tsv")
    assert result.exit_code == 0, result.output
    assert "from 2 documents (2 lines)" in result.output
    assert load_idf(tmp_path / "idf.tsv").get("公园") == pytest.approx(0.4054651)  # ln(3/2)


BAD = "我们去公园\n".encode() + b"\xff\xfe\xe4\xbd bad\n" + "天气很好\n".encode()


@pytest.mark.parametrize(
    ("policy", "documents", "kept"),
    [("replace", 3, "kept, bad bytes replaced by U+FFFD"), ("skip", 2, "skipped")],
)
def test_undecodable_lines_replaced_or_skipped_and_counted(tmp_path, policy, documents, kept):
    src = tmp_path / "bad.txt"
    src.write_bytes(BAD)
    result = build(src, "--errors", policy, output=tmp_path / "idf.tsv")
    assert result.exit_code == 0, result.output
    assert f"from {documents} documents (3 lines, 1 undecodable lines ({policy}))" in (
        result.output
    )
    assert f"Warning: {src}: 1 line not valid UTF-8 (first: line 2) {kept}" in result.output


def test_undecodable_line_with_worker_processes(tmp_path):
    """A real process: the error must not leave worker tracebacks, nor hang at exit on
    chunks still queued for the stopped workers."""
    src = tmp_path / "bad.txt"
    src.write_bytes(("我们去公园\n" * 20000).encode() + b"\xff\n")
    out = tmp_path / "idf.tsv"
    cmd = [sys.executable, "-m", "ltd_bert", "idf", "build", src, "-o", out, "--workers", "2"]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"Error: {src}:20001: not valid UTF-8 (byte 0); use --errors replace or --errors skip "
        "to go on"
    ]
    assert leftovers(tmp_path, {"bad.txt"}) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n\n", b"  \n\t\n\xe3\x80\x80\n", b"\xef\xbb\xbf\r\n\xe2\x80\x8b\r\n"],
    ids=["empty", "blank", "spaces", "bom-zero-width"],
)
def test_nothing_to_count(tmp_path, content):
    src = tmp_path / "c.txt"
    src.write_bytes(content)
    assert_one_error(build(src, output=tmp_path / "idf.tsv"), "no non-empty lines")
    assert leftovers(tmp_path, {"c.txt"}) == []


# --- files ------------------------------------------------------------------------------


def test_input_is_a_directory(tmp_path):
    assert_one_error(build(tmp_path, output=tmp_path / "idf.tsv"), "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("我们\n", encoding="utf-8")
    src.chmod(0)
    assert_one_error(build(src, output=tmp_path / "idf.tsv"), "not readable")


def test_corrupt_and_truncated_gzip(tmp_path):
    fake = tmp_path / "fake.gz"
    fake.write_bytes(b"plain text, not gzip\n")
    assert_one_error(build(fake, output=tmp_path / "idf.tsv"), f"{fake}:1: cannot read")
    rng = random.Random(0)
    text = "".join(rng.choice("我们去公园散步今天天气很好") for _ in range(60000))
    data = gzip.compress("\n".join(text[i : i + 30] for i in range(0, 60000, 30)).encode())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    assert_one_error(build(cut, output=tmp_path / "idf.tsv"), f"{cut}:", "truncated or corrupt")
    assert leftovers(tmp_path, {"fake.gz", "cut.gz"}) == []


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory nobody may create files in: /proc for root (who ignores modes)."""
    if os.geteuid() == 0:
        return Path("/proc")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing", "missing: output directory does not exist"),
        ("file", "c.txt: is not a directory"),
        ("unwritable", "idf.tsv: cannot write there"),
    ],
)
def test_output_where_it_cannot_go(tmp_path, where, message):
    src = tmp_path / "c.txt"
    src.write_text("我们去公园\n", encoding="utf-8")
    parent = {"missing": tmp_path / "missing", "file": src}.get(where) or unwritable_dir(tmp_path)
    if where == "unwritable" and parent.name == "ro":
        message = "ro: output directory is not writable"
    assert_one_error(build(src, output=parent / "idf.tsv"), message)
    assert leftovers(tmp_path, {"c.txt", "ro"}) == []


def test_disk_full_while_writing_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "c.txt"
    src.write_text("我们去公园\n今天天气很好\n", encoding="utf-8")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert_one_error(build(src, output=tmp_path / "idf.tsv"), "No space left on device")
    assert leftovers(tmp_path, {"c.txt"}) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("我们\t1.0\n公园\tabc\n", "idf.tsv:2: IDF value 'abc' is not a number"),
        ("我们\t1.0\n公园\t-2\n", "idf.tsv:2: IDF value -2.0 must be finite and >= 0"),
        ("我们\t1.0\n公园\n", "idf.tsv:2: expected `word<TAB>idf`"),
        ("# only a header: 1\n\n", "idf.tsv: no IDF entries"),
        (b"\xff\xfe\t1.0\n", "idf.tsv: not a UTF-8 text file"),
        (None, "idf.tsv: no such IDF file"),
    ],
    ids=["not-a-number", "negative", "one-field", "no-entries", "not-utf8", "missing"],
)
def test_bad_idf_file(tmp_path, content, message):
    idf = tmp_path / "idf.tsv"
    if isinstance(content, str):
        idf.write_text(content, encoding="utf-8")
    elif content is not None:
        idf.write_bytes(content)
    result = CliRunner().invoke(cli, ["idf", "weights", "我们去公园", "--idf", str(idf)])
    assert_one_error(result, message)


def test_bad_user_dictionary(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("我们去公园\n", encoding="utf-8")
    ud = tmp_path / "user.txt"
    ud.write_bytes(b"\xff\xfe 3 n\n")
    result = build(src, "--user-dict", ud, output=tmp_path / "idf.tsv")
    assert_one_error(result, f"{ud}: not a usable jieba user dictionary", "utf-8")
    result = build(src, "--user-dict", tmp_path / "nope.txt", output=tmp_path / "idf.tsv")
    assert_one_error(result, "nope.txt: no such user dictionary")
