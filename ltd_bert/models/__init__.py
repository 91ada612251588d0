"""Models shipped inside the package (the distilled default lives in `zh-small/`, the faster
`zh-tiny/` beside it), and
`model_path`: a model by path or by its shipped name."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = "zh-small"
HERE = Path(__file__).parent


def default_model_dir() -> Path | None:
    p = HERE / DEFAULT
    return p if (p / "config.json").is_file() else None


def shipped_names() -> list[str]:
    """The names of the shipped models: the folders here that hold a config.json."""
    return sorted(p.name for p in HERE.iterdir() if (p / "config.json").is_file())


def model_path(model: str | os.PathLike | None = None) -> Path:
    """A model folder (or file) by path, or a shipped model by name (`"zh-small"`); a path
    that exists wins over a name; None is the shipped default. A bare name that is neither:
    a ModelError listing the shipped names; a missing path is returned for its loader to
    report."""
    from ltd_bert.common.errors import ModelError

    if model is None:
        model = DEFAULT
    p = Path(model)
    if p.exists():
        return p
    name = str(model)
    if name in shipped_names():
        return HERE / name
    if os.sep in name or (os.altsep and os.altsep in name) or name.startswith("."):
        return p
    shipped = ", ".join(shipped_names()) or "none"
    raise ModelError(
        f"{name}: no such model folder (train one with `ltd train`) and no shipped model of "
        f"that name (shipped: {shipped})"
    )
