"""The corridor maze's reachability check: a flood over its 30 rooms packed into one uint32.

The maze's open cells form a 5x6 grid of rooms (odd (row, col) of the map); room (i, j) is bit
6i + j. Its 49 door candidates are the edges between neighbouring rooms: the open ones are two
bit sets, `east` (the bit of the room west of an open edge within a row) and `south` (the bit of
the room north of an open edge between rows). The flood fills whole corridors at once: a
horizontal fill (east by one carry-propagating add, west by three doubling shifts) then a vertical
fill (doubling shifts), repeated until the goal is met or nothing changes -- at most 5 repeats in
practice (1.3 on average), where a one-room-per-layer flood needs up to 29 layers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.maps import CORRIDOR_MAZE

ROOM_ROWS, ROOM_COLS = 5, 6
N_CAND = len(CORRIDOR_MAZE.candidates)


def _room_graph_tables():
    """Static tables: cand_bit[c], the bit of the room west of (within a row) or north of
    (between rows) candidate c; cand_is_h[c], whether c joins two rooms of one row; cell_rooms[r,
    c], the bits of the rooms cell (r, c) is in or between (two for a candidate; 0 for walls)."""
    cands = CORRIDOR_MAZE.candidates
    room_bit = lambda r, c: 1 << (((r - 1) // 2) * ROOM_COLS + (c - 1) // 2)
    cand_bit = np.zeros(len(cands), np.uint32)
    cand_is_h = np.zeros(len(cands), bool)
    for k, (r, c) in enumerate(cands):
        if r % 2 == 1:   # within a row: rooms (r, c-1) and (r, c+1)
            cand_is_h[k], cand_bit[k] = True, room_bit(r, c - 1)
        else:            # between rows: rooms (r-1, c) and (r+1, c)
            cand_bit[k] = room_bit(r - 1, c)
    cell_rooms = np.zeros(CORRIDOR_MAZE.shape, np.uint32)
    for r, c in CORRIDOR_MAZE.floor:
        if r % 2 == 1 and c % 2 == 1:
            cell_rooms[r, c] = room_bit(r, c)
        elif r % 2 == 1:
            cell_rooms[r, c] = room_bit(r, c - 1) | room_bit(r, c + 1)
        else:
            cell_rooms[r, c] = room_bit(r - 1, c) | room_bit(r + 1, c)
    return cand_bit, cand_is_h, cell_rooms


_CAND_BIT, _CAND_IS_H, CELL_ROOMS = _room_graph_tables()
# Candidates come in row-major groups of 11: 5 within room row g (east of room (g, k), k < 5),
# then 6 between room rows g and g+1 (south of room (g, k - 5)). `cand_edge` uses this layout.
_CAND_GROUP = 2 * ROOM_COLS - 1
assert all(_CAND_IS_H[i] == (i % _CAND_GROUP < ROOM_COLS - 1) for i in range(N_CAND))
assert all(_CAND_BIT[i] == 1 << ((i // _CAND_GROUP) * ROOM_COLS + i % _CAND_GROUP - (0 if _CAND_IS_H[i] else ROOM_COLS - 1))
           for i in range(N_CAND))
ALL_EAST = int(np.bitwise_or.reduce(_CAND_BIT[_CAND_IS_H]))     # every within-row edge open
ALL_SOUTH = int(np.bitwise_or.reduce(_CAND_BIT[~_CAND_IS_H]))   # every between-rows edge open


def cand_edge(idx: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Candidate index (int32, < 49) -> (is_h, room bit): `_CAND_IS_H[idx]`, `_CAND_BIT[idx]`
    by arithmetic (a table lookup is a gather, slow under vmap)."""
    g = idx // _CAND_GROUP
    k = idx - g * _CAND_GROUP
    is_h = k < ROOM_COLS - 1
    pos = g * ROOM_COLS + jnp.where(is_h, k, k - (ROOM_COLS - 1))
    return is_h, jnp.uint32(1) << pos.astype(jnp.uint32)


def _fill(r: jax.Array, east: jax.Array, e2: jax.Array, e4: jax.Array, south: jax.Array, s2: jax.Array,
          s4: jax.Array) -> jax.Array:
    """Rooms reachable from room set r by a horizontal run then a vertical run (whole corridors).

    e2, e4, s2, s4: runs of 2 and 4 open edges (`flood_connected`). East: with y = r | (rooms open
    to their west neighbour), adding r carries through each run of y from its lowest bit in r, so
    the bits that flip are the run above each seed (and one bit past its end, dropped by & y).
    West, south and north: doubling shifts by 1, 2, 4 rooms (rows of 6, columns of 5)."""
    y = (east << 1) | r
    r = (((y + r) ^ y) & y) | r
    r = r | ((r >> 1) & east)
    r = r | ((r >> 2) & e2)
    r = r | ((r >> 4) & e4)
    r = r | ((r & south) << ROOM_COLS)
    r = r | ((r & s2) << 2 * ROOM_COLS)
    r = r | ((r & s4) << 4 * ROOM_COLS)
    r = r | ((r >> ROOM_COLS) & south)
    r = r | ((r >> 2 * ROOM_COLS) & s2)
    return r | ((r >> 4 * ROOM_COLS) & s4)


# fills before the loop; every check needs one, and at 8192 envs some env needs three or four
_UNROLLED_FILLS = 2


def flood_connected(east: jax.Array, south: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
    """Whether room sets src and dst (uint32) are joined through the open edges east and south.

    Alternating whole-corridor fills (`_fill`) until dst is met or the flood stops growing: exact,
    and a handful of rounds where a one-room-per-layer flood needs up to 29 layers."""
    e2 = east & (east >> 1)
    e4 = e2 & (e2 >> 2)
    s2 = south & (south >> ROOM_COLS)
    s4 = s2 & (s2 >> 2 * ROOM_COLS)
    fill = lambda r: _fill(r, east, e2, e4, south, s2, s4)

    def cond(c):
        r, prev = c
        return ((r & dst) == 0) & (r != prev)

    prev, r = src, fill(src)
    for _ in range(_UNROLLED_FILLS - 1):
        prev, r = r, fill(r)
    r, _ = jax.lax.while_loop(cond, lambda c: (fill(c[0]), c[0]), (r, prev))
    return (r & dst) != 0


def rooms_connected(open_cands: jax.Array, src_rooms: jax.Array, dst_rooms: jax.Array) -> jax.Array:
    """`flood_connected` with the open edges given as bool[49] over the candidates."""
    cand_bit, is_h = jnp.asarray(_CAND_BIT), jnp.asarray(_CAND_IS_H)
    east = jnp.sum(jnp.where(open_cands & is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    south = jnp.sum(jnp.where(open_cands & ~is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    return flood_connected(east, south, src_rooms, dst_rooms)
