"""Dynamic random corridor maze (reference-facts §1).

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
The reachability check runs on the 30-cell graph of open cells packed into one uint32 (a flood
is 8 bit operations per layer), inside a `lax.while_loop` over wall placements.
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
    fixed_walls: int = struct.field(pytree_node=False, default=10)
    dynamic_doors: int = struct.field(pytree_node=False, default=5)
    door_dynamics: str = struct.field(pytree_node=False, default="joint")

    def __post_init__(self):
        maze_env.check_count("fixed_walls", self.fixed_walls, N_CAND, f"the maze has {N_CAND} candidate cells")
        maze_env.check_count("dynamic_doors", self.dynamic_doors, N_CAND - self.fixed_walls,
                             f"{N_CAND} candidates minus fixed_walls={self.fixed_walls}")
        maze_env.check_probability("p_change", self.p_change)
        maze_env.check_positive("max_steps_in_episode", self.max_steps_in_episode)
        maze_env.check_dynamics(self.door_dynamics)


def _room_graph_tables():
    """Static tables for the 30-cell room graph. A room (i, j) is bit i*6+j.

    cand_bit[c]: the bit of the room west of (horizontal candidate) or north of (vertical) c.
    cand_is_h[c]: whether c joins two rooms of one row.
    cell_rooms[f]: for every floor cell f (MazeMap.floor order), the bits of the rooms it is
    in or between (a candidate cell touches two rooms).
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
    cell_rooms = []
    for r, c in CORRIDOR_MAZE.floor:
        if r % 2 == 1 and c % 2 == 1:
            cell_rooms.append(room_bit(r, c))
        elif r % 2 == 1:
            cell_rooms.append(room_bit(r, c - 1) | room_bit(r, c + 1))
        else:
            cell_rooms.append(room_bit(r - 1, c) | room_bit(r + 1, c))
    return cand_bit, cand_is_h, np.array(cell_rooms, np.uint32)


_CAND_BIT, _CAND_IS_H, _CELL_ROOMS = _room_graph_tables()
_FLOOR_INDEX = -np.ones(CORRIDOR_MAZE.shape, np.int32)
for _i, (_r, _c) in enumerate(CORRIDOR_MAZE.floor):
    _FLOOR_INDEX[_r, _c] = _i


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

    def place_fixed_walls(self, seed, start, goal, params) -> jax.Array:
        """Place walls one at a time; revert a wall that disconnects start and goal; give up on a
        wall after TRIES_PER_WALL failed tries (so fewer walls may be placed).

        Hot path (runs inside every step): everything is scalar bit arithmetic. The 49 candidates
        are two uint32 words (lo: 0..31, hi: 32..48); a uniform pick among the free ones selects
        the r-th set bit by popcount bisection; the room graph's open east/south edges are
        updated incrementally.
        """
        n_walls = params.fixed_walls
        if n_walls == 0:
            return jnp.zeros((self.n_cand,), bool)
        floor_index = jnp.asarray(_FLOOR_INDEX)
        cell_rooms = jnp.asarray(_CELL_ROOMS)
        cand_bit, is_h = jnp.asarray(_CAND_BIT), jnp.asarray(_CAND_IS_H)
        src = cell_rooms[floor_index[start[0], start[1]]]
        dst = cell_rooms[floor_index[goal[0], goal[1]]]
        never_lo, never_hi = maze_env.to_words(self._on_cell(start) | self._on_cell(goal))
        east0 = jnp.uint32(int(np.bitwise_or.reduce(_CAND_BIT[_CAND_IS_H])))
        south0 = jnp.uint32(int(np.bitwise_or.reduce(_CAND_BIT[~_CAND_IS_H])))

        def cond(c):
            return c[0] < n_walls

        def body(c):
            wall_i, tries, lo, hi, east, south, word = c
            free_lo = ~lo & ~never_lo
            free_hi = ~hi & ~never_hi & jnp.uint32(_HI_MASK)
            found, in_lo, idx = maze_env.pick_from_words(
                maze_env.hash_u32(seed + word * jnp.uint32(0x632BE5AB)), free_lo, free_hi)
            bit = cand_bit[idx]
            east_t = jnp.where(is_h[idx], east & ~bit, east)
            south_t = jnp.where(is_h[idx], south, south & ~bit)
            ok = found & _rooms_connected(east_t, south_t, src, dst)
            one = jnp.uint32(1) << (idx % 32).astype(jnp.uint32)
            lo = jnp.where(ok & in_lo, lo | one, lo)
            hi = jnp.where(ok & ~in_lo, hi | one, hi)
            east, south = jnp.where(ok, east_t, east), jnp.where(ok, south_t, south)
            next_wall = ok | (tries + 1 >= TRIES_PER_WALL)
            return (wall_i + next_wall, jnp.where(next_wall, 0, tries + 1), lo, hi, east, south, word + 1)

        z = jnp.uint32(0)
        c = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.int32(0), z, z, east0, south0, z))
        return maze_env.from_words(c[2], c[3], self.n_cand)


_HI_MASK = (1 << (N_CAND - 32)) - 1


def _rooms_connected(east: jax.Array, south: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
    """Flood the 30-room graph (open edges as bit sets) from src; whether it meets dst."""
    r = src
    for _ in range(ROOM_ROWS * ROOM_COLS - 1):
        r = r | ((r & east) << 1) | ((r >> 1) & east) | ((r & south) << ROOM_COLS) | ((r >> ROOM_COLS) & south)
    return (r & dst) != 0


def rooms_connected(open_cands: jax.Array, src_rooms: jax.Array, dst_rooms: jax.Array) -> jax.Array:
    """Whether the room sets src_rooms and dst_rooms (uint32 bit sets) are joined through open
    candidates (bool[49])."""
    cand_bit, is_h = jnp.asarray(_CAND_BIT), jnp.asarray(_CAND_IS_H)
    east = jnp.sum(jnp.where(open_cands & is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    south = jnp.sum(jnp.where(open_cands & ~is_h, cand_bit, jnp.uint32(0)), dtype=jnp.uint32)
    return _rooms_connected(east, south, src_rooms, dst_rooms)
