from __future__ import annotations

import numpy as np
import pytest
from conftest import char_tokenizer, table

from ltd_bert.text.clean import clean_text
from ltd_bert.text.weights import Weighter, token_weights

IDF = table(我们=2.0, 去=3.0, 公园=6.0, 买=3.0, iphone=12.0, 好=1.0)


def weights(text: str, eps: float) -> list[float]:
    return Weighter(IDF, eps).char_weights(text).tolist()


@pytest.mark.parametrize(
    ("eps", "expected"),
    [
        (0.0, [1 / 11, 1 / 11, 3 / 11, 3 / 11, 3 / 11]),  # 我们 2/2 each, 去 3, 公园 6/2 each
        (1.0, [2 / 16, 2 / 16, 4 / 16, 4 / 16, 4 / 16]),
    ],
)
def test_known_words(eps, expected):
    assert weights("我们去公园", eps) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("eps", "expected"),
    [
        (0.0, [1 / 9, 1 / 9, 3 / 9, 2 / 9, 2 / 9]),  # 散步 unseen → default 4.0, 2 per char
        (1.0, [2 / 14, 2 / 14, 4 / 14, 3 / 14, 3 / 14]),
    ],
)
def test_unknown_word_gets_default(eps, expected):
    assert weights("我们去散步", eps) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("eps", "expected"),
    [
        # 我们 | 买 | iPhone (lower-cased lookup, 12 over 6 letters) | , | 好 | !
        (0.0, ([1, 1, 3] + [2] * 6 + [0, 1, 0], 18)),
        (1.0, ([2, 2, 4] + [3] * 6 + [0, 2, 0], 28)),
    ],
)
def test_punctuation_and_latin(eps, expected):
    values, total = expected
    got = weights("我们买iPhone,好!", eps)
    assert got == pytest.approx([v / total for v in values], abs=1e-7)


def test_only_punctuation_is_uniform():
    assert weights("!?。", 1.0) == pytest.approx([1 / 3] * 3)


def test_empty_text():
    assert weights("", 1.0) == []


def test_clean_text():
    assert clean_text("\ufeff 你好\u200b，\t世界\r\n ") == "你好, 世界"
    assert clean_text("ＡＢＣ１２３　x") == "ABC123 x"
    assert clean_text("a\x00b\x07c") == "abc"


def test_weighter_call_cleans():
    text, w = Weighter(IDF, 1.0)("  我们\u3000去公园 ")
    assert text == "我们 去公园"
    assert w[2] == 0.0 and abs(w.sum() - 1) < 1e-6


def test_token_weights_offsets():
    cw = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    # "q: " prefix of 3 chars, then the text; (0, 0) is a special token
    offsets = [(0, 0), (0, 1), (1, 2), (3, 5), (5, 6), (6, 7), (0, 0)]
    got = token_weights(cw, offsets, text_start=3)
    assert got.tolist() == pytest.approx([0, 0, 0, 0.3, 0.3, 0.4, 0])


def test_token_mapping_wordpiece_char_tokenizer(tmp_path):
    tok = char_tokenizer(tmp_path)
    text = "我们去公园"
    cw = Weighter(IDF, 1.0).char_weights(text)
    enc = tok("query: " + text, return_offsets_mapping=True)
    tw = token_weights(cw, enc["offset_mapping"], text_start=len("query: "))
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == ["[CLS]", "query", ":", "我", "们", "去", "公", "园", "[SEP]"]
    assert tw.tolist() == pytest.approx([0, 0, 0, *cw.tolist(), 0])


def test_token_mapping_unigram_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [
        (p, -1.0) for p in ["▁", "▁我们", "去", "公园", "▁query", ":", "我", "们", "公", "园"]
    ]
    tk = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace()
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    text = "我们去公园"
    cw = Weighter(IDF, 0.0).char_weights(text)  # 1,1,3,3,3 / 11
    enc = tok("query: " + text, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == ["<s>", "▁query", ":", "▁我们", "去", "公园", "</s>"]
    tw = token_weights(cw, enc["offset_mapping"], text_start=len("query: "))
    assert tw.tolist() == pytest.approx([0, 0, 0, 2 / 11, 3 / 11, 6 / 11, 0], abs=1e-6)


def test_fast_segmenter_equals_jieba_on_sample_corpus(monkeypatch):
    """`FastJieba` (rjieba's route, jieba's HMM) cuts exactly as jieba does; from the first
    line here (a process normally cuts its first JIEBA_FIRST texts with jieba itself)."""
    pytest.importorskip("rjieba")
    import jieba
    from conftest import SAMPLE_CORPUS

    from ltd_bert.text.segment import FastJieba, get_segmenter

    monkeypatch.setattr(FastJieba, "JIEBA_FIRST", 0)
    python = get_segmenter(None, "jieba", load=True)
    python = python.jieba if isinstance(python, FastJieba) else python
    assert python is jieba.dt
    fast = FastJieba(python)
    lines = [clean_text(x) for x in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()]
    lines += ["我们常在吃早饭时聊天", "轮到檀健次的舞台", "24-25赛季 nano-NaH 3.5%"]
    # Latin letters and digits among Chinese characters (rjieba joins their runs)
    lines += ["在高速遇到长达10几公里的下坡", "国足U23亚洲杯亚军", "IT之家获悉", "还是4S看下记录"]
    lines += ["我的QQ号码", "B超检查", "买了T恤衫", "装了个office2007还要激活", "近20年来"]
    assert [fast.lcut(t) for t in lines] == [python.lcut(t, HMM=True) for t in lines]
    assert fast._rust is not None  # rjieba did the cutting


def test_hmm_cut_equals_jieba_finalseg():
    """`hmm_cut` is jieba's HMM word for word: ties (常在吃: two paths 1.5e-7 apart), Latin
    letters, digits and percentages inside a buffer, single characters."""
    from conftest import SAMPLE_CORPUS
    from jieba import finalseg

    from ltd_bert.text.segment import hmm_cut

    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:300]

    texts = [
        "常在吃",
        "檀健次",
        "ab12.5%中文x",
        "x",
        "他说的确实在理",
        "3.5%",
        "，。",
        "我们常在吃早饭",
    ]
    texts += [x for line in lines for x in (line[:6], line[2:9], line)]
    for text in texts:
        assert hmm_cut(text) == list(finalseg.cut(text)), text


