"""Scripted policies for the mazes: baselines for evaluation, play and the MiniHack parity check.

Both are jittable and vmappable over a batch of environments
(`jax.vmap(lambda s: shortest_path_policy(env, s))(states)`). `run_episodes` plays whole episodes
of any policy, vmapped over episodes inside one jitted `lax.scan`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from envs import bfs
from envs.gridworld import EnvState, MazeEnv

N_ACTIONS = 4


def random_policy(key: jax.Array, obs: jax.Array = None, state: EnvState = None) -> jax.Array:
    """A uniformly random cardinal move (int32 in 0..3). obs and state are ignored; they are in
    the signature so every policy can be called the same way."""
    return jax.random.randint(key, (), 0, N_ACTIONS, dtype=jnp.int32)


def move_distances(env: MazeEnv, state: EnvState) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(here, after, blocked): the BFS distance to the goal from the agent's cell (int32, -1 if
    the goal is cut off), from the cell each of the 4 moves leads to (int32[4], -1 where that cell
    is blocked or cut off), and whether each move bumps into a wall or closed door (bool[4]).

    The distances are those of `bfs.distance_field(env.blocked_grid(state), state.goal)` at these
    five cells, computed by a bit-packed flood from the goal (one uint32 per row) that stops as
    soon as all five are labelled: ~20x cheaper than the full distance field.
    """
    grid = env.blocked_grid(state)
    H, W = grid.shape
    cells = jnp.concatenate([state.agent[None, :], state.agent[None, :] + env._deltas])  # int32[5, 2]
    r = jnp.clip(cells[:, 0], 0, H - 1)
    c = jnp.clip(cells[:, 1], 0, W - 1)
    blocked = grid[r, c].at[0].set(False)           # the agent's own cell is never blocked
    free = bfs.pack_rows(~grid)
    rows = jnp.arange(H)
    reach0 = jnp.where(rows == state.goal[0], jnp.uint32(1) << state.goal[1].astype(jnp.uint32), jnp.uint32(0))

    def hit(reach):
        return ((reach[r] >> c.astype(jnp.uint32)) & 1).astype(bool)

    def cond(carry):
        _, dist, _, changed = carry
        return changed & jnp.any((dist < 0) & ~blocked)

    def body(carry):
        reach, dist, d, _ = carry
        up = jnp.concatenate([reach[1:], jnp.zeros((1,), jnp.uint32)])
        down = jnp.concatenate([jnp.zeros((1,), jnp.uint32), reach[:-1]])
        new = ((reach << 1) | (reach >> 1) | up | down) & free | reach
        dist = jnp.where((dist < 0) & hit(new), d + 1, dist)
        return new, dist, d + 1, jnp.any(new != reach)

    dist0 = jnp.where(hit(reach0), 0, bfs.UNREACHABLE).astype(jnp.int32)
    _, dist, _, _ = jax.lax.while_loop(cond, body, (reach0, dist0, jnp.int32(0), jnp.bool_(True)))
    return dist[0], dist[1:], blocked[1:]


def shortest_path_policy(env: MazeEnv, state: EnvState) -> jax.Array:
    """A move that decreases the BFS distance to the goal under the current doors (int32 0..3).

    Ties go to the lowest action index (N, E, S, W). When the goal is unreachable (closed doors
    cut it off) the agent waits for the doors to change: it bumps into a blocked neighbour (the
    first one), or takes action 0 if no neighbour is blocked.
    """
    here, after, blocked = move_distances(env, state)
    big = jnp.int32(2**30)
    improving = (after >= 0) & (here >= 0) & (after < here)
    best = jnp.argmin(jnp.where(improving, after, big)).astype(jnp.int32)
    wait = jnp.where(jnp.any(blocked), jnp.argmax(blocked), 0).astype(jnp.int32)
    return jnp.where(jnp.any(improving), best, wait)


def as_policy(name: str, env: MazeEnv):
    """A policy by name as a `(key, obs, state) -> action` function."""
    if name == "random":
        return random_policy
    if name == "shortest-path":
        return lambda key, obs, state: shortest_path_policy(env, state)
    raise ValueError(f"unknown policy {name!r}; choose random or shortest-path")


def play_episode(env: MazeEnv, params, policy, key: jax.Array, record: bool = False) -> dict:
    """One fresh episode of `policy(key, obs, state) -> action` from `reset` until it terminates
    (goal) or is truncated, as a `lax.scan` of `max_steps_in_episode` steps whose steps after the
    end are frozen (no auto-reset). Returns `success` (bool), `length` (int32, steps taken),
    `return` (float32), `optimal_start` (int32, BFS length start -> goal at reset, -1 if the goal
    starts cut off); with `record` also the frames `obs` uint8[T+1, obs_len], `closed_doors`
    bool[T+1, n_cand] and `reward` float32[T] (frozen/zero after the end). Jittable, vmappable.
    """
    T = int(params.max_steps_in_episode)
    k_reset, k_loop = jax.random.split(key)
    obs, state = env.reset(k_reset, params)
    optimal = env.optimal_path_length(state)

    def body(carry, k_t):
        obs, state, done, success, length, ret = carry
        k_pol, k_step = jax.random.split(k_t)
        action = policy(k_pol, obs, state)
        obs2, state2, reward, terminated, _ = env.step_env(k_step, state, action, params)
        live = ~done
        ended = terminated | (state2.time >= params.max_steps_in_episode)
        obs = jnp.where(live, obs2, obs)
        state = jax.tree.map(lambda new, old: jnp.where(live, new, old), state2, state)
        reward = jnp.where(live, reward, 0.0)
        carry = (obs, state, done | ended, success | (live & terminated), length + live.astype(jnp.int32),
                 ret + reward)
        return carry, ((obs, state.closed_doors, reward) if record else None)

    init = (obs, state, jnp.bool_(False), jnp.bool_(False), jnp.int32(0), jnp.float32(0.0))
    (_, _, _, success, length, ret), traj = jax.lax.scan(body, init, jax.random.split(k_loop, T))
    res = {"success": success, "length": length, "return": ret, "optimal_start": optimal}
    if record:
        res["obs"] = jnp.concatenate([obs[None], traj[0]])
        res["closed_doors"] = jnp.concatenate([state.closed_doors[None], traj[1]])
        res["reward"] = traj[2]
    return res


def episode_keys(key: jax.Array, n_episodes: int) -> jax.Array:
    """The per-episode keys `run_episodes` uses (episode i of a run can be replayed alone)."""
    return jax.random.split(key, n_episodes)


def run_episodes(env: MazeEnv, params, policy, key: jax.Array, n_episodes: int, record: bool = False) -> dict:
    """`play_episode` vmapped over `n_episodes` episodes (keys from `episode_keys(key, n)`): the
    same dict with a leading episode axis. Call inside `jax.jit` (env, params, policy,
    n_episodes, record static) or use `jit_run_episodes`."""
    return jax.vmap(lambda k: play_episode(env, params, policy, k, record))(episode_keys(key, n_episodes))


def jit_run_episodes(env: MazeEnv, params, policy, n_episodes: int, record: bool = False):
    """`run_episodes` compiled for fixed env, params, policy and episode count: `fn(key) -> dict`."""
    return jax.jit(lambda key: run_episodes(env, params, policy, key, n_episodes, record))


__all__ = ["random_policy", "shortest_path_policy", "move_distances", "as_policy", "play_episode", "episode_keys",
           "run_episodes", "jit_run_episodes", "N_ACTIONS"]
