"""Sets of up to 64 door candidates as two uint32 words, and uniform picks from them.

A set is (lo, hi): bit i of lo is candidate i (0..31), bit i of hi is candidate 32 + i. A pick
draws one random word and selects the r-th set bit by popcount bisection: no sort, no cumsum, no
per-cell key split, so resets and door resamples stay a few dozen scalar ops per env.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def hash_u32(x: jax.Array) -> jax.Array:
    """A well-mixing 32-bit integer hash ("lowbias32"): stretches one jax.random word into several
    (a threefry draw per pick would dominate the cost of a step)."""
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def to_words(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """bool[n] (n <= 64) -> (lo, hi) uint32 bit sets."""
    n = mask.shape[-1]
    w = jnp.uint32(1) << (jnp.arange(n, dtype=jnp.uint32) % 32)
    lo = jnp.sum(jnp.where(mask[:32], w[:32], jnp.uint32(0)), dtype=jnp.uint32)
    hi = jnp.sum(jnp.where(mask[32:], w[32:], jnp.uint32(0)), dtype=jnp.uint32)
    return lo, hi


def from_words(lo: jax.Array, hi: jax.Array, n: int) -> jax.Array:
    """Inverse of `to_words`: bool[n]."""
    i = jnp.arange(n, dtype=jnp.uint32)
    return ((jnp.where(i < 32, lo, hi) >> (i % 32)) & 1).astype(bool)


def select_bit(x: jax.Array, r: jax.Array) -> jax.Array:
    """Position (int32) of the r-th (0-based) set bit of uint32 x, by popcount bisection."""
    pos = jnp.int32(0)
    for width in (16, 8, 4, 2, 1):
        low = x & jnp.uint32((1 << width) - 1)
        c = jax.lax.population_count(low).astype(jnp.uint32)
        high = r >= c
        r = jnp.where(high, r - c, r)
        x = jnp.where(high, x >> width, low)
        pos = pos + jnp.where(high, width, 0)
    return pos


def pick_one(word: jax.Array, lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One uniform pick among the set bits of (lo, hi), by the random uint32 `word`.

    Returns (found, in_lo, index): bool, bool, int32 in [0, 64)."""
    n_lo = jax.lax.population_count(lo).astype(jnp.uint32)
    count = n_lo + jax.lax.population_count(hi).astype(jnp.uint32)
    r = word % jnp.maximum(count, 1)
    in_lo = r < n_lo
    idx = jnp.where(in_lo, select_bit(lo, r), 32 + select_bit(hi, r - n_lo))
    return count > 0, in_lo, idx


def pick_k(seed: jax.Array, lo: jax.Array, hi: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """min(k, |set|) distinct members of the set (lo, hi), uniformly without replacement, as a
    (lo, hi) set. seed: a random uint32 (pick i uses `hash_u32` of seed and i); k: static."""
    out_lo = out_hi = jnp.uint32(0)
    for i in range(k):
        found, in_lo, idx = pick_one(hash_u32(seed + jnp.uint32(i) * jnp.uint32(0x9E3779B9)), lo, hi)
        one = jnp.where(found, jnp.uint32(1) << (idx % 32).astype(jnp.uint32), jnp.uint32(0))
        lo, out_lo = jnp.where(in_lo, lo & ~one, lo), jnp.where(in_lo, out_lo | one, out_lo)
        hi, out_hi = jnp.where(in_lo, hi, hi & ~one), jnp.where(in_lo, out_hi, out_hi | one)
    return out_lo, out_hi


class CellWords:
    """The bit of each map cell's door candidate, for sets over the candidates of one map.

    candidate_index: int32[H, W], the candidate at each cell (-1: none), at most 64 of them."""

    def __init__(self, candidate_index: np.ndarray):
        n = int(candidate_index.max()) + 1
        if n > 64:
            raise ValueError(f"{n} door candidates; at most 64 fit the two-word bit sets")
        self.n, self.W = n, candidate_index.shape[1]
        ci = candidate_index.reshape(-1)
        bit = np.uint32(1) << (ci % 32).astype(np.uint32)
        self._lo = jnp.asarray(np.where((ci >= 0) & (ci < 32), bit, 0).astype(np.uint32))  # uint32[H * W]
        self._hi = jnp.asarray(np.where(ci >= 32, bit, 0).astype(np.uint32))
        self.all_lo = np.uint32((1 << min(n, 32)) - 1)    # every candidate
        self.all_hi = np.uint32((1 << max(n - 32, 0)) - 1)

    def of(self, pos: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The set holding the candidate at cell pos (int32[2]; empty if it is not a candidate)."""
        f = pos[0] * self.W + pos[1]
        return self._lo[f], self._hi[f]

    def without(self, lo: jax.Array, hi: jax.Array, cells) -> tuple[jax.Array, jax.Array]:
        """The set (lo, hi) without the candidates at `cells` (int32[2] each)."""
        for pos in cells:
            c_lo, c_hi = self.of(pos)
            lo, hi = lo & ~c_lo, hi & ~c_hi
        return lo, hi
