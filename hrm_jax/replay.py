"""Replay: a flashbax item buffer on the device (uniform sampling), holding `Transition`s.

Each transition keeps what the authors' learner needs (reference-facts §3): the observation and
next observation as uint8 tokens, action, reward, terminated, truncated, the z seed used when
acting (`prev_z`) and the converged z after acting (`next_z`).
"""
from __future__ import annotations

import flashbax as fbx
import jax
import jax.numpy as jnp
from flax import struct

from hrm_jax.model import StoredZ


@struct.dataclass
class Transition:
    obs: jax.Array          # uint8[T]
    action: jax.Array       # int32
    reward: jax.Array       # float32
    next_obs: jax.Array     # uint8[T] (the true next observation, before any auto-reset)
    terminated: jax.Array   # bool
    truncated: jax.Array    # bool
    prev_z: StoredZ         # the z seed used to act on obs
    next_z: StoredZ         # the converged z after acting (the target net's seed on next_obs)


def make_buffer(capacity: int, batch_size: int, min_length: int):
    """Flashbax item buffer; `add` takes a batch of transitions (leading axis = envs)."""
    return fbx.make_item_buffer(max_length=capacity, min_length=max(min_length, 1),
                                sample_batch_size=batch_size, add_sequences=False, add_batches=True)


def transition_bytes(obs_len: int, z_shape: tuple[int, ...]) -> int:
    """Bytes one stored transition costs (obs + next_obs + scalars + two StoredZ of float32)."""
    z = 2 * 4 * int(jnp.prod(jnp.array(z_shape)))  # z_H and z_L
    return 2 * obs_len + 4 + 4 + 1 + 1 + 2 * z


def example_transition(obs_len: int, z_shape: tuple[int, ...]) -> Transition:
    """A zero transition that fixes the buffer's shapes and dtypes."""
    z = StoredZ(z_H=jnp.zeros(z_shape, jnp.float32), z_L=jnp.zeros(z_shape, jnp.float32))
    return Transition(obs=jnp.zeros((obs_len,), jnp.uint8), action=jnp.int32(0), reward=jnp.float32(0),
                      next_obs=jnp.zeros((obs_len,), jnp.uint8), terminated=jnp.bool_(False),
                      truncated=jnp.bool_(False), prev_z=z, next_z=z)