def test_fast_segmenter_starts_with_jieba(monkeypatch):
    """A process that cuts a few texts does not import rjieba (~0.3 s of start-up)."""
    pytest.importorskip("rjieba")
    from ltd_bert.text.segment import FastJieba, get_segmenter

    monkeypatch.setattr(FastJieba, "JIEBA_FIRST", 3)
    python = get_segmenter(None, "jieba")
    fast = FastJieba(python.jieba if isinstance(python, FastJieba) else python)
    for _ in range(3):
        fast.lcut("今天天气很好")
    assert fast._rust is None
    fast.lcut("今天天气很好")
    assert fast._rust is not None


def test_fast_segmenter_keeps_jieba_blocks(monkeypatch):
    pytest.importorskip("rjieba")
    from ltd_bert.text.segment import FastJieba, segment

    monkeypatch.setattr(FastJieba, "JIEBA_FIRST", 0)

    for text in ["24-25赛季 nano-NaH 3.5%", "  a  b", "iPhone 12 降价了!", "😀表情包"]:
        assert segment(text, kind="fast") == segment(text)


def test_rjieba_segmenter(tmp_path):
    """`rjieba`: rjieba's own cut of every text (one call each); jieba's words on ordinary
    sentences; a user dictionary refused."""
    rjieba = pytest.importorskip("rjieba")
    from ltd_bert.common.errors import InputError
    from ltd_bert.text.segment import RustJieba, get_segmenter, segment

    seg = get_segmenter(None, "rjieba")
    assert isinstance(seg, RustJieba)
    for text in ["今天天气很好", "iPhone 12 降价了!", "😀表情包", "  a  b"]:
        assert seg.lcut(text) == rjieba.cut(text, True)
        assert segment(text, kind="rjieba") == segment(text), text
    # an HMM near-tie (FastJieba's docstring): rjieba's pick, not jieba's
    assert seg.lcut("我们常在吃早饭") == ["我们", "常在", "吃", "早饭"]
    assert segment("我们常在吃早饭") == ["我们", "常", "在", "吃", "早饭"]
    # rjieba keeps runs joined by symbols whole, jieba splits them at the symbol
    text = "24-25赛季 nano-NaH 3.5%"
    assert seg.lcut(text) == ["24-25", "赛季", " ", "nano-NaH", " ", "3.5%"]
    assert segment(text)[:4] == ["24", "-", "25", "赛季"]
    with pytest.raises(InputError, match="rjieba does not take a user dictionary"):
        user_dict = tmp_path / "user.txt"
        user_dict.write_text("天气很好 10\n", encoding="utf-8")
        get_segmenter(str(user_dict), "rjieba")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_W = Weighter(IDF, 1.0)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_weights_properties(s):
    text, w = _W(s)
    assert len(w) == len(text)
    assert np.isfinite(w).all() and (w >= 0).all()
    if text:
        assert abs(float(w.sum()) - 1) < 1e-5
    # the word cache (the fast path) gives exactly what a fresh weighter gives
    np.testing.assert_array_equal(w, Weighter(IDF, 1.0).char_weights(text))


def test_word_char_weights_by_hand():
    """A word's characters share its IDF: letters and numbers (the fast path) and words with
    punctuation or symbols (each character judged) alike."""
    w = Weighter(IDF, 1.0)  # table default 4.0 for unseen words
    assert w.word_char_weights("公园") == (4.0, 4.0)  # 6/2 + 1
    assert w.word_char_weights("iPhone") == (3.0,) * 6  # idf of the lowercased word, 12/6 + 1
    assert w.word_char_weights("２４") == (3.0, 3.0)  # full-width digits: numbers, content
    assert w.word_char_weights("24-25") == (2.0, 2.0, 0.0, 2.0, 2.0)  # 4/4 + 1; `-` weighs 0
    assert w.word_char_weights("😀表") == (3.0, 3.0)  # a symbol is content
    assert w.word_char_weights("，。") == (0.0, 0.0)
    assert w.word_char_weights(" ") == (0.0,)


def test_char_weights_many_equals_one_at_a_time():
    """The block path gives each text's own weights: empty, punctuation-only (uniform) and
    ordinary texts side by side."""
    w = Weighter(IDF, 1.0)
    texts = ["我们去公园", "", "，。", "我们去散步", "iPhone好", " "]
    many = w.char_weights_many(texts)
    assert [len(x) for x in many] == [5, 0, 2, 5, 7, 1]
    for text, got in zip(texts, many, strict=True):
        np.testing.assert_array_equal(got, w.char_weights(text))
    assert many[0].tolist() == pytest.approx([2 / 16, 2 / 16, 4 / 16, 4 / 16, 4 / 16], abs=1e-7)
    assert many[2].tolist() == [0.5, 0.5]  # no content character: uniform
    assert many[5].tolist() == [1.0]
