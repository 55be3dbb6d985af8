"""Pure-JAX dynamic mazes with the gymnax API.

Importing `envs` registers `FourRoomsDynamic-v0` and `CorridorMazeDynamic-v0` with gymnax, so
`gymnax.make("FourRoomsDynamic-v0")` returns `(env, params)`. `envs.make("four_rooms", ...)` is
the short form used by the trainer, with params overrides validated on construction.

Layout: `gridworld` (the semantics both mazes share: `EnvState`, `MazeEnv`), `params` (the
params they share), `checks` (every input check), `observation` (the token view), one module per
maze (`four_rooms`, `corridor_maze`: its map, params and reset hooks), `maps` (static maps and
tokens), `kernels/` (fast exact kernels behind the semantics), `bfs`, `policies`, `render`, and
`minihack_ref` (the MiniHack reference validator).
"""
from __future__ import annotations

import gymnax
from gymnax import registration as _registration

from envs import checks
from envs.corridor_maze import CorridorMazeDynamic, CorridorMazeParams
from envs.four_rooms import FourRoomsDynamic, FourRoomsParams
from envs.gridworld import EnvState, MazeEnv

GYMNAX_IDS = {"four_rooms": "FourRoomsDynamic-v0", "corridor_maze": "CorridorMazeDynamic-v0"}
_CLASSES = {"four_rooms": FourRoomsDynamic, "corridor_maze": CorridorMazeDynamic}
ENV_NAMES = tuple(GYMNAX_IDS)

for _name, _id in GYMNAX_IDS.items():
    if _id not in _registration.registered_envs:
        gymnax.register(_id, _CLASSES[_name])


def make(name: str, **params):
    """(env, params) for a short env name, with EnvParams overrides (validated: ValueError)."""
    checks.check_env_name(name, ENV_NAMES)
    env_cls = _CLASSES[name]
    checks.check_param_names(name, params, env_cls.params_class.__dataclass_fields__)
    return env_cls(), env_cls.params_class(**params)


__all__ = ["make", "ENV_NAMES", "GYMNAX_IDS", "EnvState", "MazeEnv", "FourRoomsDynamic", "FourRoomsParams",
           "CorridorMazeDynamic", "CorridorMazeParams"]
