"""Progress on stderr: a bar on a terminal; on anything else (a log file under nohup, a pipe)
one plain line every `LOG_INTERVAL` seconds once a job has run that long; off with --quiet."""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
#: seconds between progress lines when stderr is not a terminal (LTD_PROGRESS_INTERVAL sets it)
LOG_INTERVAL = 60.0


class LogLines:
    """A stream for tqdm that turns its carriage-return redraws into one line each."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


class LogBar(tqdm):
    """tqdm whose redraws (`set_postfix` forces one per call) come at most once per interval."""

    def __init__(self, *args, interval: float, **kw):
        self._interval = interval
        self._logged = time.monotonic()
        super().__init__(*args, **kw)

    def refresh(self, *args, **kw):
        now = time.monotonic()
        if self._interval and now - self._logged < self._interval:
            return False
        self._logged = now
        return super().refresh(*args, **kw)


def bar(total=None, unit="it", desc=None, quiet=False, unit_scale=False, **kw) -> tqdm:
    common = dict(total=total, unit=unit, desc=desc, unit_scale=unit_scale, **kw)
    if quiet or sys.stderr.isatty():
        return tqdm(disable=quiet, file=sys.stderr, dynamic_ncols=True, smoothing=0.1, **common)
    interval = float(os.environ.get("LTD_PROGRESS_INTERVAL", LOG_INTERVAL))
    # `delay`: short jobs (and tests) print nothing; long ones a line per interval
    return LogBar(
        interval=interval,
        file=LogLines(sys.stderr),
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        delay=interval,
        bar_format=LOG_FORMAT,
        smoothing=0.1,
        **common,
    )
