from __future__ import annotations

import math

import numpy as np
import pytest

from ltd_bert.common.errors import InputError
from ltd_bert.common.stats import rankdata, spearman
from ltd_bert.tasks.evaluate import read_pairs


def test_rankdata_ties():
    assert rankdata(np.array([3, 1, 2, 2])).tolist() == [4, 1, 2.5, 2.5]


def test_spearman_by_hand_with_ties():
    # ranks a = 1, 2.5, 2.5, 4; b = 1, 3, 2, 4 → 4.5 / sqrt(4.5 * 5)
    got = spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4]))
    assert got == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1)
    assert spearman(np.ones(4), np.arange(4)) == 0.0


def test_spearman_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200), rng.normal(size=200)
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)


def test_read_both_formats(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("a\tb\t1\n{x}\ty\t0\n\nc\td\t2.5\n", encoding="utf-8")
    p = read_pairs(tsv)
    assert (p.s1, p.s2, p.labels.tolist()) == (["a", "{x}", "c"], ["b", "y", "d"], [1, 0, 2.5])
    js = tmp_path / "p.jsonl"
    js.write_text('{"sentence1": "a", "sentence2": "b", "label": 3}\n', encoding="utf-8")
    assert read_pairs(js).labels.tolist() == [3]


def test_fixed_sample(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("".join(f"s{i}\tt{i}\t{i}\n" for i in range(50)), encoding="utf-8")
    a, b = read_pairs(f, max_pairs=10), read_pairs(f, max_pairs=10)
    assert a.s1 == b.s1 and len(a.s1) == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a\tb\t1\na\tb\n", r"p.tsv:2: .*no label"),
        (b"a\tb\t1\na\tb\tx\n", r"p.tsv:2: label 'x' is not a number"),
        (b"a\tb\t1\nonly one field\n", r"p.tsv:2: expected sentence1<TAB>sentence2"),
        (b'{"sentence1": "a"}\n', r"p.tsv:1: expected a JSON object"),
        (b"\xff\tb\t1\n", r"p.tsv:1: not valid UTF-8"),
        (b"\n\n", r"p.tsv: no pairs"),
    ],
)
def test_malformed_lines(tmp_path, content, message):
    f = tmp_path / "p.tsv"
    f.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_pairs(f)
