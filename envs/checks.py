"""Every check of user input to the mazes, each raising ValueError with a message that says what
is allowed: params fields, actions, env and params names, explicit cells.

Values that can be traced (params leaves, actions) are checked only when concrete: inside `jit`
nothing can raise (an out-of-range action is then a flagged no-op, `info["invalid_action"]`).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np


def is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_probability(name: str, p: Any) -> None:
    if is_concrete(p):
        v = np.asarray(p)
        if not np.all((v >= 0.0) & (v <= 1.0)):
            raise ValueError(f"{name}={p} must be a probability in [0, 1]")


def check_penalty(name: str, v: Any, authors: float) -> None:
    """A reward for a bad move: finite and <= 0 (a positive one would pay the agent to bump)."""
    if is_concrete(v):
        a = np.asarray(v)
        if not np.all(np.isfinite(a) & (a <= 0.0)):
            raise ValueError(f"{name}={v} must be a finite number <= 0 (authors: {authors})")


def check_positive(name: str, v: Any) -> None:
    if is_concrete(v) and not np.all(np.asarray(v) >= 1):
        raise ValueError(f"{name}={v} must be >= 1")


def check_count(name: str, v: int, most: int, what: str) -> None:
    if not isinstance(v, (int, np.integer)) or v < 0 or v > most:
        raise ValueError(f"{name}={v} must be an integer in [0, {most}] ({what})")


def check_choice(name: str, v: str, choices: tuple[str, ...]) -> None:
    if v not in choices:
        raise ValueError(f"{name}={v!r} must be one of {', '.join(choices)}")


def check_goal(goal, maze) -> None:
    """A fixed goal must be None or a walkable (row, col) of the map."""
    if goal is None:
        return
    cells = {tuple(int(v) for v in c) for c in np.asarray(maze.floor)}
    ok = isinstance(goal, tuple) and len(goal) == 2 and all(isinstance(v, int) for v in goal)
    if not ok or goal not in cells:
        raise ValueError(f"goal={goal!r} must be None or a walkable (row, col) cell of the {maze.shape[0]}x"
                         f"{maze.shape[1]} map (row 1..{maze.shape[0] - 2}, col 1..{maze.shape[1] - 2}, not a wall)")


def check_action(action: Any) -> None:
    """A concrete action must be an integer in 0..3 (traced ones are flagged by the step instead)."""
    if is_concrete(action):
        a = np.asarray(action)
        if not np.issubdtype(a.dtype, np.integer) or np.any((a < 0) | (a > 3)):
            raise ValueError(f"action={action!r} is out of range; allowed: integers 0..3 (N, E, S, W)")


def check_env_name(name: str, names: tuple[str, ...]) -> None:
    if name not in names:
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(names)}")


def check_param_names(env_name: str, given, known) -> None:
    unknown = set(given) - set(known)
    if unknown:
        raise ValueError(f"unknown {env_name} parameter(s) {sorted(unknown)}; allowed: {', '.join(sorted(known))}")


def check_walkable(name: str, pos, maze) -> None:
    """An explicit cell (row, col) must be inside the map and not a permanent wall."""
    r, c = pos
    H, W = maze.shape
    if not (0 <= r < H and 0 <= c < W) or maze.wall[r, c]:
        raise ValueError(f"{name}={tuple(pos)} is not a walkable cell of {maze.name}")


def check_candidate(cell, maze) -> None:
    """An explicit door or fixed-wall cell must be a door candidate of the map."""
    r, c = cell
    if maze.candidate_index[r, c] < 0:
        raise ValueError(f"cell {(r, c)} is not a door candidate of {maze.name}")
