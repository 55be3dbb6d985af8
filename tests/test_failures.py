"""Failure modes of greedy episodes (hrm_jax.failures) on hand-made four-rooms episodes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.policies import shortest_path_policy
from hrm_jax import failures as F

N, E, S, W = 0, 1, 2, 3


@pytest.fixture(scope="module")
def env():
    env, params = envs.make("four_rooms")
    return env, params.replace(p_change=0.0)   # doors stay as built: each episode is fully scripted


def play(env, params, state, policy):
    """Run one episode from `state` to the step limit with `policy(t, state) -> action`, frozen after it
    ends (no auto-reset), recording as `agent.greedy_rollout(with_trace=True)` does: the state before
    each step [T, 1], the action [T, 1], success [1]."""
    T = int(params.max_steps_in_episode)

    def step(carry, t):
        state, done, success = carry
        action = jnp.int32(policy(t, state))
        _, nxt, _, term, _ = env.step_env(jax.random.key(0), state, action, params)
        live = ~done
        new = jax.tree.map(lambda a, b: jnp.where(live, a, b), nxt, state)
        return (new, done | term, success | (live & term)), (state, action)

    (_, _, success), (states, actions) = jax.lax.scan(step, (state, False, False), jnp.arange(T))
    return jax.tree.map(lambda x: x[:, None], states), actions[:, None], success[None]


def classify(env, params, state, policy, tail=F.TAIL):
    states, actions, success = play(env, params, state, policy)
    out = F.failure_modes(env, states, actions, success, tail)
    return int(out["mode"][0]), bool(out["cut_off"][0])


def test_distinct_cells():
    assert int(F.distinct_cells(jnp.array([[1, 1]] * 5))) == 1
    assert int(F.distinct_cells(jnp.array([[1, 1], [1, 2], [1, 1], [1, 2]]))) == 2
    assert int(F.distinct_cells(jnp.array([[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]))) == 4
    assert int(F.distinct_cells(jnp.array([[1, 2], [2, 1]]))) == 2   # same coordinates swapped: two cells


def test_pushing_north_in_a_corner_is_stuck_at_a_wall(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, params, state, lambda t, s: N) == (F.STUCK_AT_WALL, False)


def test_pushing_into_a_closed_door_is_waiting(env):
    env, params = env
    # (6, 2) is the door below the top-left room; the agent stands right above it
    state = env.make_state(start=(5, 2), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, params, state, lambda t, s: S) == (F.WAITING_AT_DOOR, False)


def test_back_and_forth_is_oscillating_and_a_loop_is_wandering(env):
    env, params = env
    state = env.make_state(start=(2, 2), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, params, state, lambda t, s: jnp.where(t % 2 == 0, N, S)) == (F.OSCILLATING, False)
    square = jnp.array([N, E, S, W])
    assert classify(env, params, state, lambda t, s: square[t % 4]) == (F.WANDERING, False)
    # over a 2-step tail the square walk shows only two cells
    assert classify(env, params, state, lambda t, s: square[t % 4], tail=2)[0] == F.OSCILLATING


def test_goal_cut_off_by_closed_doors(env):
    env, params = env
    # both doors of the top-left room closed: the goal in the bottom-right room is unreachable
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(3, 6), (6, 2)])
    assert int(env.optimal_path_length(state)) == -1
    assert classify(env, params, state, lambda t, s: N) == (F.STUCK_AT_WALL, True)


def test_a_success_has_no_failure_mode(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(6, 2)])
    assert classify(env, params, state, lambda t, s: shortest_path_policy(env, s)) == (F.SUCCEEDED, False)


def test_batch_and_summary(env):
    """Several episodes at once (as a rollout's [T, N] records), then the fractions."""
    env, params = env
    starts = [(1, 1), (5, 2), (2, 2), (1, 1)]
    policies = [lambda t, s: N, lambda t, s: S, lambda t, s: jnp.where(t % 2 == 0, N, S),
                lambda t, s: shortest_path_policy(env, s)]
    runs = [play(env, params, env.make_state(start=p, goal=(11, 11), closed_doors=[(6, 2)]), pol)
            for p, pol in zip(starts, policies)]
    states = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *[r[0] for r in runs])
    actions = jnp.concatenate([r[1] for r in runs], axis=1)
    success = jnp.concatenate([r[2] for r in runs])
    modes = F.failure_modes(env, states, actions, success)
    np.testing.assert_array_equal(modes["mode"], [F.STUCK_AT_WALL, F.WAITING_AT_DOOR, F.OSCILLATING, F.SUCCEEDED])
    summary = {k: float(v) for k, v in F.summarize_failures(modes).items()}
    assert summary["failed"] == pytest.approx(0.75)
    assert [summary[k] for k in F.MODE_KEYS] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert summary["cut_off"] == 0.0
    # jit and vmap over a leading seed axis give the same
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), (states, actions, success))
    both = jax.jit(jax.vmap(lambda s, a, ok: F.failure_modes(env, s, a, ok)))(*stacked)
    np.testing.assert_array_equal(both["mode"], np.stack([modes["mode"]] * 2))


def test_tail_must_fit_the_episode(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(11, 11))
    states, actions, success = play(env, params, state, lambda t, s: N)
    with pytest.raises(ValueError, match="tail=81 must be between 1 and the episode limit 80"):
        F.failure_modes(env, states, actions, success, tail=81)
