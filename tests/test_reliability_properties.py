"""Property-based tests (hypothesis) for issue #7 (docs/reliability.md).

Environments: random explicit layouts (`make_state`), door schedules (dynamics, p_change, door
counts, keys) and action sequences, stepped with the gymnax `step` (auto-reset) and `step_env`:
the agent is never on a wall or closed door, rewards are in {-0.01, 0, 1}, terminated iff the
agent is on the goal, truncation exactly at the step limit, door invariants, BFS optimality.

Configs: random values (valid and invalid) for a few fields of a very small preset: either the
edge checks reject them with a one-line ConfigError / ValueError, or the trainer compiles and runs
one chunk with finite outputs. Never an exception from inside JAX.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import envs
from envs import bfs
from envs.maps import ACTION_DELTAS

T = 40  # actions per rollout (fixed: one compilation per static door configuration)
REWARDS = np.float32([-0.01, 0.0, 1.0])
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# static door configurations (each compiles once): (env, closed/dynamic doors, fixed walls)
STATIC = [("four_rooms", 0, 0), ("four_rooms", 1, 0), ("four_rooms", 2, 0), ("four_rooms", 4, 0),
          ("corridor_maze", 5, 10), ("corridor_maze", 5, 44), ("corridor_maze", 0, 0)]
_ENVS = {}


def make(name: str, k: int, fixed: int, dynamics: str, p: float, max_steps: int):
    kw = dict(max_steps_in_episode=max_steps, p_change=p, door_dynamics=dynamics)
    kw.update(closed_doors=k) if name == "four_rooms" else kw.update(dynamic_doors=k, fixed_walls=fixed)
    if name not in _ENVS:
        _ENVS[name] = envs.make(name)[0]
    return _ENVS[name], envs.make(name, **kw)[1]


@st.composite
def scenarios(draw):
    name, k, n_fixed = draw(st.sampled_from(STATIC))
    dynamics = draw(st.sampled_from(["joint", "independent"]))
    p = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    max_steps = draw(st.integers(1, 15))
    env, params = make(name, k, n_fixed, dynamics, p, max_steps)
    floor = [tuple(map(int, c)) for c in env.maze.floor]
    cands = [tuple(map(int, c)) for c in env.maze.candidates]
    start = draw(st.sampled_from(floor))
    goal = draw(st.sampled_from([c for c in floor if c != start]))
    free = [c for c in cands if c not in (start, goal)]
    fixed = draw(st.lists(st.sampled_from(free), unique=True, max_size=n_fixed)) if n_fixed else []
    closed = draw(st.lists(st.sampled_from([c for c in free if c not in fixed]), unique=True, max_size=k)) if k else []
    state = env.make_state(start=start, goal=goal, fixed_walls=fixed, closed_doors=closed)
    actions = np.asarray(draw(st.lists(st.integers(0, 3), min_size=T, max_size=T)), np.int32)
    seed = draw(st.integers(0, 2**31 - 1))
    return env, params, k, state, actions, seed


def _rollout(env, params, state, keys, actions):
    def body(state, inp):
        key, a = inp
        obs, nxt, r, term, trunc, info = env.step(key, state, a, params)
        # the transition before gymnax's auto-reset (same key split as Environment.step)
        _, st_, r2, term2, info2 = env.step_env(jax.random.split(key)[0], state, a, params)
        same = jnp.all(jnp.stack([jnp.all(x == y) for x, y in zip(jax.tree.leaves(nxt), jax.tree.leaves(st_))]))
        out = dict(agent=st_.agent, goal=st_.goal, time=st_.time, r=r, r2=r2, term=term, term2=term2, trunc=trunc,
                   blocked=info["blocked"], same=same, closed_prev=state.closed_doors, closed=st_.closed_doors,
                   closed_next=nxt.closed_doors, allowed=env.door_allowed(st_), allowed_next=env.door_allowed(nxt),
                   cells_prev=state.door_cells, cells=st_.door_cells,
                   on_blocked=env.cell_blocked(st_, st_.agent), on_blocked_next=env.cell_blocked(nxt, nxt.agent),
                   d_prev=env.optimal_path_length(state), d=env.optimal_path_length(st_), next_time=nxt.time)
        return nxt, out
    return jax.lax.scan(body, state, (keys, actions))[1]


rollout = jax.jit(_rollout, static_argnums=0)


@settings(max_examples=40, **SETTINGS)
@given(scenarios())
def test_env_step_invariants(scenario):
    env, params, k, state, actions, seed = scenario
    keys = jax.random.split(jax.random.key(seed), T)
    o = jax.tree.map(np.asarray, rollout(env, params, state, keys, actions))
    p, max_steps = float(params.p_change), int(params.max_steps_in_episode)
    # step and step_env agree; without a reset, step's state is step_env's
    np.testing.assert_array_equal(o["r"], o["r2"])
    np.testing.assert_array_equal(o["term"], o["term2"])
    done = o["term"] | o["trunc"]
    assert o["same"][~done].all()
    assert (o["next_time"][done] == 0).all()
    # rewards; terminated iff on the goal; blocked moves cost -0.01 and stay put
    assert np.isin(o["r"], REWARDS).all()
    on_goal = (o["agent"] == o["goal"]).all(-1)
    np.testing.assert_array_equal(o["term"], on_goal)
    np.testing.assert_array_equal(o["r"] == 1.0, on_goal)
    np.testing.assert_array_equal(o["r"] == np.float32(-0.01), o["blocked"] & ~on_goal)
    # never on a wall, fixed wall or closed door (before and after the auto-reset)
    assert not o["on_blocked"].any() and not o["on_blocked_next"].any()
    # truncation exactly at the step limit (blocked moves count); the clock restarts on reset
    c = 0
    for t in range(T):
        c += 1
        assert o["time"][t] == c
        assert o["trunc"][t] == (c == max_steps), (t, c, max_steps)
        if done[t]:
            c = 0
    # doors: never on the agent, start, goal or a fixed wall; door cells fixed within an episode
    for cl, al in ((o["closed"], o["allowed"]), (o["closed_next"], o["allowed_next"])):
        assert not (cl & ~al).any()
    np.testing.assert_array_equal(o["cells"], o["cells_prev"])
    n = o["closed"].sum(-1)
    n_prev = o["closed_prev"].sum(-1)
    if params.door_dynamics == "joint":
        expect = np.minimum(k, o["allowed"].sum(-1))
        changed = (o["closed"] != o["closed_prev"]).any(-1)
        # a resample closes exactly k doors, or all allowed ones if fewer are allowed; an empty
        # closed set is always resampled when p > 0
        assert (n[changed] == expect[changed]).all()
        if p > 0:
            assert (n[n_prev == 0] == expect[n_prev == 0]).all()
        if p == 0:
            assert not changed.any()
        # after an auto-reset: min(k, allowed) doors closed
        assert (o["closed_next"].sum(-1)[done] == np.minimum(k, o["allowed_next"].sum(-1))[done]).all()
    else:
        assert (n <= o["cells"].sum(-1)).all()
        if p == 0:
            np.testing.assert_array_equal(o["closed"], o["closed_prev"])
    # BFS: with static doors one move changes the shortest-path length by at most 1 (so no episode
    # beats the BFS optimum)
    if p == 0:
        cont = np.concatenate([[True], ~done[:-1]])  # the step continues the previous state
        ok = cont & (o["d_prev"] >= 0)
        assert (np.abs(o["d"][ok & ~o["term"]] - o["d_prev"][ok & ~o["term"]]) <= 1).all()
    # the move is made under the doors before the step: the goal is entered only from distance 1
    assert (o["d_prev"][o["term"]] == 1).all()


_optimal = jax.jit(lambda env, s: env.optimal_path_length(s), static_argnums=0)
_field = jax.jit(lambda env, s: bfs.distance_field(env.blocked_grid(s), s.goal), static_argnums=0)
_STEP_ENV = {}


def _jitted_step_env(env):
    if env not in _STEP_ENV:
        _STEP_ENV[env] = jax.jit(env.step_env)
    return _STEP_ENV[env]


@settings(max_examples=25, **SETTINGS)
@given(scenarios())
def test_bfs_greedy_path_reaches_goal_in_exactly_optimal_steps(scenario):
    """With static doors, moving down the BFS distance field (envs.bfs) reaches the goal in
    exactly `optimal_path_length` steps, never bumping into anything."""
    env, params, k, state, _, seed = scenario
    params = params.replace(p_change=0.0, max_steps_in_episode=1000)
    d0 = int(_optimal(env, state))
    assume(d0 > 0)
    field = np.asarray(_field(env, state))
    assert field[tuple(np.asarray(state.agent))] == d0
    step = _jitted_step_env(env)
    total = 0.0
    for t in range(d0):
        pos = np.asarray(state.agent)
        nxt = [tuple(pos + ACTION_DELTAS[a]) for a in range(4)]
        a = next(a for a in range(4) if field[nxt[a]] == field[tuple(pos)] - 1)
        _, state, r, term, info = step(jax.random.key(seed + t), state, a, params)
        total += float(r)
        assert bool(term) == (t == d0 - 1) and not bool(info["blocked"])
    assert total == 1.0


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(envs.ENV_NAMES),
       st.one_of(st.integers(max_value=-1), st.integers(min_value=4), st.floats(allow_nan=True),
                 st.sampled_from([np.int64(4), np.int32(-1), np.uint8(200), np.float32(1.0)])))
def test_out_of_range_action_raises_clear_value_error(name, action):
    env, params = envs.make(name)
    _, state = _reset(name)
    with pytest.raises(ValueError, match=r"out of range; allowed: integers 0\.\.3"):
        env.step(jax.random.key(0), state, action, params)


_RESETS = {}


def _reset(name):
    if name not in _RESETS:
        env, params = envs.make(name)
        _RESETS[name] = env.reset(jax.random.key(0), params)
    return _RESETS[name]


# ---- configs -------------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from hrm_jax.config import TINY, ConfigError, validate  # noqa: E402

# the smallest program: one layer, one cycle, one segment, one gradient step per collection
BASE = replace(TINY,
               model=replace(TINY.model, hidden=8, heads=2, mlp_round=8, segments_per_step=1),
               train=replace(TINY.train, num_envs=4, batch_size=8, buffer_capacity=64, eval_envs=4,
                             grad_steps_per_collect=1, supervision_segments=1, eval_every=2,
                             total_grad_steps=2, checkpoint_every=2, warmup_steps=1, eps_decay_steps=4),
               env=replace(TINY.env, max_steps=6))


def mixed(valid, invalid):
    """Mostly valid values (3:1 per value), sometimes an invalid one."""
    return st.sampled_from(list(valid) * 3 + list(invalid))


FIELDS = {
    ("env", "name"): mixed(["four_rooms", "corridor_maze"], ["five_rooms"]),
    ("env", "closed_doors"): mixed([-1, 0, 2], [-2, 9, 50]),
    ("env", "p_change"): mixed([0.0, 0.5, 1.0], [-0.5, 1.5, float("nan")]),
    ("train", "num_envs"): mixed([2, 8], [0, -4]),
    ("train", "batch_size"): mixed([4, 16], [0, 128]),
    ("train", "gamma"): mixed([0.0, 0.9, 1.0], [1.01, -1.0]),
    ("train", "n_step"): mixed([1, 3], [0, 16]),  # 16: not below buffer_capacity // num_envs = 64 // 4
    ("model", "heads"): mixed([1, 2], [0, 3]),
}


@st.composite
def configs(draw):
    over = {}
    for (section, name), strat in FIELDS.items():
        if draw(st.booleans()):
            over.setdefault(section, {})[name] = draw(strat)
    return replace(BASE, **{s: replace(getattr(BASE, s), **kw) for s, kw in over.items()})


_SEEN = {}
MAX_RUNS = 2  # valid configs compiled and run (~15 s of CPU each); later valid ones are traced only


@settings(max_examples=14, derandomize=True, **SETTINGS)
@given(configs())
def test_random_config_validates_and_runs_one_chunk_or_fails_cleanly(cfg):
    from hrm_jax.acting import make_env
    from hrm_jax.algos import make_train, seed_keys

    try:
        validate(cfg)
        make_env(cfg.env)  # the env-level counts, checked by the CLI right after validate
    except (ConfigError, ValueError) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 300, msg
        assert type(exc).__module__.split(".")[0] in ("hrm_jax", "envs", "builtins"), type(exc)
        return
    key = repr(cfg)
    if key in _SEEN:  # each valid config compiles once (hypothesis repeats examples while shrinking)
        return
    tr = make_train(cfg)
    keys = seed_keys(cfg.train.seed, 1)
    if len(_SEEN) >= MAX_RUNS:  # trace the whole program (shape errors would surface here), no compile
        shapes = jax.eval_shape(jax.vmap(tr.init), keys)
        _, m = jax.eval_shape(jax.vmap(tr.chunk), shapes)
        assert m["loss"].shape == (1,)
        return
    state = jax.jit(jax.vmap(tr.init))(keys)
    state, metrics = jax.jit(jax.vmap(tr.chunk))(state)
    m = jax.device_get(metrics)
    assert int(m["grad_steps"][0]) == cfg.train.eval_every
    assert np.isfinite(m["loss"]).all() and np.isfinite(m["q_mean"]).all()
    assert 0.0 <= float(m["eval_success"][0]) <= 1.0
    _SEEN[key] = True
