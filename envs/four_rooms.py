"""Four-rooms with dynamic doors (Sutton et al. 1999 layout; docs/reference.md §1).

```
-------------      the 13x13 map; the observation is the 11x11 interior (121 tokens).
|.....|.....|      4 doorways: (3,6), (6,2), (7,9), (10,6); `closed_doors` (1) of them are
|.....|.....|      closed at a time and drawn as `|`.
|...........|
|.....|.....|      Start and goal: uniform over distinct walkable cells (a doorway may hold
|.....|.....|      the start or the goal; that doorway is then never closed).
|-.---|.....|
|.....|--.--|
|.....|.....|
|.....|.....|
|...........|
|.....|.....|
-------------
```
"""
from __future__ import annotations

from flax import struct

from envs import maze_env
from envs.maps import FOUR_ROOMS


@struct.dataclass
class FourRoomsParams:
    max_steps_in_episode: int = 80
    p_change: float = 0.05
    # reward of a move into a wall, a closed door or the border (authors: -0.01, the default);
    # a larger penalty is an option for the agents that get stuck bumping (docs/deviations.md).
    blocked_reward: float = maze_env.BLOCKED_REWARD
    closed_doors: int = struct.field(pytree_node=False, default=1)
    door_dynamics: str = struct.field(pytree_node=False, default="joint")
    # (row, col) in map coordinates: a goal fixed for every episode (classic four-rooms, Sutton et
    # al. 1999), the start still uniform over the other walkable cells; None = uniform (the paper).
    goal: tuple | None = struct.field(pytree_node=False, default=None)

    def __post_init__(self):
        maze_env.check_count("closed_doors", self.closed_doors, len(FOUR_ROOMS.candidates), "four-rooms has 4 doorways")
        maze_env.check_goal(self.goal, FOUR_ROOMS)
        maze_env.check_probability("p_change", self.p_change)
        maze_env.check_penalty("blocked_reward", self.blocked_reward)
        maze_env.check_positive("max_steps_in_episode", self.max_steps_in_episode)
        maze_env.check_dynamics(self.door_dynamics)


class FourRoomsDynamic(maze_env.MazeEnv):
    """gymnax environment `FourRoomsDynamic-v0`."""

    maze = FOUR_ROOMS

    @property
    def default_params(self) -> FourRoomsParams:
        return FourRoomsParams()

    def door_count(self, params) -> int:
        return params.closed_doors
