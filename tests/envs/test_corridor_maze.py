"""Corridor maze: map, fixed walls with reachability, dynamic doors, rendering (docs/reference.md §1)."""
from collections import deque

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.maps import CORRIDOR_MAZE
from envs.render import ascii_view, rgb_array, write_gif

N, E, S, W = 0, 1, 2, 3

EXPECTED_OPEN = """\
-------------
|<..........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|...........|
|.|.|.|.|.|.|
|..........>|
-------------"""


@pytest.fixture(scope="module")
def env():
    return envs.make("corridor_maze")


def py_reachable(blocked, src, dst):
    H, W = blocked.shape
    seen = {tuple(src)}
    q = deque([tuple(src)])
    while q:
        r, c = q.popleft()
        if (r, c) == tuple(dst):
            return True
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < H and 0 <= n[1] < W and not blocked[n] and n not in seen:
                seen.add(n)
                q.append(n)
    return False


def test_map_cell_by_cell():
    lay = CORRIDOR_MAZE.layout
    assert lay.shape == (11, 13)
    cands = CORRIDOR_MAZE.candidates
    assert len(cands) == 49
    within = [(r, c) for r, c in cands if r % 2 == 1]
    between = [(r, c) for r, c in cands if r % 2 == 0]
    assert len(within) == 25 and len(between) == 24
    for r in range(11):
        for c in range(13):
            if r in (0, 10) or c in (0, 12):
                assert lay[r, c] == "|"
            elif r % 2 == 1 and c % 2 == 1:
                assert lay[r, c] == "."        # open cells: 5x6 grid at odd (row, col)
            elif r % 2 == 0 and c % 2 == 0:
                assert lay[r, c] == "|"        # permanent pillars
            else:
                assert lay[r, c] == "d"


def test_gymnax_and_open_observation(env):
    env, params = env
    e2, p2 = gymnax.make("CorridorMazeDynamic-v0")
    assert p2.fixed_walls == 10 and p2.dynamic_doors == 5 and p2.p_change == 0.05
    state = env.make_state(start=(1, 1), goal=(9, 11))
    assert ascii_view(np.asarray(env.get_obs(state)), (11, 13)).replace("@", "<") == EXPECTED_OPEN
    obs = env.get_obs(state)
    assert obs.shape == (143,) and obs.dtype == jnp.uint8


def test_fixed_walls_and_doors_glyphs(env):
    env, params = env
    state = env.make_state(start=(1, 1), goal=(9, 11), fixed_walls=[(1, 2)], closed_doors=[(2, 1)])
    rows = ascii_view(np.asarray(env.get_obs(state)), (11, 13)).splitlines()
    assert rows[1][:4] == "|@|."    # fixed wall '|'
    assert rows[2][:3] == "|#|"     # closed door '#'
    p0 = params.replace(p_change=0.0)
    _, s, r, *_ = env.step_env(jax.random.key(0), state, E, p0)
    assert tuple(np.asarray(s.agent)) == (1, 1) and float(r) == pytest.approx(-0.01)
    _, s, r, *_ = env.step_env(jax.random.key(0), state, S, p0)
    assert tuple(np.asarray(s.agent)) == (1, 1) and float(r) == pytest.approx(-0.01)
    state = env.make_state(start=(3, 3), goal=(9, 11))
    for a, expect in ((N, (2, 3)), (E, (3, 4)), (S, (4, 3)), (W, (3, 2))):
        _, s, r, *_ = env.step_env(jax.random.key(0), state, a, p0)
        assert tuple(np.asarray(s.agent)) == expect and float(r) == 0.0
    state = env.make_state(start=(2, 3), goal=(9, 11))
    for a in (E, W):  # pillars either side of a between-rows candidate
        _, s, r, *_ = env.step_env(jax.random.key(0), state, a, p0)
        assert tuple(np.asarray(s.agent)) == (2, 3) and float(r) == pytest.approx(-0.01)


def test_reset_fixed_walls_count_and_reachability(env):
    env, params = env
    n = 3000
    _, st = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.key(11), n), params)
    fixed = np.asarray(st.fixed_walls)
    closed = np.asarray(st.closed_doors)
    counts = fixed.sum(1)
    assert counts.max() == 10 and (counts == 10).mean() > 0.99  # fewer only after 10 failed tries
    assert (closed.sum(1) == 5).all()
    assert not (fixed & closed).any()
    cands = CORRIDOR_MAZE.candidates
    for i in range(300):  # plain-Python check: start and goal connected through fixed walls only
        blocked = CORRIDOR_MAZE.wall.copy()
        for (r, c) in cands[fixed[i]]:
            blocked[r, c] = True
        assert py_reachable(blocked, np.asarray(st.start[i]), np.asarray(st.goal[i]))
    on = lambda pos: (cands[None] == np.asarray(pos)[:, None]).all(-1)
    for field in ("start", "goal"):
        assert not (on(getattr(st, field)) & (fixed | closed)).any()


