"""Mergeable latency sketches: DDSketch bins, stored compactly and merged with numpy.

Why DDSketch (the `ddsketch` package, Datadog's reference implementation): its error is
*relative* — every quantile it answers lies within 1 % of the true value at that rank,
whatever the distribution (a 4 ms overhead and a 90 s thinking call alike) — and two
sketches merge exactly by adding their bins' counts, so a minute, an hour or a sliding day
is a sum of sketches with the same guarantee. HDR histograms merge as well but bound
precision in significant digits over a range fixed in advance; t-digest bounds rank error,
not value error, and its merges are not exact.

The package's `LogarithmicMapping(relative_accuracy=0.01)` defines the bins (key k holds
values in (gamma^(k-1), gamma^k], gamma = 1.01/0.99) and turns a key back into a value.
What is ours is the storage: a row holds, per latency part, its non-empty bins as two
arrays (keys, counts), and sums of many rows are one `numpy.bincount` — thousands of
Python sketch objects merged one by one would be the new bottleneck.

Values below 1 µs (a wait of 0.0 ms, the common case) fall in a zero bin answered as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(relative_accuracy=RELATIVE_ACCURACY)
MIN_VALUE_MS = 1e-3  # below this, the zero bin
BINS = 2048  # dense index 0 is the zero bin; key k is index k + KEY_OFFSET
KEY_OFFSET = 512  # keys of 1 µs .. about 3 hours fit in 1 .. BINS - 1
_LOG2_MULTIPLIER = math.log(2) / math.log(MAPPING.gamma)  # the mapping's: key = ceil(log2(v) * this)


def bin_indexes(values: np.ndarray) -> np.ndarray:
    """The dense bin of each value (ms): 0 for the zero bin, else the mapping's key + KEY_OFFSET."""
    values = np.asarray(values, dtype=np.float64)
    indexes = np.zeros(values.shape, dtype=np.int64)
    positive = values >= MIN_VALUE_MS
    if positive.any():
        keys = np.ceil(np.log2(values[positive]) * _LOG2_MULTIPLIER).astype(np.int64) + KEY_OFFSET
        indexes[positive] = np.clip(keys, 1, BINS - 1)
    return indexes


def bin_value(index: int) -> float:
    """What a bin answers: 0 for the zero bin, else the mapping's value of its key (within 1 %)."""
    return 0.0 if index == 0 else MAPPING.value(index - KEY_OFFSET)


def dense(values: Iterable[float | None]) -> np.ndarray:
    """The bins' counts (length BINS) of these values; None is left out."""
    present = np.fromiter((v for v in values if v is not None), dtype=np.float64)
    return np.bincount(bin_indexes(present), minlength=BINS).astype(np.int64)


def encode(parts: Sequence[np.ndarray]) -> bytes:
    """Dense bin counts, one array per part, as bytes: a uint16 count of non-empty bins per
    part, then every part's bin indexes (uint16), then their counts (uint32)."""
    indexes = [np.flatnonzero(part) for part in parts]
    header = np.array([len(found) for found in indexes], dtype=np.uint16)
    keys = np.concatenate(indexes).astype(np.uint16) if indexes else np.zeros(0, np.uint16)
    counts = np.concatenate([part[found] for part, found in zip(parts, indexes, strict=True)]).astype(np.uint32)
    return header.tobytes() + keys.tobytes() + counts.tobytes()


def decode(blob: bytes, parts: int) -> list[np.ndarray]:
    """The dense counts of each part (length BINS) of an encoded row."""
    header = np.frombuffer(blob, dtype=np.uint16, count=parts)
    total = int(header.sum())
    keys = np.frombuffer(blob, dtype=np.uint16, count=total, offset=2 * parts).astype(np.int64)
    counts = np.frombuffer(blob, dtype=np.uint32, count=total, offset=2 * parts + 2 * total)
    # One bincount for all parts: part p's bins are shifted by p * BINS.
    part_of = np.repeat(np.arange(parts, dtype=np.int64), header)
    flat = np.bincount(part_of * BINS + keys, weights=counts, minlength=parts * BINS)
    return list(flat.astype(np.int64).reshape(parts, BINS))


def merge_rows(blobs: Sequence[bytes], slots: Sequence[int], n_slots: int, parts: int) -> np.ndarray:
    """Sum many encoded rows into `n_slots` accumulators: row i adds into slot `slots[i]`.

    Returns counts shaped (n_slots, parts, BINS). One pass in numpy over all the rows' bins."""
    if not blobs:
        return np.zeros((n_slots, parts, BINS), dtype=np.int64)
    flat_indexes, flat_counts = [], []
    for blob, slot in zip(blobs, slots, strict=True):
        header = np.frombuffer(blob, dtype=np.uint16, count=parts)
        total = int(header.sum())
        keys = np.frombuffer(blob, dtype=np.uint16, count=total, offset=2 * parts)
        counts = np.frombuffer(blob, dtype=np.uint32, count=total, offset=2 * parts + 2 * total)
        base = np.repeat((slot * parts + np.arange(parts, dtype=np.int64)) * BINS, header)
        flat_indexes.append(base + keys)
        flat_counts.append(counts)
    summed = np.bincount(
        np.concatenate(flat_indexes), weights=np.concatenate(flat_counts), minlength=n_slots * parts * BINS
    )
    return summed.astype(np.int64).reshape(n_slots, parts, BINS)


def quantiles(counts: np.ndarray, fractions: Sequence[float]) -> list[float | None]:
    """DDSketch's quantiles of one part's dense counts: the value of the bin holding rank
    q * (n - 1) (the lower of the two ranks percentile_cont interpolates between)."""
    total = int(counts.sum())
    if total == 0:
        return [None for _ in fractions]
    cumulative = np.cumsum(counts)
    found = []
    for fraction in fractions:
        rank = fraction * (total - 1)
        index = int(np.searchsorted(cumulative, math.floor(rank), side="right"))
        found.append(bin_value(index))
    return found
