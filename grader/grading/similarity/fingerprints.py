"""Winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003) over k-grams of normalised tokens.

Every run of ``K`` consecutive tokens is hashed; in every window of ``W`` consecutive k-gram
hashes the smallest (the rightmost on a tie) is kept as a fingerprint. Two documents sharing a
passage of at least ``K + W - 1`` tokens are then certain to share a fingerprint, and the
fingerprints are few enough to index the whole class at once.

Hashes are a polynomial of stable token ids (CRC-32, the same in every process and run) mixed by
splitmix64, computed with NumPy's wrapping ``uint64`` arithmetic.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

K = 12  # tokens per k-gram: about one and a half lines of code, or a dozen words
W = 6  # k-grams per winnowing window: any shared passage of K + W - 1 = 17 tokens is found
_BASE = 0x100000001B3
_EMPTY = np.empty(0, dtype=np.uint64)
_ids: dict[str, int] = {}


def token_ids(texts: list[str]) -> np.ndarray:
    ids = np.empty(len(texts), dtype=np.uint64)
    for index, text in enumerate(texts):
        value = _ids.get(text)
        if value is None:
            value = _ids[text] = zlib.crc32(text.encode("utf-8")) + 1
        ids[index] = value
    return ids


def _powers(k: int) -> np.ndarray:
    return np.array([pow(_BASE, k - 1 - index, 1 << 64) for index in range(k)], dtype=np.uint64)


_POWERS = {K: _powers(K)}


def kgram_hashes(ids: np.ndarray, k: int = K) -> np.ndarray:
    """The hash of every k-gram of ``ids`` (``len(ids) - k + 1`` of them; none for a shorter run)."""
    if len(ids) < k:
        return _EMPTY
    powers = _POWERS.get(k)
    if powers is None:
        powers = _POWERS[k] = _powers(k)
    with np.errstate(over="ignore"):
        hashes = (sliding_window_view(ids, k) * powers).sum(axis=1, dtype=np.uint64)
        hashes ^= hashes >> np.uint64(31)
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
        hashes ^= hashes >> np.uint64(27)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(31)
    return hashes


def winnow(hashes: np.ndarray, w: int = W) -> np.ndarray:
    """The positions of the fingerprints that winnowing selects, ascending and distinct."""
    if len(hashes) == 0:
        return np.empty(0, dtype=np.int64)
    if len(hashes) <= w:
        return np.array([len(hashes) - 1 - int(np.argmin(hashes[::-1]))], dtype=np.int64)
    windows = sliding_window_view(hashes, w)[:, ::-1]  # reversed: argmin finds the rightmost minimum
    chosen = np.arange(len(windows)) + (w - 1 - np.argmin(windows, axis=1))
    return np.unique(chosen)


def contains(sorted_unique: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_unique)`` for an array already sorted and distinct, without sorting it again."""
    if len(sorted_unique) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[positions] == values


def covered(positions: np.ndarray, length: int, k: int = K) -> np.ndarray:
    """A mask of the tokens that lie in a k-gram starting at one of ``positions``."""
    marks = np.zeros(length + 1, dtype=np.int32)
    np.add.at(marks, positions, 1)
    np.add.at(marks, positions + k, -1)
    return np.cumsum(marks[:-1]) > 0
