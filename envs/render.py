"""Rendering: ASCII (the token characters themselves), RGB arrays, and GIFs of episodes."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from envs.maps import AGENT, DOOR_MAZE, FLOOR, GOAL, OFF_MAP, START, WALL_H, WALL_V

# RGB per token; anything else is drawn magenta so an unexpected token is visible.
PALETTE = {
    OFF_MAP: (0, 0, 0),
    WALL_H: (90, 90, 110),
    WALL_V: (90, 90, 110),
    FLOOR: (235, 235, 225),
    DOOR_MAZE: (170, 90, 40),
    START: (120, 170, 240),
    GOAL: (60, 190, 80),
    AGENT: (220, 50, 50),
}


def ascii_view(obs: np.ndarray, shape: tuple[int, int]) -> str:
    """Tokens uint8[obs_len] -> lines of characters, one per map row."""
    grid = np.asarray(obs, dtype=np.uint8).reshape(shape)
    return "\n".join("".join(chr(int(t)) for t in row) for row in grid)


def rgb_array(obs: np.ndarray, shape: tuple[int, int], cell: int = 16) -> np.ndarray:
    """Tokens -> uint8[H*cell, W*cell, 3] image (the agent and goal drawn as discs)."""
    grid = np.asarray(obs, dtype=np.uint8).reshape(shape)
    colors = np.zeros(grid.shape + (3,), np.uint8)
    colors[...] = (255, 0, 255)
    for token, rgb in PALETTE.items():
        colors[grid == token] = rgb
    floor_rgb = np.array(PALETTE[FLOOR], np.uint8)
    img = np.repeat(np.repeat(colors, cell, 0), cell, 1)
    # draw agent and goal as discs on floor so they read as "things on a cell"
    yy, xx = np.mgrid[:cell, :cell]
    disc = (yy - cell / 2 + 0.5) ** 2 + (xx - cell / 2 + 0.5) ** 2 <= (cell * 0.4) ** 2
    for token in (AGENT, GOAL):
        for r, c in zip(*np.nonzero(grid == token)):
            patch = img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
            patch[~disc] = floor_rgb
    return img


def write_gif(frames: Iterable[np.ndarray], path: str, fps: float = 4.0) -> str:
    """Write RGB frames (uint8[H, W, 3]) as an animated GIF."""
    import imageio.v2 as imageio

    frames = [np.asarray(f, np.uint8) for f in frames]
    if not frames:
        raise ValueError("write_gif: no frames")
    imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    return path


def side_by_side(left: str, right: str, titles: Sequence[str] = ("", ""), gap: int = 4) -> str:
    """Two ASCII views next to each other (for mismatch reports)."""
    a, b = left.splitlines(), right.splitlines()
    wa = max([len(x) for x in a] + [len(titles[0])])
    rows = [titles[0].ljust(wa) + " " * gap + titles[1]]
    for i in range(max(len(a), len(b))):
        la = a[i] if i < len(a) else ""
        lb = b[i] if i < len(b) else ""
        rows.append(la.ljust(wa) + " " * gap + lb)
    return "\n".join(rows)
