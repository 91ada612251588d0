"""Models shipped inside the package (the distilled default lives in `zh-small/`)."""

from __future__ import annotations

from pathlib import Path

DEFAULT = "zh-small"


def default_model_dir() -> Path | None:
    p = Path(__file__).parent / DEFAULT
    return p if (p / "config.json").is_file() else None
