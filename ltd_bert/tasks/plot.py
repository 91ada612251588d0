"""Training curves: `metrics.jsonl` → `metrics.png` (loss, and the validation metric).

Works for `ltd train` (keys step, epoch, train_loss, val_loss, val_cos; possibly several
evaluations per epoch) and `ltd finetune` (epoch, step, train_loss, val_loss, and
val_accuracy or val_spearman). matplotlib is an optional extra: without it nothing is
drawn and `plot_metrics` returns None. Only the object-oriented Agg canvas is used, so the
caller's pyplot backend is left alone.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from ltd_bert.common.errors import InputError

log = logging.getLogger(__name__)

METRICS = (  # validation metric key → axis label, first found wins
    ("val_accuracy", "validation accuracy"),
    ("val_spearman", "validation Spearman × 100"),
    ("val_cos", "validation centred cosine"),
)


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def read_metrics(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    if not p.is_file():
        raise InputError(f"{p}: no such metrics file (a model folder has metrics.jsonl)")
    records = []
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise InputError(f"{p}:{lineno}: not a JSON line") from None
            if not isinstance(rec, dict):
                raise InputError(f"{p}:{lineno}: expected a JSON object")
            records.append(rec)
    if not records:
        raise InputError(f"{p}: no records")
    return records


def curves(records: list[dict]) -> dict:
    """The x axis (epoch when each record is one epoch, else step) and the series to draw."""
    epochs = [r.get("epoch") for r in records]
    by_epoch = None not in epochs and len(set(epochs)) == len(epochs)
    x_key = "epoch" if by_epoch else "step"
    metric = next(((k, label) for k, label in METRICS if any(k in r for r in records)), None)

    def series(key):
        pts = [(r[x_key], r[key]) for r in records if r.get(key) is not None and x_key in r]
        return pts or None

    return {
        "x": x_key,
        "loss": {k: series(k) for k in ("train_loss", "val_loss") if series(k)},
        "metric": (metric[1], series(metric[0])) if metric and series(metric[0]) else None,
    }


def plot_metrics(
    path: str | os.PathLike, output: str | os.PathLike | None = None, title: str | None = None
) -> Path | None:
    """Draw the curves of a metrics file (or a model folder's) to a PNG next to it (or
    `output`). Returns the PNG's path, or None when matplotlib is not installed."""
    src = Path(path)
    records = read_metrics(src)
    if not matplotlib_available():
        log.info("matplotlib is not installed: no training curves drawn (pip install matplotlib)")
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    c = curves(records)
    folder = src if src.is_dir() else src.parent
    out = Path(output) if output else folder / "metrics.png"
    panels = 1 + (c["metric"] is not None)
    fig = Figure(figsize=(5 * panels, 3.6), dpi=100, layout="tight")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, panels, 1)
    for name, pts in c["loss"].items():
        ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name.replace("_", " "))
    ax.set_xlabel(c["x"])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title("loss")
    if c["loss"]:
        ax.legend()
    ax.grid(alpha=0.3)
    if c["metric"] is not None:
        label, pts = c["metric"]
        ax2 = fig.add_subplot(1, panels, 2)
        ax2.plot(*zip(*pts, strict=True), marker="o", ms=3, color="tab:green")
        ax2.set_xlabel(c["x"])
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_title(label)
        ax2.grid(alpha=0.3)
    fig.suptitle(title or folder.name)
    tmp = out.with_name(f".{out.name}.partial")
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
    return out
