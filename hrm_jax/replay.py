"""Replay: a flashbax buffer on the device (uniform sampling), holding `Transition`s.

Each transition keeps what the authors' learner needs (docs/reference.md §3): the observation and
next observation as uint8 tokens, action, reward, terminated, truncated, the z seed used when
acting (`prev_z`) and the converged z after acting (`next_z`).

One-step returns (the authors', `n_step=1`) use an item buffer of single transitions. n-step
returns (an option) need consecutive steps of one environment, so they use a trajectory buffer
(one row per env, time along the second axis) that samples windows of n steps; each window is
folded into one n-step transition when sampled (`n_step_transition`). The two layouts differ,
so a run's n_step is fixed once it has checkpoints.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp
from flax import struct

from hrm_jax.models.hrm import StoredZ


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


class Replay(NamedTuple):
    init: Callable     # example Transition -> buffer state
    add: Callable      # (buffer state, Transition with leaves [num_envs, ...]) -> buffer state
    sample: Callable   # (buffer state, key) -> (Transition [batch], discount: gamma or f32[batch])


def make_replay(capacity: int, batch_size: int, min_length: int, num_envs: int, n_step: int, gamma: float) -> Replay:
    """The replay for n-step returns; `sample` gives each transition's bootstrap discount
    (gamma^steps; the scalar gamma for n_step=1)."""
    if n_step == 1:
        buf = fbx.make_item_buffer(max_length=capacity, min_length=max(min_length, 1),
                                   sample_batch_size=batch_size, add_sequences=False, add_batches=True)
        return Replay(buf.init, buf.add, lambda state, key: (buf.sample(state, key).experience, gamma))
    buf = fbx.make_trajectory_buffer(add_batch_size=num_envs, sample_batch_size=batch_size,
                                     sample_sequence_length=n_step, period=1, min_length_time_axis=n_step,
                                     max_length_time_axis=capacity // num_envs)

    def add(state, tr: Transition):
        return buf.add(state, jax.tree.map(lambda x: x[:, None], tr))  # one time step per env

    def sample(state, key):
        return n_step_transition(buf.sample(state, key).experience, gamma)

    return Replay(buf.init, add, sample)


def n_step_transition(seq: Transition, gamma: float) -> tuple[Transition, jax.Array]:
    """Fold windows of consecutive steps of one env (leaves [B, n, ...]) into n-step transitions.

    A window counts its steps up to and including the first that ended an episode (terminated or
    truncated); steps after it belong to the next episode and are dropped. With k steps counted:
    reward = sum_{i<k} gamma^i r_i, next_obs / next_z / terminated / truncated are those of step k-1,
    and the bootstrap discount is gamma^k. Returns (Transition [B], discount f32[B])."""
    done = seq.terminated | seq.truncated                            # [B, n]
    n = done.shape[1]
    counted = (jnp.cumsum(done, axis=1) - done) == 0                 # no episode end strictly before i
    k = jnp.sum(counted, axis=1)                                     # steps counted, 1..n
    powers = jnp.float32(gamma) ** jnp.arange(n, dtype=jnp.float32)
    reward = jnp.sum(jnp.where(counted, seq.reward * powers, 0.0), axis=1)

    def first(x):
        return x[:, 0]

    def last(x):
        idx = (k - 1).reshape((-1,) + (1,) * (x.ndim - 1))
        return jnp.take_along_axis(x, idx, axis=1)[:, 0]

    tr = Transition(obs=first(seq.obs), action=first(seq.action), reward=reward, next_obs=last(seq.next_obs),
                    terminated=last(seq.terminated), truncated=last(seq.truncated),
                    prev_z=jax.tree.map(first, seq.prev_z), next_z=jax.tree.map(last, seq.next_z))
    return tr, jnp.float32(gamma) ** k.astype(jnp.float32)


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
