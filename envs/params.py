"""The params every maze shares (`MazeParams`); each maze adds its door counts in a subclass.

Leaves (traced, may differ per env under vmap): max_steps_in_episode, p_change, blocked_reward.
Static fields (part of the compiled program): the door counts, door_dynamics, goal.
"""
from __future__ import annotations

from typing import ClassVar

from flax import struct

from envs import checks
from envs.maps import MazeMap

BLOCKED_REWARD = -0.01
DOOR_DYNAMICS = ("joint", "independent")


@struct.dataclass
class MazeParams:
    max_steps_in_episode: int = 80
    p_change: float = 0.05
    # reward of a move into a wall, a closed door or the border (authors: -0.01, the default);
    # a larger penalty is an option for the agents that get stuck bumping (docs/deviations.md).
    blocked_reward: float = BLOCKED_REWARD
    # joint: with probability p_change (or when none is closed) the whole closed set is redrawn;
    # independent: each door toggles with probability p_change.
    door_dynamics: str = struct.field(pytree_node=False, default="joint")
    # (row, col) in map coordinates: a goal fixed for every episode (classic four-rooms, Sutton et
    # al. 1999), the start and the doors still random; None = uniform over all walkable cells,
    # door candidates included (the paper).
    goal: tuple | None = struct.field(pytree_node=False, default=None)

    maze: ClassVar[MazeMap]  # the map the params are for (goal and door counts are checked on it)

    def __post_init__(self):
        checks.check_goal(self.goal, self.maze)
        self.check_door_counts()
        checks.check_probability("p_change", self.p_change)
        checks.check_penalty("blocked_reward", self.blocked_reward, BLOCKED_REWARD)
        checks.check_positive("max_steps_in_episode", self.max_steps_in_episode)
        checks.check_choice("door_dynamics", self.door_dynamics, DOOR_DYNAMICS)

    def check_door_counts(self) -> None:
        """ValueError unless the maze's door count fields fit its candidates."""
        raise NotImplementedError

    @property
    def door_count(self) -> int:
        """How many doors a reset or a joint resample closes (static)."""
        raise NotImplementedError
