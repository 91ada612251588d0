from __future__ import annotations

import os
from pathlib import Path

import pytest

from ltd_bert.text.idf import IdfTable

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SAMPLE_CORPUS = ROOT / "data" / "corpus_sample.txt"
SAMPLE_SENTENCES = ROOT / "data" / "sentences.txt"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# exact values are checked in fp32; the bf16 paths are tested by asking for them
os.environ["LTD_PRECISION"] = "fp32"


@pytest.fixture(autouse=True)
def own_workdir(tmp_path_factory, monkeypatch):
    """Every test a working directory of its own: a command run without --workdir records
    its output there, not in the checkout's ./ltd_work (or make's demo_work)."""
    monkeypatch.setenv("LTD_WORKDIR", str(tmp_path_factory.mktemp("workdir")))


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead


def table(**words: float) -> IdfTable:
    """An IDF table from keyword arguments; unseen words get 4.0."""
    return IdfTable({k.lower(): v for k, v in words.items()}, default=4.0, source="test")


CHARS = list(
    "我们你他她它是的了在有和不人这中大为上个国说去公园散步今天气很好爱北京买家店"
    "ABCabc0123!,.。，！?"
)


def char_tokenizer(folder: Path):
    """A character-level BERT WordPiece tokenizer, its vocabulary written to `folder`."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = specials + ["query", ":"] + CHARS
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    vocab = {w: i for i, w in enumerate(words)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=False, tokenize_chinese_chars=True)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BertModel with a character-level WordPiece tokenizer, saved locally."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = char_tokenizer(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher_file(tiny_bert, tmp_path_factory) -> Path:
    """A teacher file of 240 sample sentences (plus blank lines) from the tiny BERT."""
    from ltd_bert.teacher.embed import teacher_embed
    from ltd_bert.teacher.model import PoolingSettings, Teacher
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    folder = tmp_path_factory.mktemp("tiny_teacher")
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:240]
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = folder / "teacher.h5"
    teacher_embed(
        [str(corpus)],
        out,
        Teacher(str(tiny_bert)),
        Weighter(load_idf("jieba"), 1.0),
        PoolingSettings("idf", -1, "", 64),
        batch_size=32,
        chunk_size=64,
    )
    return out


def tiny_train_config(**kw):
    from ltd_bert.student.config import TrainConfig

    base = dict(
        embedding_dim=8,
        hidden_size=12,
        epochs=3,
        batch_size=16,
        val_fraction=0.1,
        window=100,
        checkpoint_every=5,
        lr=5e-3,
        min_count=1,
        patience=10,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_idf(tmp_path_factory) -> Path:
    """An IDF file built from the first 240 sample lines (small: fast to load)."""
    from ltd_bert.text.idf import build_idf

    folder = tmp_path_factory.mktemp("tiny_idf")
    corpus = folder / "corpus.txt"
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()[:240]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_idf([str(corpus)], folder / "idf.tsv", workers=1)
    return folder / "idf.tsv"


@pytest.fixture(scope="session")
def tiny_model(tiny_bert, tiny_idf, tmp_path_factory) -> tuple[Path, Path]:
    """`(model folder, its teacher file)`: the tiny BERT over 240 sample lines with the
    small IDF, and a student trained for one epoch on it (output dimension 16)."""
    from ltd_bert.student.train import train
    from ltd_bert.teacher.embed import teacher_embed
    from ltd_bert.teacher.model import PoolingSettings, Teacher
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    folder = tmp_path_factory.mktemp("tiny_model")
    out = folder / "teacher.h5"
    teacher_embed(
        [str(tiny_idf.with_name("corpus.txt"))],
        out,
        Teacher(str(tiny_bert)),
        Weighter(load_idf(tiny_idf), 1.0),
        PoolingSettings("idf", -1, "", 64),
        batch_size=32,
        chunk_size=64,
    )
    train([str(out)], folder / "model", tiny_train_config(epochs=1, init_embeddings="random"))
    return folder / "model", out


def native_bf16() -> bool:
    """Whether this CPU (within the environment's limits) multiplies bf16 natively."""
    from ltd_bert.common.cpu import native_bf16 as native

    return native()


#: a test of bf16 computing for real: skipped where the CPU would only emulate it (bf16 is
#: refused there; the refusal is tested on every CPU with the detection patched)
needs_native_bf16 = pytest.mark.skipif(
    not native_bf16(), reason="no native bf16 on this CPU (bf16 is refused here)"
)


def assert_one_error(result, *fragments: str, code: int = 1) -> str:
    """The command failed cleanly: exit `code`, exactly one line of output starting with
    `Error: ` (the last one), no traceback; each fragment is in that line."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
