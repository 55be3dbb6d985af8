"""Failure modes of greedy episodes (hrm_jax.analysis.failures) on hand-made four-rooms episodes."""
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.policies import shortest_path_policy
from hrm_jax.analysis import failures as F

N, E, S, W = 0, 1, 2, 3


class Scripted(NamedTuple):
    maze: Any          # the four-rooms env
    params: Any        # its params, p_change 0
    play: Callable     # make_player's jitted player


@pytest.fixture(scope="module")
def env():
    maze, params = envs.make("four_rooms")
    params = params.replace(p_change=0.0)   # doors stay as built: each episode is fully scripted
    assert int(params.max_steps_in_episode) == T   # the action tables below are one episode long
    return Scripted(maze, params, make_player(maze, params))


def make_player(env, params):
    """A jitted `play(state, table, shortest)`: one episode from `state` to the step limit, taking
    action table[t] at step t (or the shortest-path move where `shortest`), frozen after it ends
    (no auto-reset), recorded as `acting.greedy_rollout(with_trace=True)` does: the state before
    each step [T, 1], the action [T, 1], success [1]. One program for every scripted episode."""
    T = int(params.max_steps_in_episode)

    @jax.jit
    def play(state, table, shortest):
        def step(carry, t):
            state, done, success = carry
            action = jnp.where(shortest, shortest_path_policy(env, state), table[t]).astype(jnp.int32)
            _, nxt, _, term, _ = env.step_env(jax.random.key(0), state, action, params)
            live = ~done
            new = jax.tree.map(lambda a, b: jnp.where(live, a, b), nxt, state)
            return (new, done | term, success | (live & term)), (state, action)

        (_, _, success), (states, actions) = jax.lax.scan(step, (state, False, False), jnp.arange(T))
        return jax.tree.map(lambda x: x[:, None], states), actions[:, None], success[None]

    return play


T = 80
t = jnp.arange(T)
NORTH, SOUTH = jnp.full(T, N), jnp.full(T, S)
BACK_AND_FORTH = jnp.where(t % 2 == 0, N, S)
SQUARE = jnp.array([N, E, S, W])[t % 4]


def play(env, state, table=NORTH, shortest=False):
    return env.play(state, table, shortest)


def classify(env, state, table=NORTH, shortest=False, tail=F.TAIL):
    states, actions, success = play(env, state, table, shortest)
    out = F.failure_modes(env.maze, states, actions, success, tail)
    return int(out["mode"][0]), bool(out["cut_off"][0])


def test_distinct_cells():
    assert int(F.distinct_cells(jnp.array([[1, 1]] * 5))) == 1
    assert int(F.distinct_cells(jnp.array([[1, 1], [1, 2], [1, 1], [1, 2]]))) == 2
    assert int(F.distinct_cells(jnp.array([[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]))) == 4
    assert int(F.distinct_cells(jnp.array([[1, 2], [2, 1]]))) == 2   # same coordinates swapped: two cells


def test_pushing_north_in_a_corner_is_stuck_at_a_wall(env):
    state = env.maze.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, state, NORTH) == (F.STUCK_AT_WALL, False)


def test_pushing_into_a_closed_door_is_waiting(env):
    # (6, 2) is the door below the top-left room; the agent stands right above it
    state = env.maze.make_state(start=(5, 2), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, state, SOUTH) == (F.WAITING_AT_DOOR, False)


def test_back_and_forth_is_oscillating_and_a_loop_is_wandering(env):
    state = env.maze.make_state(start=(2, 2), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, state, BACK_AND_FORTH) == (F.OSCILLATING, False)
    assert classify(env, state, SQUARE) == (F.WANDERING, False)
    # over a 2-step tail the square walk shows only two cells
    assert classify(env, state, SQUARE, tail=2)[0] == F.OSCILLATING


def test_goal_cut_off_by_closed_doors(env):
    # both doors of the top-left room closed: the goal in the bottom-right room is unreachable
    state = env.maze.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(3, 6), (6, 2)])
    assert int(env.maze.optimal_path_length(state)) == -1
    assert classify(env, state, NORTH) == (F.STUCK_AT_WALL, True)


