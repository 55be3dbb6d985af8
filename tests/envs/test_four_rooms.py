"""Four-rooms: map, movement, rewards, doors, truncation, auto-reset (docs/reference.md §1)."""
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.maps import FOUR_ROOMS
from envs.render import ascii_view

N, E, S, W = 0, 1, 2, 3

# The MiniHack render of docs/reference.md §1 (start (1,1), goal (11,11), doorways open), interior only.
EXPECTED_RESET = """\
@....|.....
.....|.....
...........
.....|.....
.....|.....
-.---|.....
.....|--.--
.....|.....
.....|.....
...........
.....|....>"""


@pytest.fixture(scope="module")
def env():
    return envs.make("four_rooms")


def view(env, obs):
    return ascii_view(np.asarray(obs), env.maze.obs_shape)


def test_gymnax_registration():
    env, params = gymnax.make("FourRoomsDynamic-v0")
    assert isinstance(env, envs.FourRoomsDynamic)
    assert params.closed_doors == 1 and params.p_change == 0.05 and params.max_steps_in_episode == 80
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (121,) and obs.dtype == jnp.uint8


def test_map_cell_by_cell(env):
    env, params = env
    layout = FOUR_ROOMS.layout
    assert layout.shape == (13, 13)
    assert sorted(map(tuple, FOUR_ROOMS.candidates.tolist())) == [(3, 6), (6, 2), (7, 9), (10, 6)]
    assert (layout == "|").sum() == 13 * 13 - 104 - 0  # 104 walkable cells
    assert len(FOUR_ROOMS.floor) == 104
    state = env.make_state(start=(1, 1), goal=(11, 11))
    assert view(env, env.get_obs(state)) == EXPECTED_RESET


def test_closed_door_drawn_and_start_marker(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(3, 6)])
    text = view(env, env.get_obs(state)).splitlines()
    assert text[2] == ".....|....."  # (3,6) closed: drawn as '|'
    obs, state2, r, term, trunc, info = env.step(jax.random.key(0), state, E, params.replace(p_change=0.0))
    text = view(env, obs).splitlines()
    assert text[0] == "<@...|....."  # '<' stays on the start cell


@pytest.mark.parametrize("pos,action,blocked", [
    ((1, 1), N, True), ((1, 1), W, True), ((1, 5), E, True), ((5, 1), S, True), ((6, 2), S, False),
    ((5, 2), S, False), ((5, 1), E, False), ((11, 11), S, True), ((11, 11), E, True), ((7, 9), N, False),
    ((8, 8), N, True), ((3, 5), E, False), ((3, 7), W, False),
])
def test_movement_and_walls(env, pos, action, blocked):
    env, params = env
    params = params.replace(p_change=0.0)
    state = env.make_state(start=pos, goal=(2, 2) if pos != (2, 2) else (9, 9), closed_doors=[])
    _, s2, r, term, _ = env.step_env(jax.random.key(0), state, action, params)
    delta = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])[action]
    expected = np.array(pos) if blocked else np.array(pos) + delta
    np.testing.assert_array_equal(s2.agent, expected)
    assert float(r) == pytest.approx(-0.01 if blocked else 0.0)
    assert int(s2.time) == 1


@pytest.mark.parametrize("door,pos,action", [((3, 6), (3, 5), E), ((3, 6), (3, 7), W), ((6, 2), (5, 2), S),
                                             ((6, 2), (7, 2), N), ((7, 9), (8, 9), N), ((10, 6), (10, 7), W)])
def test_closed_door_blocks(env, door, pos, action):
    env, params = env
    params = params.replace(p_change=0.0)
    state = env.make_state(start=pos, goal=(1, 1), closed_doors=[door])
    _, s2, r, *_ = env.step_env(jax.random.key(0), state, action, params)
    np.testing.assert_array_equal(s2.agent, pos)
    assert float(r) == pytest.approx(-0.01)
    np.testing.assert_array_equal(s2.closed_doors, state.closed_doors)  # p=0: doors stay


