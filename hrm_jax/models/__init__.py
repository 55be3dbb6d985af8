"""Q-networks and the functional API the learners, acting and analysis use.

`make_model(cfg, grid_width)` builds the network `cfg.arch` names: the HRM core (`hrm.py`, over
`layers.py`; FLOP counts in `flops.py`) or a baseline without z (`baselines.py`). Every function
below takes either; for a baseline the carry and the stored z are zero placeholders of width 1 and
a segment is one forward pass, so the learners need no special case.

  variables  {"params": trainable, "constants": never trained (H_init / L_init; a baseline's zero z)}
  Carry      the recurrent state inside an environment step, f32[B, S, D] each
  StoredZ    what replay keeps between environment steps
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from hrm_jax.config import ModelConfig
from hrm_jax.models import hrm
from hrm_jax.models.baselines import BASELINES
from hrm_jax.models.hrm import HRM, Carry, StoredZ, count_params

__all__ = ["HRM", "Carry", "StoredZ", "count_params", "make_model", "init_variables", "stored_z_shape", "seed_carry",
           "to_stored", "segment", "run_segments", "is_hrm"]


def make_model(cfg: ModelConfig, grid_width: int = 0):
    """The network of `cfg.arch`. `grid_width`: the observation's width in cells
    (env.maze.obs_shape[1]); used by pos_encoding learned2d and the cnn baseline."""
    if cfg.arch == "hrm":
        return hrm.make_model(cfg, grid_width)
    return BASELINES[cfg.arch](cfg, grid_width)


def is_hrm(model) -> bool:
    return isinstance(model, HRM)


def init_variables(model, key: jax.Array, obs_len: int) -> dict[str, Any]:
    """{'params': ..., 'constants': ...} for observations of `obs_len` tokens."""
    if is_hrm(model):
        return hrm.init_variables(model, key, obs_len)
    params = jax.jit(lambda k: model.init(k, jnp.zeros((1, obs_len), jnp.uint8)))(key)["params"]
    return {"params": params, "constants": {"z_init": jnp.zeros((1,), jnp.float32)}}


def stored_z_shape(cfg: ModelConfig, obs_len: int) -> tuple[int, ...]:
    """The shape of one environment's StoredZ leaf (z_H or z_L)."""
    if cfg.arch != "hrm":
        return (1,)
    return (obs_len + 1, cfg.hidden) if cfg.z_carry == "full" else (cfg.hidden,)


def seed_carry(model, variables: dict, stored: StoredZ | None, batch: int, obs_len: int) -> Carry:
    """The carry an environment step starts from (`hrm.seed_carry`; a baseline's: zeros [B, 1, 1])."""
    if is_hrm(model):
        return hrm.seed_carry(model, variables, stored, batch, obs_len)
    z = jnp.zeros((batch, 1, 1), jnp.float32)
    return Carry(z_H=z, z_L=z)


def to_stored(model, carry: Carry) -> StoredZ:
    if is_hrm(model):
        return hrm.to_stored(model, carry)
    return StoredZ(z_H=carry.z_H[:, -1], z_L=carry.z_L[:, -1])


def segment(model, variables: dict, tokens: jax.Array, carry: Carry, chunk: int | None = None) -> tuple[Carry, jax.Array]:
    """One segment with HRM's 1-step gradient: (detached new carry, q f32[B, A]). A baseline: one
    forward pass, the carry passed through."""
    if is_hrm(model):
        return hrm.segment(model, variables, tokens, carry, chunk)
    return carry, model.apply({"params": variables["params"]}, tokens)


def run_segments(model, variables: dict, tokens: jax.Array, carry: Carry, n: int, with_trace: bool = False,
                 chunk: int | None = None, keep: str = "carry"):
    """n segments without gradient (`hrm.run_segments`). A baseline runs its network once; its
    trace (every segment the same) is the zero placeholder."""
    if is_hrm(model):
        return hrm.run_segments(model, variables, tokens, carry, n, with_trace, chunk, keep)
    if keep not in ("carry", "stored", "none"):
        raise ValueError(f"run_segments: keep={keep!r}; allowed: carry, stored, none")
    q = model.apply({"params": jax.lax.stop_gradient(variables["params"])}, tokens)
    out = carry if keep == "carry" else to_stored(model, carry) if keep == "stored" else None
    trace = None
    if with_trace:
        z = jnp.zeros((n, tokens.shape[0], 1), jnp.float32)
        trace = dict(z_H=z, z_L=z)
    return out, q, trace
