"""Long texts: the teacher pools a text over the window as successive windows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import table

from ltd_bert.teacher.model import PoolingSettings, Teacher
from ltd_bert.text.weights import Weighter

LONG = "我们去公园散步。今天天气很好！他说中国很大，我爱北京。" * 6  # 162 characters


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    return Teacher(str(tiny_bert))


@pytest.fixture(scope="module")
def weighter():
    return Weighter(table(我们=2.0, 公园=6.0, 今天=3.0), eps=1.0)


def settings(long="windows", pooling="idf", max_length=24):
    return PoolingSettings(pooling, -1, "query: ", max_length, long)


def test_windows_cover_the_text_fit_the_window_and_end_at_sentence_ends(teacher):
    st = settings()
    (spans,) = teacher.window_spans([LONG], st)
    assert spans[0][0] == 0 and spans[-1][1] == len(LONG)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # contiguous
    for a, b in spans:
        ids = teacher.tokenizer(st.prefix + LONG[a:b])["input_ids"]
        assert len(ids) <= st.max_length
    # every window but the last ends after a sentence end of its second half
    assert sum(LONG[b - 1] in "。！" for _, b in spans[:-1]) == len(spans) - 1


def test_windowed_vector_is_the_idf_weighted_combination_of_its_windows(teacher, weighter):
    cw = weighter.char_weights(LONG)
    (spans,) = teacher.window_spans([LONG], settings())
    assert len(spans) > 2
    vec, truncated = teacher.embed([LONG], [cw], settings())
    assert truncated == 0
    parts, masses = [], []
    for a, b in spans:
        piece = cw[a:b]
        v, t = teacher.embed([LONG[a:b]], [piece / piece.sum()], settings("truncate"))
        assert t == 0
        parts.append(v[0])
        masses.append(piece.sum())
    expected = np.average(np.stack(parts), axis=0, weights=masses)
    np.testing.assert_allclose(vec[0], expected, rtol=1e-4, atol=1e-6)
    cut, truncated = teacher.embed([LONG], [cw], settings("truncate"))
    assert truncated == 1 and not np.allclose(cut[0], vec[0])


def test_texts_that_fit_are_pooled_exactly_as_before(teacher, weighter):
    texts = ["我们去公园", "今天天气很好,我们去散步!", LONG]
    cw = [weighter.char_weights(t) for t in texts]
    win, _ = teacher.embed(texts, cw, settings(max_length=64))
    cut, _ = teacher.embed(texts[:2], cw[:2], settings("truncate", max_length=64))
    np.testing.assert_allclose(win[:2], cut, rtol=1e-5, atol=1e-6)  # (batch shapes differ)
    # in a batch with a windowed text, the short ones are still computed alone
    short, _ = teacher.embed(texts[:1], cw[:1], settings())
    mixed, _ = teacher.embed([texts[0], LONG], [cw[0], cw[2]], settings())
    np.testing.assert_allclose(mixed[0], short[0], rtol=1e-5, atol=1e-6)


def test_mean_pooling_weights_windows_by_their_tokens(teacher):
    (spans,) = teacher.window_spans([LONG], settings())
    vec, _ = teacher.embed([LONG], None, settings(pooling="mean"))
    parts, counts = [], []
    for a, b in spans:
        v, _ = teacher.embed([LONG[a:b]], None, settings("truncate", pooling="mean"))
        parts.append(v[0])
        counts.append(len(teacher.tokenizer("query: " + LONG[a:b])["input_ids"]))
    np.testing.assert_allclose(
        vec[0], np.average(parts, axis=0, weights=counts), rtol=1e-4, atol=1e-6
    )


# The student reads long texts in windows too (runtime/base.py `windows`).


def test_student_windows_split_evenly_and_keep_each_windows_share():
    from ltd_bert.runtime.base import windows

    w = np.array([0.1] * 5 + [0.3, 0.2] + [0.0] * 3, dtype=np.float32)  # 10 characters
    win = windows(["abcdefghij", "xy", ""], [w, np.ones(2) / 2, w[:0]], 4, 100)
    rows, row_w, combine = win.rows, win.weights, win.combine
    # ceil(10 / 4) = 3 windows of 3, 4, 3 characters; the last has no weight and is dropped
    assert rows == ["abc", "defg", "xy", ""]
    np.testing.assert_allclose(row_w[0], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(row_w[1], np.array([1, 1, 3, 2]) / 7, rtol=1e-6)
    out = combine(np.array([[1.0], [2.0], [5.0], [0.0]], dtype=np.float32))
    # shares 0.3 and 0.7 of the text's weight
    np.testing.assert_allclose(out[:, 0], [0.3 * 1 + 0.7 * 2, 5.0, 0.0], rtol=1e-6)


def test_student_windows_leave_short_texts_and_cut_at_max_chars():
    from ltd_bert.runtime.base import windows

    texts = ["abc", "abcdefgh"]
    weights = [np.ones(3) / 3, np.ones(8) / 8]
    win = windows(texts, weights, 8, 100)
    assert win.rows == texts
    vecs = np.arange(4.0).reshape(2, 2)
    assert win.combine(vecs) is vecs
    assert windows(texts, weights, 0, 100).rows == texts  # 0: whole texts
    win = windows(["abcdefgh"], [np.ones(8) / 8], 2, 4)  # only 4 characters read
    assert win.rows == ["ab", "cd"] and [float(x.sum()) for x in win.weights] == [1.0, 1.0]
    assert win.owner.tolist() == [0, 0] and win.share.tolist() == [0.5, 0.5]


def test_student_vector_of_a_long_text_is_its_windows_combined(tiny_model):
    from ltd_bert.student.model import Student

    student = Student.load(tiny_model[0])
    student.window = 40
    text = "我们去公园散步。今天天气很好！他说中国很大，我爱北京。" * 4  # 108 characters
    (texts,), (w,) = student.prepare([text])
    assert len(texts) == 108 and student.max_chars >= 108
    got = student.network_prepared([texts], [w])  # whole
    bounds = [0, 36, 72, 108]
    parts = [texts[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    mass = [w[a:b].sum() for a, b in zip(bounds, bounds[1:], strict=False)]
    spans = list(zip(bounds, bounds[1:], strict=False))
    each = student.network_prepared(
        parts, [w[a:b] / m for (a, b), m in zip(spans, mass, strict=True)]
    )
    windowed = student.encode([text], space="centred")
    lex = student.current_lexicon()
    words = student.weighter.words
    extra = 0 if lex is None else lex.pooled([texts], [w], words, student.max_chars)[0]
    np.testing.assert_allclose(windowed[0], np.asarray(mass) @ each + extra, rtol=1e-4, atol=1e-5)
    assert not np.allclose(windowed[0], got[0] + extra, atol=1e-4)  # not the whole recurrence
    student.window = 0
    np.testing.assert_allclose(
        student.encode([text], space="centred")[0], got[0] + extra, atol=1e-5
    )
