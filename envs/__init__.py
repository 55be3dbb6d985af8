"""Pure-JAX dynamic mazes with the gymnax API.

Importing `envs` registers `FourRoomsDynamic-v0` and `CorridorMazeDynamic-v0` with gymnax, so
`gymnax.make("FourRoomsDynamic-v0")` returns `(env, params)`. `envs.make("four_rooms", ...)` is
the short form used by the trainer, with params overrides validated on construction.
"""
from __future__ import annotations

import gymnax
from gymnax import registration as _registration

from envs.corridor_maze import CorridorMazeDynamic, CorridorMazeParams
from envs.four_rooms import FourRoomsDynamic, FourRoomsParams
from envs.maze_env import EnvState, MazeEnv

GYMNAX_IDS = {"four_rooms": "FourRoomsDynamic-v0", "corridor_maze": "CorridorMazeDynamic-v0"}
_CLASSES = {"four_rooms": (FourRoomsDynamic, FourRoomsParams), "corridor_maze": (CorridorMazeDynamic, CorridorMazeParams)}
ENV_NAMES = tuple(GYMNAX_IDS)

for _name, _id in GYMNAX_IDS.items():
    if _id not in _registration.registered_envs:
        gymnax.register(_id, _CLASSES[_name][0])


def make(name: str, **params):
    """(env, params) for a short env name, with EnvParams overrides (validated: ValueError)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(ENV_NAMES)}")
    env_cls, params_cls = _CLASSES[name]
    known = set(params_cls.__dataclass_fields__)
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown {name} parameter(s) {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
    return env_cls(), params_cls(**params)


__all__ = ["make", "ENV_NAMES", "GYMNAX_IDS", "EnvState", "MazeEnv", "FourRoomsDynamic", "FourRoomsParams",
           "CorridorMazeDynamic", "CorridorMazeParams"]
