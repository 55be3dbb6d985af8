"""Dynamic random corridor maze (docs/reference.md §1).

```
-------------      11x13 map, observed whole (143 tokens). Open cells form a 5x6 grid at odd
|...........|      (row, col); the `|` between them are permanent pillars. The 49 cells between
|.|.|.|.|.|.|      grid cells are door candidates (floor unless closed).
|...........|
|.|.|.|.|.|.|      Reset: `fixed_walls` (10) walls are placed one at a time on candidates, each
|...........|      reverted if it disconnects agent and goal (at most 10 tries per wall), drawn
|.|.|.|.|.|.|      as `|`. Then `dynamic_doors` (5) doors are drawn from the remaining candidates
|...........|      WITHOUT a path check (the goal can be cut off for a while), drawn as `#`, and
|.|.|.|.|.|.|      resampled with probability `p_change` after every step.
|...........|
-------------
```
The reachability check runs on the 30-room graph of open cells packed into one uint32 (room
(i, j) is bit 6i + j), inside a `lax.while_loop` over wall placements. It floods whole corridors at
once: a horizontal fill (east by one carry-propagating add, west by three doubling shifts) then a
vertical fill (doubling shifts), repeated until the goal is met or nothing changes -- at most 5
repeats in practice (1.3 on average), where a one-room-per-layer flood needs up to 29 layers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import maze_env
from envs.maps import CORRIDOR_MAZE

ROOM_ROWS, ROOM_COLS = 5, 6
N_CAND = len(CORRIDOR_MAZE.candidates)
TRIES_PER_WALL = 10


@struct.dataclass
class CorridorMazeParams:
    max_steps_in_episode: int = 80
    p_change: float = 0.05
    # reward of a move into a wall, a closed door or the border (authors: -0.01, the default);
    # a larger penalty is an option for the agents that get stuck bumping (docs/deviations.md).
    blocked_reward: float = maze_env.BLOCKED_REWARD
    fixed_walls: int = struct.field(pytree_node=False, default=10)
    dynamic_doors: int = struct.field(pytree_node=False, default=5)
    door_dynamics: str = struct.field(pytree_node=False, default="joint")
    # (row, col) in map coordinates: a goal fixed for every episode (walls, doors and the start
    # stay random); None = uniform over all walkable cells, door candidates included (the paper).
    goal: tuple | None = struct.field(pytree_node=False, default=None)

    def __post_init__(self):
        maze_env.check_goal(self.goal, CORRIDOR_MAZE)
        maze_env.check_count("fixed_walls", self.fixed_walls, N_CAND, f"the maze has {N_CAND} candidate cells")
        maze_env.check_count("dynamic_doors", self.dynamic_doors, N_CAND - self.fixed_walls,
                             f"{N_CAND} candidates minus fixed_walls={self.fixed_walls}")
        maze_env.check_probability("p_change", self.p_change)
        maze_env.check_penalty("blocked_reward", self.blocked_reward)
        maze_env.check_positive("max_steps_in_episode", self.max_steps_in_episode)
        maze_env.check_dynamics(self.door_dynamics)


def _room_graph_tables():
    """Static tables for the 30-cell room graph. A room (i, j) is bit i*6+j.

    cand_bit[c]: the bit of the room west of (horizontal candidate) or north of (vertical) c.
    cand_is_h[c]: whether c joins two rooms of one row.
    cell_rooms[r, c]: for every cell, the bits of the rooms it is in or between (a candidate cell
    touches two rooms; 0 for walls).
    """
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


_CAND_BIT, _CAND_IS_H, _CELL_ROOMS = _room_graph_tables()
# Candidates come in row-major groups of 11: 5 within room row g (east of room (g, k), k < 5),
# then 6 between room rows g and g+1 (south of room (g, k - 5)). `_cand_edge` uses this layout.
_CAND_GROUP = 2 * ROOM_COLS - 1
assert all(_CAND_IS_H[i] == (i % _CAND_GROUP < ROOM_COLS - 1) for i in range(N_CAND))
assert all(_CAND_BIT[i] == 1 << ((i // _CAND_GROUP) * ROOM_COLS + i % _CAND_GROUP - (0 if _CAND_IS_H[i] else ROOM_COLS - 1))
           for i in range(N_CAND))
_EAST0 = int(np.bitwise_or.reduce(_CAND_BIT[_CAND_IS_H]))
_SOUTH0 = int(np.bitwise_or.reduce(_CAND_BIT[~_CAND_IS_H]))


class CorridorMazeDynamic(maze_env.MazeEnv):
    """gymnax environment `CorridorMazeDynamic-v0`."""

    maze = CORRIDOR_MAZE

    @property
    def default_params(self) -> CorridorMazeParams:
        return CorridorMazeParams()

    def door_count(self, params) -> int:
        return params.dynamic_doors

    def _initial_door_cells(self, closed):
        return closed

    def place_fixed_walls_words(self, seed, start, goal, params) -> tuple[jax.Array, jax.Array]:
        """Place walls one at a time; revert a wall that disconnects start and goal; give up on a
        wall after TRIES_PER_WALL failed tries (so fewer walls may be placed).

        Hot path (runs inside every reset): everything is scalar bit arithmetic. The 49 candidates
        are two uint32 words (lo: 0..31, hi: 32..48); a uniform pick among the free ones selects
        the r-th set bit by popcount bisection; the room graph's open east/south edges are
        updated incrementally; `_rooms_connected` decides.
        """
        n_walls = params.fixed_walls
        if n_walls == 0:
            return jnp.uint32(0), jnp.uint32(0)
        cell_rooms = jnp.asarray(_CELL_ROOMS.reshape(-1))
        src = cell_rooms[start[0] * self.W + start[1]]
        dst = cell_rooms[goal[0] * self.W + goal[1]]
        s_lo, s_hi = self._cell_words(start)
        g_lo, g_hi = self._cell_words(goal)
        never_lo, never_hi = s_lo | g_lo, s_hi | g_hi

        def cond(c):
            return c[0] < n_walls

        def body(c):
            wall_i, tries, lo, hi, east, south, word = c
            free_lo = ~lo & ~never_lo
            free_hi = ~hi & ~never_hi & jnp.uint32(_HI_MASK)
            found, in_lo, idx = maze_env.pick_from_words(
                maze_env.hash_u32(seed + word * jnp.uint32(0x632BE5AB)), free_lo, free_hi)
            is_h, bit = _cand_edge(idx)
            east_t = jnp.where(is_h, east & ~bit, east)
            south_t = jnp.where(is_h, south, south & ~bit)
            ok = found & _rooms_connected(east_t, south_t, src, dst)
            one = jnp.uint32(1) << (idx % 32).astype(jnp.uint32)
            lo = jnp.where(ok & in_lo, lo | one, lo)
            hi = jnp.where(ok & ~in_lo, hi | one, hi)
            east, south = jnp.where(ok, east_t, east), jnp.where(ok, south_t, south)
            next_wall = ok | (tries + 1 >= TRIES_PER_WALL)
            return (wall_i + next_wall, jnp.where(next_wall, 0, tries + 1), lo, hi, east, south, word + 1)

        z = jnp.uint32(0)
        c = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.int32(0), z, z, jnp.uint32(_EAST0),
                                            jnp.uint32(_SOUTH0), z))
        return c[2], c[3]


_HI_MASK = (1 << (N_CAND - 32)) - 1


def _cand_edge(idx: jax.Array) -> tuple[jax.Array, jax.Array]:
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

    east/south: open edges (bit of the room west of / north of the edge); e2, e4, s2, s4: runs of
    2 and 4 open edges (`_rooms_connected`). East: with y = r | (rooms open to their west
    neighbour), adding r carries through each run of y from its lowest bit in r, so the bits that
    flip are the run above each seed (and one bit past its end, dropped by & y). West, south and
    north: doubling shifts by 1, 2, 4 rooms (rows of 6, columns of 5)."""
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


def _rooms_connected(east: jax.Array, south: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
    """Flood the 30-room graph (open edges as bit sets) from src; whether it meets dst.

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


# fills before the loop; every check needs one, and at 8192 envs some env needs three or four
_UNROLLED_FILLS = 2


def rooms_connected(open_cands: jax.Array, src_rooms: jax.Array, dst_rooms: jax.Array) -> jax.Array:
    """Whether the room sets src_rooms and dst_rooms (uint32 bit sets) are joined through open
    candidates (bool[49])."""
    cand_bit, is_h = jnp.asarray(_CAND_BIT), jnp.asarray(_CAND_IS_H)
    east = jnp.sum(jnp.where(open_cands & is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    south = jnp.sum(jnp.where(open_cands & ~is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    return _rooms_connected(east, south, src_rooms, dst_rooms)
