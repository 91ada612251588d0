"""Length batching: indices sorted by decreasing length cut into batches whose lengths stay
close, so padding is a bounded share of the work."""

from __future__ import annotations

from collections.abc import Sequence

FILL = 0.8  # a batch's shortest sentence is at least this share of its longest


def length_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int):
    """Cut `order` (indices sorted by decreasing length) into batches of at most batch_size
    whose lengths stay within FILL of the first: padding is at most 1 - FILL of the work."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) >= batch_size or lengths[i] < FILL * lengths[batch[0]]):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
