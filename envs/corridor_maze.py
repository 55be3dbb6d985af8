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
The reachability check is `envs.kernels.room_graph` (a flood over the 30 rooms as one uint32).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs import checks
from envs.gridworld import MazeEnv
from envs.kernels.bitsets import hash_u32, pick_one
from envs.kernels.room_graph import ALL_EAST, ALL_SOUTH, CELL_ROOMS, N_CAND, cand_edge, flood_connected
from envs.maps import CORRIDOR_MAZE
from envs.params import MazeParams

TRIES_PER_WALL = 10


@struct.dataclass
class CorridorMazeParams(MazeParams):
    fixed_walls: int = struct.field(pytree_node=False, default=10)
    dynamic_doors: int = struct.field(pytree_node=False, default=5)

    maze = CORRIDOR_MAZE

    def check_door_counts(self) -> None:
        checks.check_count("fixed_walls", self.fixed_walls, N_CAND, f"the maze has {N_CAND} candidate cells")
        checks.check_count("dynamic_doors", self.dynamic_doors, N_CAND - self.fixed_walls,
                           f"{N_CAND} candidates minus fixed_walls={self.fixed_walls}")

    @property
    def door_count(self) -> int:
        return self.dynamic_doors


class CorridorMazeDynamic(MazeEnv):
    """gymnax environment `CorridorMazeDynamic-v0`."""

    maze = CORRIDOR_MAZE
    params_class = CorridorMazeParams

    def independent_door_cells(self, closed: jax.Array) -> jax.Array:
        """Independent dynamics: the doors placed at reset are the episode's doors."""
        return closed

    def fixed_walls_words(self, seed, start, goal, params) -> tuple[jax.Array, jax.Array]:
        """Place walls one at a time; revert a wall that disconnects start and goal; give up on a
        wall after TRIES_PER_WALL failed tries (so fewer walls may be placed).

        Hot path (runs inside every reset): everything is scalar bit arithmetic. The 49 candidates
        are two uint32 words (`envs.kernels.bitsets`); the room graph's open east/south edges are
        updated incrementally; `flood_connected` decides.
        """
        n_walls = params.fixed_walls
        if n_walls == 0:
            return jnp.uint32(0), jnp.uint32(0)
        cell_rooms = jnp.asarray(CELL_ROOMS.reshape(-1))
        src = cell_rooms[start[0] * self.W + start[1]]
        dst = cell_rooms[goal[0] * self.W + goal[1]]
        s_lo, s_hi = self._words.of(start)
        g_lo, g_hi = self._words.of(goal)
        never_lo, never_hi = s_lo | g_lo, s_hi | g_hi

        def cond(c):
            return c[0] < n_walls

        def body(c):
            wall_i, tries, lo, hi, east, south, word = c
            free_lo = ~lo & ~never_lo
            free_hi = ~hi & ~never_hi & self._words.all_hi
            found, in_lo, idx = pick_one(hash_u32(seed + word * jnp.uint32(0x632BE5AB)), free_lo, free_hi)
            is_h, bit = cand_edge(idx)
            east_t = jnp.where(is_h, east & ~bit, east)
            south_t = jnp.where(is_h, south, south & ~bit)
            ok = found & flood_connected(east_t, south_t, src, dst)
            one = jnp.uint32(1) << (idx % 32).astype(jnp.uint32)
            lo = jnp.where(ok & in_lo, lo | one, lo)
            hi = jnp.where(ok & ~in_lo, hi | one, hi)
            east, south = jnp.where(ok, east_t, east), jnp.where(ok, south_t, south)
            next_wall = ok | (tries + 1 >= TRIES_PER_WALL)
            return (wall_i + next_wall, jnp.where(next_wall, 0, tries + 1), lo, hi, east, south, word + 1)

        z = jnp.uint32(0)
        c = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.int32(0), z, z, jnp.uint32(ALL_EAST),
                                            jnp.uint32(ALL_SOUTH), z))
        return c[2], c[3]
