from __future__ import annotations

import math

import pytest

from ltd_bert.common.errors import IdfError, InputError
from ltd_bert.text.idf import build_idf, load_idf

CORPUS = "我们 去 公园\n我们 我们 散步\n\n公园 散步 !\r\n。。\n"


def test_tiny_corpus_by_hand(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / "idf.tsv"
    stats = build_idf([str(src)], out, workers=1)
    assert (stats.lines, stats.documents, stats.words) == (5, 4, 4)  # the blank line is no doc
    t = load_idf(out)
    # N = 4; df: 我们 2 (twice in one line counts once), 公园 2, 散步 2, 去 1
    assert t.idf == pytest.approx(
        {
            "我们": math.log(5 / 3),
            "公园": math.log(5 / 3),
            "散步": math.log(5 / 3),
            "去": math.log(5 / 2),
        }
    )
    assert t.n_docs == 4
    assert t.default == pytest.approx(math.log(5 / 3))  # the median
    assert t.meta["formula"] == "idf(w) = ln((N + 1) / (df(w) + 1))"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# ltd-bert idf v1"
    assert lines[-1] == f"去\t{math.log(5 / 2):.7f}\t1"
    assert not list(tmp_path.glob("*.partial"))


def test_min_df_and_gzip(tmp_path):
    import gzip

    src = tmp_path / "c.txt.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write(CORPUS)
    stats = build_idf([str(src)], tmp_path / "idf.tsv", workers=1, min_df=2)
    assert stats.words == 3 and stats.dropped_rare == 1
    assert "去" not in load_idf(tmp_path / "idf.tsv").idf


def test_parallel_equals_single(tmp_path, sample_lines):
    src = tmp_path / "c.txt"
    src.write_text("\n".join(sample_lines) + "\n", encoding="utf-8")
    build_idf([str(src)], tmp_path / "one.tsv", workers=1)
    build_idf([str(src)], tmp_path / "two.tsv", workers=2)
    assert (tmp_path / "one.tsv").read_bytes() == (tmp_path / "two.tsv").read_bytes()


@pytest.fixture
def sample_lines():
    from conftest import SAMPLE_CORPUS

    return SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:5000]


def test_empty_corpus(tmp_path):
    src = tmp_path / "empty.txt"
    src.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="no non-empty lines"):
        build_idf([str(src)], tmp_path / "idf.tsv", workers=1)
    assert not (tmp_path / "idf.tsv").exists()


def test_undecodable(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes("我们 去\n".encode() + b"\xff\xfe bad\n" + "公园\n".encode())
    with pytest.raises(InputError, match=r"bad.txt:2: not valid UTF-8"):
        build_idf([str(src)], tmp_path / "idf.tsv", workers=1)
    stats = build_idf([str(src)], tmp_path / "idf.tsv", workers=1, errors="skip")
    assert (stats.documents, stats.bad_lines) == (2, 1)


def test_missing_input_and_output_dir(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        build_idf([str(tmp_path / "nope.txt")], tmp_path / "idf.tsv")
    src = tmp_path / "c.txt"
    src.write_text(CORPUS, encoding="utf-8")
    with pytest.raises(InputError, match="output directory does not exist"):
        build_idf([str(src)], tmp_path / "no" / "idf.tsv")


def test_load_jieba_builtin():
    t = load_idf("jieba")
    assert len(t) > 200_000 and t.source == "jieba"
    assert t.get("公园") > 0 and t.get("从没见过的词xyz") == t.default


def test_bad_idf_lines(tmp_path):
    p = tmp_path / "idf.tsv"
    p.write_text("# ltd-bert idf v1\n我们\t1.5\n公园\tabc\n", encoding="utf-8")
    with pytest.raises(IdfError, match=r"idf.tsv:3: IDF value 'abc' is not a number"):
        load_idf(p)
    p.write_text("我们\t-1\n", encoding="utf-8")
    with pytest.raises(IdfError, match=r":1: IDF value -1.0 must be finite"):
        load_idf(p)
    p.write_text("justoneword\n", encoding="utf-8")
    with pytest.raises(IdfError, match=r":1: expected `word<TAB>idf`"):
        load_idf(p)
    with pytest.raises(IdfError, match="no such IDF file"):
        load_idf(tmp_path / "missing.tsv")


def test_hash_words_are_data(tmp_path):
    p = tmp_path / "idf.tsv"
    p.write_text("# documents: 3\n#c\t2.0\n", encoding="utf-8")
    assert load_idf(p).idf == {"#c": 2.0}
