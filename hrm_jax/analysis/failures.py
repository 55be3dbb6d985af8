"""Why greedy episodes fail: each failed episode's last steps, put into one of four modes.

A greedy policy is deterministic, and with reset Z it is a function of the observation alone, so
an agent that bumps into a wall sees the same observation again and bumps again until a door
changes: a failed greedy episode is rarely a near miss. From a traced rollout
(`acting.greedy_rollout(with_trace=True)`) every episode that did not reach the goal within the
step limit is classified by its last `tail` steps:

* stuck at a wall: it stood on one cell and its last move bumped into a wall (the map's or a
  fixed wall);
* waiting at a closed door: the same, but the last move bumped into a closed dynamic door (what
  the shortest-path policy does while the doors cut the goal off);
* oscillating: it moved, but among at most 2 cells;
* wandering: it visited 3 or more cells.

Independently of the mode, an episode counts as "cut off" when the goal was unreachable (closed
doors) in more than half of its steps: there the step limit, not the policy, may be to blame.

Why a greedy agent keeps bumping is a question about its Q values: `bump_margins` measures, at
every greedy step into a wall, by how much the bump's Q beats the best move that is not blocked,
and the agent's value (max Q) there. Under the optimal Q the bump is worse by
0.01 + (1 - gamma) * V (the -0.01 penalty, and one step of discount lost): a small gap, which a
learned Q must resolve to act right.

Pure functions, jit- and vmap-safe: `failure_modes` over one batch of episodes, vmapped over
seeds by the caller; `summarize_failures` turns the per-episode results into fractions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

SUCCEEDED, STUCK_AT_WALL, WAITING_AT_DOOR, OSCILLATING, WANDERING = -1, 0, 1, 2, 3
MODES = ("stuck at a wall", "waiting at a closed door", "oscillating", "wandering")
MODE_KEYS = ("stuck_at_wall", "waiting_at_door", "oscillating", "wandering")
TAIL = 10   # last steps looked at: long enough that a door usually stays as it was (p_change 0.05)


def distinct_cells(cells: jax.Array) -> jax.Array:
    """int32: how many different cells a sequence visits. cells: int32[K, 2]."""
    same = jnp.all(cells[:, None, :] == cells[None, :, :], axis=-1)     # [K, K]
    seen_before = jnp.any(jnp.tril(same, k=-1), axis=1)                 # equal to an earlier one
    return jnp.sum(~seen_before).astype(jnp.int32)


def blocked_or_door(env, state, pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(the move onto pos does not happen, the cell is a closed dynamic door): the env's own
    `cell_blocked`, and which of its blocked cells are doors rather than walls or fixed walls."""
    is_c, ci = env.candidate_at(pos)
    return env.cell_blocked(state, pos), is_c & state.closed_doors[ci] & ~state.fixed_walls[ci]


def failure_modes(env, states, actions: jax.Array, success: jax.Array, tail: int = TAIL) -> dict:
    """Per episode, why it failed.

    states: EnvState with leading axes [T, N], the state BEFORE each step; actions: int32[T, N];
    success: bool[N]. T is the episode limit, so a failed episode ran all T steps (no auto-reset).
    Returns mode: int32[N] (SUCCEEDED, or one of STUCK_AT_WALL..WANDERING for a failed episode) and
    cut_off: bool[N] (the goal was unreachable in more than half of the episode's steps; computed
    for failed episodes, False for the others).
    """
    T = actions.shape[0]
    if not 1 <= tail <= T:
        raise ValueError(f"tail={tail} must be between 1 and the episode limit {T}")
    cells = jnp.swapaxes(states.agent[T - tail:], 0, 1)                 # int32[N, tail, 2]
    n_cells = jax.vmap(distinct_cells)(cells)
    last = jax.tree.map(lambda x: x[T - 1], states)                     # state before the last step
    target = last.agent + env._deltas[actions[T - 1]]                   # int32[N, 2]

    blocked, into_door = jax.vmap(lambda st, pos: blocked_or_door(env, st, pos))(last, target)
    into_wall = blocked & ~into_door
    still = n_cells == 1
    mode = jnp.where(still & into_wall, STUCK_AT_WALL,
                     jnp.where(still & into_door, WAITING_AT_DOOR,
                               jnp.where(n_cells <= 2, OSCILLATING, WANDERING)))
    unreachable = jax.vmap(jax.vmap(env.optimal_path_length))(states) < 0  # [T, N]
    cut_off = ~success & (jnp.mean(unreachable.astype(jnp.float32), axis=0) > 0.5)
    return dict(mode=jnp.where(success, SUCCEEDED, mode).astype(jnp.int32), cut_off=cut_off)


def summarize_failures(modes: dict) -> dict:
    """Fractions over the failed episodes of one batch: `failed` (fraction of all episodes), one
    entry per MODE_KEYS (they sum to 1 when any episode failed) and `cut_off`."""
    mode, cut_off = modes["mode"], modes["cut_off"]
    failed = mode != SUCCEEDED
    n_failed = jnp.maximum(jnp.sum(failed), 1)
    out = dict(failed=jnp.mean(failed.astype(jnp.float32)))
    for code, key in enumerate(MODE_KEYS):
        out[key] = jnp.sum(mode == code) / n_failed
    out["cut_off"] = jnp.sum(cut_off) / n_failed
    return out


def bump_margins(env, states, actions: jax.Array, q: jax.Array, active: jax.Array) -> dict:
    """Per step, whether the greedy move bumped into a wall and by how much its Q won.

    states: EnvState [T, N] (before each step); actions: int32[T, N]; q: f32[T, N, A] (the Q values
    the action was chosen from); active: bool[T, N] (the episode had not ended before the step).
    Returns wall_bump: bool[T, N] (active, and the move is into a map or fixed wall, not a closed
    door), margin: f32[T, N] (q of the action minus the best q among moves that are not blocked;
    NaN where no move is open) and value: f32[T, N] (max q).
    """
    def blocked_moves(state):
        """bool[A] (the move does not happen), bool[A] (into a closed door)."""
        return jax.vmap(lambda pos: blocked_or_door(env, state, pos))(state.agent + env._deltas)

    blocked, door = jax.vmap(jax.vmap(blocked_moves))(states)               # bool[T, N, A]
    take = lambda x: jnp.take_along_axis(x, actions[..., None], -1)[..., 0]
    wall_bump = active & take(blocked) & ~take(door)
    best_open = jnp.max(jnp.where(blocked, -jnp.inf, q), axis=-1)
    margin = jnp.where(jnp.isfinite(best_open), take(q) - best_open, jnp.nan)
    return dict(wall_bump=wall_bump, margin=margin, value=jnp.max(q, axis=-1))


def summarize_bumps(bumps: dict, active: jax.Array) -> dict:
    """`wall_bump_steps`: the fraction of greedy steps (active) that bumped into a wall; over those
    steps, the median `bump_margin` (how much the bump's Q beat the best open move) and the median
    `bump_value` (max Q). NaN medians when no step bumped."""
    wb = bumps["wall_bump"]
    med = lambda x: jnp.nanmedian(jnp.where(wb, x, jnp.nan))
    return dict(wall_bump_steps=jnp.sum(wb) / jnp.maximum(jnp.sum(active), 1),
                bump_margin=med(bumps["margin"]), bump_value=med(bumps["value"]))
