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


def encode_sparse(flat: np.ndarray, counts: np.ndarray, parts: int) -> bytes:
    """Non-empty bins as bytes. `flat` holds part * BINS + bin, sorted and unique; `counts`
    their counts. Layout: a uint16 count of bins per part, then every bin index (uint16),
    then every count (uint32), parts in order."""
    flat = np.asarray(flat, dtype=np.int64)
    header = np.bincount(flat // BINS, minlength=parts).astype(np.uint16)
    keys = (flat % BINS).astype(np.uint16)
    return header.tobytes() + keys.tobytes() + np.asarray(counts).astype(np.uint32).tobytes()


def encode(parts: np.ndarray | Sequence[np.ndarray]) -> bytes:
    """Dense bin counts, shaped (parts, BINS), as bytes (see encode_sparse)."""
    dense = np.asarray(parts, dtype=np.int64).reshape(-1)
    flat = np.flatnonzero(dense)
    return encode_sparse(flat, dense[flat], len(dense) // BINS)


def decode(blob: bytes, parts: int) -> np.ndarray:
    """The dense counts of an encoded row, shaped (parts, BINS)."""
    return merge_rows([blob], [0], 1, parts)[0]


def merge_rows(
    blobs: Sequence[bytes], slots: Sequence[int], n_slots: int, parts: int, wanted: Sequence[int] | None = None
) -> np.ndarray:
    """Sum many encoded rows into `n_slots` accumulators: row i adds into slot `slots[i]`.

    Returns counts shaped (n_slots, len(wanted), BINS) — every part when `wanted` is None,
    else the parts it names, in its order — in one numpy pass over all the rows' bins."""
    chosen = list(range(parts)) if wanted is None else list(wanted)
    position = np.full(parts, -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    width = len(chosen) * BINS
    if not blobs:
        return np.zeros((n_slots, len(chosen), BINS), dtype=np.int64)
    flat_indexes, flat_counts = [], []
    every = np.arange(parts, dtype=np.int64)
    for blob, slot in zip(blobs, slots, strict=True):
        header = np.frombuffer(blob, dtype=np.uint16, count=parts)
        total = int(header.sum())
        keys = np.frombuffer(blob, dtype=np.uint16, count=total, offset=2 * parts)
        counts = np.frombuffer(blob, dtype=np.uint32, count=total, offset=2 * parts + 2 * total)
        at = position[np.repeat(every, header)]
        keep = at >= 0
        flat_indexes.append((slot * width + at * BINS + keys)[keep])
        flat_counts.append(counts[keep])
    summed = np.bincount(np.concatenate(flat_indexes), weights=np.concatenate(flat_counts), minlength=n_slots * width)
    return summed.astype(np.int64).reshape(n_slots, len(chosen), BINS)


def part_quantiles(blob: bytes, parts: int, part: int, fractions: Sequence[float]) -> list[float | None]:
    """The quantiles of one part of one encoded row, read from its non-empty bins alone."""
    header = np.frombuffer(blob, dtype=np.uint16, count=parts)
    total = int(header.sum())
    start, stop = int(header[:part].sum()), int(header[: part + 1].sum())
    keys = np.frombuffer(blob, dtype=np.uint16, count=total, offset=2 * parts)[start:stop]
    counts = np.frombuffer(blob, dtype=np.uint32, count=total, offset=2 * parts + 2 * total)[start:stop]
    return _quantiles_of_bins(keys, counts, fractions)


def quantiles(counts: np.ndarray, fractions: Sequence[float]) -> list[float | None]:
    """DDSketch's quantiles of one part's dense counts: the value of the bin holding rank
    q * (n - 1) (the lower of the two ranks percentile_cont interpolates between)."""
    found = np.flatnonzero(counts)
    return _quantiles_of_bins(found, counts[found], fractions)


def _quantiles_of_bins(bins: np.ndarray, counts: np.ndarray, fractions: Sequence[float]) -> list[float | None]:
    """Quantiles from non-empty bins in ascending order and their counts."""
    if not len(bins):
        return [None for _ in fractions]
    cumulative = np.cumsum(counts, dtype=np.int64)
    last = int(cumulative[-1]) - 1
    return [
        bin_value(int(bins[int(np.searchsorted(cumulative, math.floor(f * last), side="right"))])) for f in fractions
    ]
