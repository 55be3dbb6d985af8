"""Analysis of the recurrent state (docs/reference.md §4; paper §3.2, figures 5-7).

Pure functions, jit- and vmap-safe where they touch JAX:

* `shortest_path_cells` / `env_changed`: did the environment change since the previous step in a
  way that may matter to the plan? A step is "changed" if a cell on the previous shortest path
  from the agent to the goal changed its blocked status, or if a path exists now where none did
  before. The grids compared are `MazeEnv.blocked_grid` (walls, fixed walls, closed doors), so
  the agent `@` and start `<` markers moving never count as a change.

  Deviation from the authors: they used ONE A* path; we use the union of ALL shortest paths
  (cells c with d_agent(c) + d_goal(c) == d_agent(goal), from two BFS distance fields). This is
  deterministic (no tie-breaking among equally short paths) and flags a step as changed whenever
  some shortest path is touched, so it marks slightly more steps "changed" than one A* path.
  As in the authors' definition, a door OPENING that creates a shorter path while a (longer) path
  already existed is not a change (the opened cell was not on the previous path).

* `step_mask`: which recorded steps count (not the first step of an episode, not after it ended).

* `mse_to_segment`: per-sample MSE over the hidden dims between z after every segment and z after
  one reference segment (the last: convergence, figures 5-6; the first: divergence, figure 7).

* `masked_median`: host-side median over the selected samples (numpy; NaN when none).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import bfs


def _path_cells_and_length(blocked: jax.Array, src: jax.Array, dst: jax.Array):
    d_src = bfs.distance_field(blocked, src)
    d_dst = bfs.distance_field(blocked, dst)
    length = d_dst[src[0], src[1]]
    cells = (d_src >= 0) & (d_dst >= 0) & (length >= 0) & (d_src + d_dst == length)
    return cells, length


def shortest_path_cells(blocked: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
    """bool[H, W]: cells on SOME shortest 4-neighbour path from src to dst (both included); all
    False when dst is unreachable. blocked: bool[H, W]; src, dst: int32[2] (row, col)."""
    return _path_cells_and_length(blocked, src, dst)[0]


def env_changed(blocked_prev: jax.Array, blocked_now: jax.Array, agent_prev: jax.Array,
                agent_now: jax.Array, goal: jax.Array) -> jax.Array:
    """bool: the environment changed between two consecutive steps, in the paper's sense.

    True if a cell on a shortest path from agent_prev to the goal under blocked_prev (the agent's
    previous cell and the goal included, as an A* path would) has a different blocked status in
    blocked_now, or if the goal is reachable from agent_now under blocked_now while it was not
    reachable from agent_prev under blocked_prev.
    """
    path, length = _path_cells_and_length(blocked_prev, agent_prev, goal)
    touched = jnp.any(path & (blocked_prev != blocked_now))
    now = bfs.shortest_path_length(blocked_now, agent_now, goal) >= 0
    return touched | (now & (length < 0))


def changed_steps(env, states) -> jax.Array:
    """bool[T, N]: env_changed between step t-1 and step t of every rollout (False at t = 0).

    states: an EnvState batch with leading axes [T, N] (the state BEFORE each step, as recorded by
    `acting.greedy_rollout(with_trace=True)`)."""
    blocked = jax.vmap(jax.vmap(env.blocked_grid))(states)  # [T, N, H, W]
    f = jax.vmap(jax.vmap(env_changed))                      # over T-1, then N
    ch = f(blocked[:-1], blocked[1:], states.agent[:-1], states.agent[1:], states.goal[1:])
    return jnp.concatenate([jnp.zeros_like(ch[:1]), ch], axis=0)


def step_mask(active: jax.Array) -> jax.Array:
    """bool[T, N]: steps that count: the episode was still running (active) and it is not the
    episode's first step. Rollouts have no auto-reset, so step 0 is each episode's first step."""
    t = jnp.arange(active.shape[0])[:, None]
    return active & (t > 0)


def mse_to_segment(z: jax.Array, ref: int) -> jax.Array:
    """z: f32[..., S, D] (z after each of S segments). Returns f32[..., S]: the MSE over D between
    z after each segment and z after segment `ref` (-1: the last, 0: the first)."""
    r = jnp.take(z, ref, axis=-2)[..., None, :]
    return jnp.mean(jnp.square(z - r), axis=-1)


def convergence_and_divergence(trace: dict) -> dict:
    """From a greedy_rollout trace (z_H, z_L: f32[T, S, N, D]) to per-sample curves f32[T, N, S-1]:
    `conv_<z>`[..., k-1] = MSE(z_k, z_S) for k = 1..S-1 (convergence);
    `div_<z>`[..., k-2] = MSE(z_k, z_1) for k = 2..S (divergence)."""
    out = {}
    for name in ("z_H", "z_L"):
        z = jnp.swapaxes(trace[name], 1, 2)  # [T, N, S, D]
        out[f"conv_{name}"] = mse_to_segment(z, -1)[..., :-1]
        out[f"div_{name}"] = mse_to_segment(z, 0)[..., 1:]
    return out


def masked_median(curves: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """curves f32[T, N, K], mask bool[T, N] -> f32[K]: median over the selected samples (NaN if none)."""
    curves = np.asarray(curves)
    sel = curves[np.asarray(mask)]
    if sel.shape[0] == 0:
        return np.full(curves.shape[-1], np.nan)
    return np.median(sel, axis=0)