def test_blocked_reward_option(env):
    """--blocked-reward: every bump (wall, closed door, border) pays it; open moves and the goal don't."""
    env, params = env
    p = params.replace(p_change=0.0, blocked_reward=-0.1)
    assert params.blocked_reward == pytest.approx(-0.01)  # the authors' value stays the default
    for pos, action, door in (((1, 1), N, []), ((1, 5), E, []), ((3, 5), E, [(3, 6)])):
        state = env.make_state(start=pos, goal=(9, 9), closed_doors=door)
        _, s2, r, *_ = env.step_env(jax.random.key(0), state, action, p)
        np.testing.assert_array_equal(s2.agent, pos)
        assert float(r) == pytest.approx(-0.1)
    state = env.make_state(start=(1, 1), goal=(1, 3), closed_doors=[])
    _, s2, r, *_ = env.step_env(jax.random.key(0), state, E, p)
    assert float(r) == 0.0 and tuple(np.asarray(s2.agent)) == (1, 2)
    _, s3, r, term, _ = env.step_env(jax.random.key(0), s2, E, p)
    assert float(r) == 1.0 and bool(term)
    # a traced penalty (a pytree leaf) changes the reward without a new compile
    step = jax.jit(env.step_env)
    bump = env.make_state(start=(1, 1), goal=(9, 9), closed_doors=[])
    rs = [float(step(jax.random.key(0), bump, N, params.replace(p_change=0.0, blocked_reward=v))[2])
          for v in (-0.01, -0.5)]
    assert rs == pytest.approx([-0.01, -0.5]) and step._cache_size() == 1


def test_goal_reward_termination_and_autoreset(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(1, 2))
    obs, s2, r, term, trunc, info = env.step(jax.random.key(3), state, E, params)
    assert float(r) == 1.0 and bool(term) and not bool(trunc)
    final = view(env, info["final_observation"]).splitlines()
    assert final[0].startswith("<@")  # agent on the goal in the final observation
    assert int(s2.time) == 0  # auto-reset
    assert int((np.asarray(obs) == ord("@")).sum()) == 1 and int((np.asarray(obs) == ord(">")).sum()) == 1


def test_truncation_at_80_steps_blocked_moves_count(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(11, 11))
    key = jax.random.key(0)
    step = jax.jit(env.step)
    for t in range(1, 81):
        key, k = jax.random.split(key)
        obs, state, r, term, trunc, info = step(k, state, N, params)  # always into the wall
        assert float(r) == pytest.approx(-0.01)
        assert bool(trunc) == (t == 80) and not bool(term)
    assert int(state.time) == 0  # reset after truncation


def test_door_never_on_agent_start_goal_and_count(env):
    env, params = env
    params = params.replace(p_change=0.5)
    n = 512
    keys = jax.random.split(jax.random.key(1), n)
    obs, state = jax.vmap(env.reset, (0, None))(keys, params)

    def body(state, key):
        ka, ks = jax.random.split(key)
        a = jax.random.randint(ka, (n,), 0, 4)
        obs, state, r, term, trunc, _ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(ks, n), state, a, params)
        return state, state

    _, traj = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, 60)))(state, jax.random.key(2))
    cand = np.asarray(FOUR_ROOMS.candidates)
    closed = np.asarray(traj.closed_doors)  # [T, n, 4]
    assert (closed.sum(-1) == 1).all()
    for field in ("agent", "start", "goal"):
        pos = np.asarray(getattr(traj, field))  # [T, n, 2]
        on = (pos[:, :, None, :] == cand[None, None]).all(-1)  # [T, n, 4]
        assert not (on & closed).any(), field


def test_joint_resampling_rate_matches_p(env):
    """Agent bumps a wall in a corner forever; start/goal off the doorways, so all 4 doors are
    allowed and a joint resample changes the closed door with probability 3/4."""
    env, params = env
    p = 0.2
    params = params.replace(p_change=p, max_steps_in_episode=1000)
    n, T = 2048, 50
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(3, 6)])
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), state)

    def body(state, key):
        _, s2, *_ = jax.vmap(env.step_env, (0, 0, None, None))(jax.random.split(key, n), state, N, params)
        changed = jnp.any(s2.closed_doors != state.closed_doors, -1)
        return s2, changed

    _, changed = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(7), T)))(state)
    rate = float(np.asarray(changed).mean())
    expected = p * 3 / 4
    sigma = np.sqrt(expected * (1 - expected) / (n * T))
    assert abs(rate - expected) < 5 * sigma, (rate, expected, sigma)