def test_doors_can_cut_the_goal_off_and_resample(env):
    env, params = env
    n = 2000
    _, st = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.key(12), n), params)
    d = np.asarray(jax.jit(jax.vmap(env.optimal_path_length))(st))
    # dynamic doors have no path check: some episodes start with the goal cut off
    assert (d == -1).any() and (d > 0).mean() > 0.5


def test_render_rgb_and_gif(env, tmp_path):
    env, params = env
    obs, st = env.reset(jax.random.key(0), params)
    img = rgb_array(np.asarray(obs), (11, 13), cell=8)
    assert img.shape == (88, 104, 3) and img.dtype == np.uint8
    assert not (img == np.array([255, 0, 255])).all(-1).any()  # every token has a colour
    path = write_gif([img, img], str(tmp_path / "ep.gif"))
    assert (tmp_path / "ep.gif").stat().st_size > 0


def test_invalid_params():
    with pytest.raises(ValueError, match="fixed_walls"):
        envs.CorridorMazeParams(fixed_walls=50)
    with pytest.raises(ValueError, match="dynamic_doors"):
        envs.CorridorMazeParams(fixed_walls=10, dynamic_doors=40)
    with pytest.raises(ValueError, match="p_change"):
        envs.CorridorMazeParams(p_change=-0.1)
    with pytest.raises(ValueError, match="blocked_reward.*<= 0"):
        envs.CorridorMazeParams(blocked_reward=0.01)


def test_blocked_reward_option_fixed_wall_and_door(env):
    env, params = env
    p = params.replace(p_change=0.0, blocked_reward=-0.1)
    state = env.make_state(start=(1, 1), goal=(9, 11), fixed_walls=[(1, 2)], closed_doors=[(2, 1)])
    for a in (E, S, N, W):  # fixed wall, closed door, border, border
        _, s, r, *_ = env.step_env(jax.random.key(0), state, a, p)
        assert tuple(np.asarray(s.agent)) == (1, 1) and float(r) == pytest.approx(-0.1)


def test_jit_vmap_1024_envs_100_steps_invariants():
    """Both mazes, 1024 envs, 100 steps with random actions and auto-reset: invariants hold."""
    for name in envs.ENV_NAMES:
        env, params = envs.make(name)
        n = 1024
        _, st = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.key(0), n), params)

        def body(st, key):
            ka, ks = jax.random.split(key)
            a = jax.random.randint(ka, (n,), 0, 4)
            obs, st2, r, term, trunc, info = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(ks, n), st, a, params)
            return st2, (obs, r, term, trunc, info["final_observation"], st2)

        _, (obs, r, term, trunc, final, traj) = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(1), 100)))(st)
        r, term, obs, final = map(np.asarray, (r, term, obs, final))
        assert np.isin(r, np.float32([-0.01, 0.0, 1.0])).all()
        np.testing.assert_array_equal(r == 1.0, term)
        assert (obs == ord("@")).sum(-1).min() == 1 and (obs == ord("@")).sum(-1).max() == 1
        assert ((final == ord("@")).sum(-1) == 1).all()
        assert term.any()
        # agent never on a wall / fixed wall / closed door
        blocked = jax.vmap(jax.vmap(env.blocked_grid))(traj)
        ag = np.asarray(traj.agent)
        b = np.asarray(blocked)
        T, B = ag.shape[:2]
        assert not b[np.arange(T)[:, None], np.arange(B)[None], ag[..., 0], ag[..., 1]].any()


def test_fixed_goal_keeps_walls_random_and_reachable():
    """goal=(9, 11): every reset puts the goal there; the start covers the other walkable cells;
    fixed walls are still drawn per episode and never cut the start off the goal."""
    env, params = envs.make("corridor_maze", goal=(9, 11))
    n = 4000
    _, st = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.key(12), n), params)
    start, goal, fixed = np.asarray(st.start), np.asarray(st.goal), np.asarray(st.fixed_walls)
    assert (goal == [9, 11]).all() and not (start == goal).all(-1).any()
    walkable = CORRIDOR_MAZE.layout.reshape(-1) != "|"
    assert (np.bincount(start[:, 0] * 13 + start[:, 1], minlength=143)[walkable] > 0).sum() == walkable.sum() - 1
    assert len({tuple(f) for f in fixed[:100].astype(int)}) == 100   # layouts still differ
    cands = CORRIDOR_MAZE.candidates
    for i in range(200):
        blocked = CORRIDOR_MAZE.wall.copy()
        for (r, c) in cands[fixed[i]]:
            blocked[r, c] = True
        assert py_reachable(blocked, start[i], goal[i])
    with pytest.raises(ValueError, match="walkable"):
        envs.make("corridor_maze", goal=(2, 2))  # a pillar