def test_a_success_has_no_failure_mode(env):
    state = env.maze.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, state, shortest=True) == (F.SUCCEEDED, False)


def test_batch_and_summary(env):
    """Several episodes at once (as a rollout's [T, N] records), then the fractions."""
    starts = [(1, 1), (5, 2), (2, 2), (1, 1)]
    tables = [NORTH, SOUTH, BACK_AND_FORTH, NORTH]
    runs = [play(env, env.maze.make_state(start=p, goal=(11, 11), closed_doors=[(6, 2)]), table, shortest=i == 3)
            for i, (p, table) in enumerate(zip(starts, tables))]
    states = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *[r[0] for r in runs])
    actions = jnp.concatenate([r[1] for r in runs], axis=1)
    success = jnp.concatenate([r[2] for r in runs])
    modes = F.failure_modes(env.maze, states, actions, success)
    np.testing.assert_array_equal(modes["mode"], [F.STUCK_AT_WALL, F.WAITING_AT_DOOR, F.OSCILLATING, F.SUCCEEDED])
    summary = {k: float(v) for k, v in F.summarize_failures(modes).items()}
    assert summary["failed"] == pytest.approx(0.75)
    assert [summary[k] for k in F.MODE_KEYS] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert summary["cut_off"] == 0.0
    # jit and vmap over a leading seed axis give the same
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), (states, actions, success))
    both = jax.jit(jax.vmap(lambda s, a, ok: F.failure_modes(env.maze, s, a, ok)))(*stacked)
    np.testing.assert_array_equal(both["mode"], np.stack([modes["mode"]] * 2))


def test_tail_must_fit_the_episode(env):
    states, actions, success = play(env, env.maze.make_state(start=(1, 1), goal=(11, 11)))
    with pytest.raises(ValueError, match="tail=81 must be between 1 and the episode limit 80"):
        F.failure_modes(env.maze, states, actions, success, tail=81)


def bump_stats(env, start, table, q_row, active_steps=T):
    """Q margins of a scripted episode whose Q values are q_row at every step."""
    states, actions, _ = play(env, env.maze.make_state(start=start, goal=(11, 11), closed_doors=[(6, 2)]), table)
    q = jnp.broadcast_to(jnp.asarray(q_row, jnp.float32), (T, 1, 4))
    active = (jnp.arange(T) < active_steps)[:, None]
    bumps = F.bump_margins(env.maze, states, actions, q, active)
    return bumps, {k: float(v) for k, v in F.summarize_bumps(bumps, active).items()}


def test_bump_margin_is_the_bumps_q_over_the_best_open_move(env):
    # in the corner (1, 1) north and west are walls; east and south are open
    bumps, summary = bump_stats(env, (1, 1), NORTH, [0.5, 0.45, 0.3, 0.6])
    assert bool(jnp.all(bumps["wall_bump"]))
    np.testing.assert_allclose(bumps["margin"], 0.05, atol=1e-6)   # 0.5 - max(east 0.45, south 0.3); west is a wall
    np.testing.assert_allclose(bumps["value"], 0.6)
    assert summary == pytest.approx(dict(wall_bump_steps=1.0, bump_margin=0.05, bump_value=0.6))


def test_only_greedy_steps_into_a_wall_count(env):
    # back and forth from the corner: only the first move (north at (1, 1)) bumps; steps 40+ are
    # after the episode's end (inactive)
    bumps, summary = bump_stats(env, (1, 1), BACK_AND_FORTH, [0.2, 0.1, 0.3, 0.0], active_steps=40)
    np.testing.assert_array_equal(np.flatnonzero(bumps["wall_bump"][:, 0]), [0])
    assert summary["wall_bump_steps"] == pytest.approx(1 / 40)
    assert summary["bump_margin"] == pytest.approx(0.2 - 0.3)   # a bump need not be the argmax here
    # pushing into the closed door (6, 2) is not a wall bump, so there is no margin to report
    bumps, summary = bump_stats(env, (5, 2), SOUTH, [0.1, 0.2, 0.3, 0.4])
    assert not bool(jnp.any(bumps["wall_bump"])) and summary["wall_bump_steps"] == 0.0
    assert np.isnan(summary["bump_margin"]) and np.isnan(summary["bump_value"])
