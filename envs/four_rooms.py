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

from envs import checks
from envs.gridworld import MazeEnv
from envs.maps import FOUR_ROOMS
from envs.params import MazeParams


@struct.dataclass
class FourRoomsParams(MazeParams):
    closed_doors: int = struct.field(pytree_node=False, default=1)

    maze = FOUR_ROOMS

    def check_door_counts(self) -> None:
        checks.check_count("closed_doors", self.closed_doors, len(FOUR_ROOMS.candidates), "four-rooms has 4 doorways")

    @property
    def door_count(self) -> int:
        return self.closed_doors


class FourRoomsDynamic(MazeEnv):
    """gymnax environment `FourRoomsDynamic-v0`."""

    maze = FOUR_ROOMS
    params_class = FourRoomsParams
