"""Counters of this process's WebSocket traffic, read by the dashboard as rates."""

from collections import Counter

frames: Counter[str] = Counter()  # "in" and "out": an increment on the hot path, nothing more