def test_independent_dynamics_toggle_each_door(env):
    env, params = env
    p = 0.1
    params = params.replace(p_change=p, door_dynamics="independent", max_steps_in_episode=1000)
    n, T = 2048, 40
    state = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(3, 6)])
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), state)

    def body(state, key):
        _, s2, *_ = jax.vmap(env.step_env, (0, 0, None, None))(jax.random.split(key, n), state, N, params)
        return s2, (s2.closed_doors != state.closed_doors)

    _, flips = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(8), T)))(state)
    rate = float(np.asarray(flips).mean())
    sigma = np.sqrt(p * (1 - p) / flips.size)
    assert abs(rate - p) < 5 * sigma


def test_invalid_params_and_actions(env):
    env, params = env
    with pytest.raises(ValueError, match="closed_doors"):
        envs.FourRoomsParams(closed_doors=5)
    with pytest.raises(ValueError, match="p_change"):
        envs.FourRoomsParams(p_change=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        envs.FourRoomsParams(max_steps_in_episode=0)
    with pytest.raises(ValueError, match="door_dynamics"):
        envs.FourRoomsParams(door_dynamics="sometimes")
    for bad in (0.5, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match="blocked_reward.*<= 0"):
            envs.FourRoomsParams(blocked_reward=bad)
    with pytest.raises(ValueError, match="unknown env"):
        envs.make("five_rooms")
    obs, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match="out of range"):
        env.step(jax.random.key(0), state, 4, params)
    with pytest.raises(ValueError, match="out of range"):
        env.step(jax.random.key(0), state, -1, params)
    # inside jit an invalid action is a flagged no-op
    _, s2, r, _, info = jax.jit(env.step_env)(jax.random.key(0), state, jnp.int32(7), params)
    assert bool(info["invalid_action"]) and float(r) == 0.0
    np.testing.assert_array_equal(s2.agent, state.agent)


def test_reset_distribution_start_goal_distinct_and_uniform(env):
    env, params = env
    n = 20000
    _, st = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.key(5), n), params)
    start, goal = np.asarray(st.start), np.asarray(st.goal)
    assert not (start == goal).all(-1).any()
    assert not FOUR_ROOMS.wall[start[:, 0], start[:, 1]].any()
    counts = np.bincount(start[:, 0] * 13 + start[:, 1], minlength=169)[FOUR_ROOMS.layout.reshape(-1) != "|"]
    assert len(counts) == 104 and counts.min() > 0
    # chi-square against uniform over 104 cells (df 103; 99.99th percentile ~ 170)
    expected = n / 104
    assert ((counts - expected) ** 2 / expected).sum() < 170


def test_fixed_goal_start_uniform_over_the_other_cells(env):
    env, _ = env
    params = envs.make("four_rooms", goal=(11, 11))[1]
    n = 20000
    _, st = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.key(6), n), params)
    start, goal = np.asarray(st.start), np.asarray(st.goal)
    assert (goal == [11, 11]).all()
    assert not (start == goal).all(-1).any()
    counts = np.bincount(start[:, 0] * 13 + start[:, 1], minlength=169)[FOUR_ROOMS.layout.reshape(-1) != "|"]
    assert (counts > 0).sum() == 103             # every walkable cell but the goal
    expected = n / 103
    assert ((counts[counts > 0] - expected) ** 2 / expected).sum() < 170
    # auto-reset after reaching the goal keeps it fixed
    s = env.make_state(start=(11, 10), goal=(11, 11))
    _, s2, r, term, _, _ = env.step(jax.random.key(0), s, E, params)
    assert float(r) == 1.0 and bool(term) and tuple(np.asarray(s2.goal)) == (11, 11)
    assert tuple(np.asarray(s2.agent)) != (11, 11)
    # the batched step (its own vmap rule: resets only the finished envs) keeps it too
    batch = jax.tree.map(lambda *x: jnp.stack(x), *[s] * 8)
    _, s3, r3, term3, _, _ = jax.vmap(env.step, (0, 0, 0, None))(
        jax.random.split(jax.random.key(1), 8), batch, jnp.full(8, E), params)
    assert bool(jnp.all(term3)) and (np.asarray(s3.goal) == [11, 11]).all()
    assert len({tuple(a) for a in np.asarray(s3.start)}) > 1        # fresh uniform starts


@pytest.mark.parametrize("goal", [(6, 6), (0, 3), (11, 12), (3,), "a"])
def test_fixed_goal_must_be_walkable(goal):
    with pytest.raises(ValueError, match="must be None or a walkable"):
        envs.make("four_rooms", goal=goal)
