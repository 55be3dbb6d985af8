"""The two maps of the paper and the token codes (docs/reference.md §1), as static numpy data.

A map is given twice: as a *layout* (`|` permanent wall, `.` floor, `d` door candidate) and as
the *template* NetHack draws with every candidate open (`-`/`|` chosen per wall cell by NetHack).
The observation is the template with overlays (closed doors, fixed walls, `<`, `>`, `@`), cropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ASCII codes used as tokens (NetHack's `chars` screen).
OFF_MAP = ord(" ")      # 32
DOOR_MAZE = ord("#")    # 35: a closed dynamic door in the corridor maze
WALL_H = ord("-")       # 45
FLOOR = ord(".")        # 46
START = ord("<")        # 60: up-staircase left on the start cell
GOAL = ord(">")         # 62
AGENT = ord("@")        # 64
WALL_V = ord("|")       # 124: walls; a closed four-rooms door; a maze fixed wall

# Actions: NetHack's four cardinal moves.
ACTION_NAMES = ("N", "E", "S", "W")
ACTION_DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int32)

FOUR_ROOMS_LAYOUT = """\
|||||||||||||
|.....|.....|
|.....|.....|
|.....d.....|
|.....|.....|
|.....|.....|
||d||||.....|
|.....|||d|||
|.....|.....|
|.....|.....|
|.....d.....|
|.....|.....|
|||||||||||||"""

FOUR_ROOMS_TEMPLATE = """\
-------------
|.....|.....|
|.....|.....|
|...........|
|.....|.....|
|.....|.....|
|-.---|.....|
|.....|--.--|
|.....|.....|
|.....|.....|
|...........|
|.....|.....|
-------------"""

CORRIDOR_MAZE_LAYOUT = """\
|||||||||||||
|.d.d.d.d.d.|
|d|d|d|d|d|d|
|.d.d.d.d.d.|
|d|d|d|d|d|d|
|.d.d.d.d.d.|
|d|d|d|d|d|d|
|.d.d.d.d.d.|
|d|d|d|d|d|d|
|.d.d.d.d.d.|
|||||||||||||"""

CORRIDOR_MAZE_TEMPLATE = """\
-------------
|...........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|...........|
-------------"""


def _grid(text: str) -> np.ndarray:
    rows = text.splitlines()
    assert len({len(r) for r in rows}) == 1, "ragged map"
    return np.array([list(r) for r in rows])


@dataclass(frozen=True, eq=False)
class MazeMap:
    """Static description of one map. Coordinates are (row, col) including the outer wall."""

    name: str
    layout: np.ndarray          # str[H, W] of '|', '.', 'd'
    template: np.ndarray        # uint8[H, W] tokens with every candidate open
    crop: tuple[int, int, int, int]  # (row0, row1, col0, col1) of the observation, half-open
    door_glyph: int             # token of a closed dynamic door
    fixed_wall_glyph: int = WALL_V

    @property
    def shape(self) -> tuple[int, int]:
        return self.layout.shape

    @property
    def wall(self) -> np.ndarray:
        """bool[H, W]: permanent walls."""
        return self.layout == "|"

    @property
    def candidates(self) -> np.ndarray:
        """int32[n_cand, 2]: door candidate cells, row-major order."""
        return np.argwhere(self.layout == "d").astype(np.int32)

    @property
    def floor(self) -> np.ndarray:
        """int32[n_floor, 2]: every walkable cell (floor and candidates), row-major."""
        return np.argwhere(self.layout != "|").astype(np.int32)

    @property
    def candidate_index(self) -> np.ndarray:
        """int32[H, W]: index into `candidates`, -1 elsewhere."""
        idx = -np.ones(self.shape, np.int32)
        for i, (r, c) in enumerate(self.candidates):
            idx[r, c] = i
        return idx

    @property
    def obs_cells(self) -> np.ndarray:
        """int32[obs_len]: flat (row*W + col) indices of the observed cells, row-major."""
        r0, r1, c0, c1 = self.crop
        H, W = self.shape
        rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        return (rr * W + cc).reshape(-1).astype(np.int32)

    @property
    def obs_shape(self) -> tuple[int, int]:
        r0, r1, c0, c1 = self.crop
        return (r1 - r0, c1 - c0)


def _template(text: str) -> np.ndarray:
    return np.vectorize(ord)(_grid(text)).astype(np.uint8)


FOUR_ROOMS = MazeMap(
    name="four_rooms",
    layout=_grid(FOUR_ROOMS_LAYOUT),
    template=_template(FOUR_ROOMS_TEMPLATE),
    crop=(1, 12, 1, 12),  # the 11x11 interior: 121 tokens
    door_glyph=WALL_V,
)

CORRIDOR_MAZE = MazeMap(
    name="corridor_maze",
    layout=_grid(CORRIDOR_MAZE_LAYOUT),
    template=_template(CORRIDOR_MAZE_TEMPLATE),
    crop=(0, 11, 0, 13),  # the whole map with its outer wall: 143 tokens
    door_glyph=DOOR_MAZE,
)
