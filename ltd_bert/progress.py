"""Progress bars on stderr: on when stderr is a terminal, off with --quiet."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


def bar(total=None, unit="it", desc=None, quiet=False, unit_scale=False, **kw) -> tqdm:
    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        disable=not progress_enabled(quiet),
        file=sys.stderr,
        unit_scale=unit_scale,
        dynamic_ncols=True,
        smoothing=0.1,
        **kw,
    )
