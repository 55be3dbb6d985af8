"""The gridworld both mazes share: movement, rewards, doors, observation, explicit layouts.

Semantics (docs/reference.md §1): 4 actions N/E/S/W; a blocked move (wall, fixed wall, closed door)
leaves the agent in place with reward -0.01; stepping onto the goal gives +1 and terminates;
truncation at `max_steps_in_episode` (blocked moves count). After every move the closed doors
are updated (`joint`: with probability p, or when none is closed, the whole closed set is
resampled; `independent`: each door toggles with probability p). A door never closes on the
agent's cell, the start or the goal.

Deviations from the reference, on purpose: closed doors are drawn at reset and shown in the reset
observation (the authors' MiniHack wrapper closes and draws them only from the first step on, and
with p_change=0 never closes any).

Cost note: gymnax's `Environment.step` computes a full `reset_env` for every env on every call
(auto-reset by select). `MazeEnv.step` keeps its semantics exactly (same key split, same outputs
bit for bit) but has its own vmap rule (`jax.custom_batching.custom_vmap`): under `jax.vmap` it
computes every env's move and observation, then the joint door resample only for the envs that
resample this step and the reset only for the envs that are done, gathered into fixed-size chunks
(`lax.while_loop` over as many chunks as needed, so any number of them is handled exactly). Door
sets are handled as uint32 bit sets (two words, candidates 0..31 and 32..63); a reset draws all
its randomness with one 4-word `jax.random.bits` draw (computed by `random_bits`, an unrolled
threefry: jax's own lowering on CPU is a rolled loop) and picks cells by counting, never by sorting
or per-cell key splitting.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.custom_batching import custom_vmap
from gymnax.environments import environment, spaces

from envs import bfs
from envs.maps import ACTION_DELTAS, AGENT, FLOOR, GOAL, START, MazeMap

BLOCKED_REWARD = -0.01
GOAL_REWARD = 1.0
DOOR_DYNAMICS = ("joint", "independent")


@struct.dataclass
class EnvState(environment.EnvState):
    """One maze episode. Cells are (row, col) in the full map (outer wall included).

    fixed_walls, door_cells, closed_doors: bool[n_cand] over the map's door candidates.
    door_cells marks the candidates that may be closed this episode (all non-fixed candidates in
    `joint` mode; in `independent` mode the doors placed at reset, as the paper's text reads).
    """

    agent: jax.Array         # int32[2]
    start: jax.Array         # int32[2]
    goal: jax.Array          # int32[2]
    fixed_walls: jax.Array   # bool[n_cand]
    door_cells: jax.Array    # bool[n_cand]
    closed_doors: jax.Array  # bool[n_cand]


def check_goal(goal, maze) -> None:
    """A fixed goal must be None or a walkable (row, col) of the map."""
    if goal is None:
        return
    cells = {tuple(int(v) for v in c) for c in np.asarray(maze.floor)}
    ok = isinstance(goal, tuple) and len(goal) == 2 and all(isinstance(v, int) for v in goal)
    if not ok or goal not in cells:
        raise ValueError(f"goal={goal!r} must be None or a walkable (row, col) cell of the {maze.shape[0]}x"
                         f"{maze.shape[1]} map (row 1..{maze.shape[0] - 2}, col 1..{maze.shape[1] - 2}, not a wall)")


def is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_probability(name: str, p: Any) -> None:
    if is_concrete(p):
        v = np.asarray(p)
        if not np.all((v >= 0.0) & (v <= 1.0)):
            raise ValueError(f"{name}={p} must be a probability in [0, 1]")


def check_penalty(name: str, v: Any) -> None:
    """A reward for a bad move: finite and <= 0 (a positive one would pay the agent to bump)."""
    if is_concrete(v):
        a = np.asarray(v)
        if not np.all(np.isfinite(a) & (a <= 0.0)):
            raise ValueError(f"{name}={v} must be a finite number <= 0 (authors: {BLOCKED_REWARD})")


def check_positive(name: str, v: Any) -> None:
    if is_concrete(v) and not np.all(np.asarray(v) >= 1):
        raise ValueError(f"{name}={v} must be >= 1")


def check_count(name: str, v: int, most: int, what: str) -> None:
    if not isinstance(v, (int, np.integer)) or v < 0 or v > most:
        raise ValueError(f"{name}={v} must be an integer in [0, {most}] ({what})")


def check_dynamics(v: str) -> None:
    if v not in DOOR_DYNAMICS:
        raise ValueError(f"door_dynamics={v!r} must be one of {', '.join(DOOR_DYNAMICS)}")


def hash_u32(x: jax.Array) -> jax.Array:
    """A well-mixing 32-bit integer hash ("lowbias32"). Used to stretch one jax.random word into
    several random words: a threefry draw per pick would dominate the cost of a step (reset runs
    inside every gymnax step)."""
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 block function (20 rounds; Salmon et al. 2011), unrolled: the function
    behind jax.random's default PRNG. jax lowers it on CPU as a rolled loop, one pass over memory
    per group of rounds; unrolled it is one fused elementwise kernel."""
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + k0, x1 + k1
    for i in range(5):
        for r in _THREEFRY_ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def _threefry_data(key: jax.Array):
    """uint32[..., 2] data of a threefry key (typed or raw), or None where `split2`/`random_bits`
    must defer to jax.random: another PRNG, or jax deriving keys another way."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key) if str(jax.random.key_impl(key)) == "threefry2x32" else None
    if jax.config.jax_default_prng_impl == "threefry2x32" and key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return key
    return None


def split2(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`jax.random.split(key)` as two keys, bit for bit (each new key i is the threefry block of
    counter (0, i), as jax derives it), without jax's rolled-loop threefry on CPU."""
    data = _threefry_data(key)
    if data is None:
        k = jax.random.split(key)
        return k[0], k[1]
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    out = []
    for i in (0, 1):
        d = jnp.stack(_threefry2x32(data[..., 0], data[..., 1], jnp.uint32(0), jnp.uint32(i)), axis=-1)
        d = jax.lax.optimization_barrier(d)  # computed once, not fused into (and redone by) each user
        out.append(jax.random.wrap_key_data(d, impl=jax.random.key_impl(key)) if typed else d)
    return out[0], out[1]


def random_bits(key: jax.Array, n: int) -> jax.Array:
    """`jax.random.bits(key, (n,), jnp.uint32)` of one key, bit for bit (element i: the two words
    of the threefry block of counter (0, i), xored)."""
    data = _threefry_data(key)
    if data is None:
        return jax.random.bits(key, (n,), jnp.uint32)
    a, b = _threefry2x32(data[..., 0, None], data[..., 1, None], jnp.zeros((n,), jnp.uint32),
                         jnp.arange(n, dtype=jnp.uint32))
    return jax.lax.optimization_barrier(a ^ b)  # computed once, not fused into (and redone by) each user


def to_words(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """bool[n] (n <= 64) -> (lo, hi) uint32 bit sets of cells 0..31 and 32..63."""
    n = mask.shape[-1]
    w = jnp.uint32(1) << (jnp.arange(n, dtype=jnp.uint32) % 32)
    lo = jnp.sum(jnp.where(mask[:32], w[:32], jnp.uint32(0)), dtype=jnp.uint32)
    hi = jnp.sum(jnp.where(mask[32:], w[32:], jnp.uint32(0)), dtype=jnp.uint32)
    return lo, hi


def from_words(lo: jax.Array, hi: jax.Array, n: int) -> jax.Array:
    """Inverse of `to_words`: bool[n]."""
    i = jnp.arange(n, dtype=jnp.uint32)
    return ((jnp.where(i < 32, lo, hi) >> (i % 32)) & 1).astype(bool)


def select_bit(x: jax.Array, r: jax.Array) -> jax.Array:
    """Position (int32) of the r-th (0-based) set bit of uint32 x, by popcount bisection."""
    pos = jnp.int32(0)
    for width in (16, 8, 4, 2, 1):
        low = x & jnp.uint32((1 << width) - 1)
        c = jax.lax.population_count(low).astype(jnp.uint32)
        high = r >= c
        r = jnp.where(high, r - c, r)
        x = jnp.where(high, x >> width, low)
        pos = pos + jnp.where(high, width, 0)
    return pos


def pick_from_words(word: jax.Array, lo: jax.Array, hi: jax.Array):
    """One uniform pick among the set bits of (lo, hi) using random uint32 `word`.

    Returns (found, in_lo, index) with index in [0, 64)."""
    n_lo = jax.lax.population_count(lo).astype(jnp.uint32)
    count = n_lo + jax.lax.population_count(hi).astype(jnp.uint32)
    r = word % jnp.maximum(count, 1)
    in_lo = r < n_lo
    idx = jnp.where(in_lo, select_bit(lo, r), 32 + select_bit(hi, r - n_lo))
    return count > 0, in_lo, idx


def sample_k_words(seed: jax.Array, lo: jax.Array, hi: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """`sample_k` on bit sets: (lo, hi) allowed -> (lo, hi) chosen."""
    out_lo = out_hi = jnp.uint32(0)
    for i in range(k):
        found, in_lo, idx = pick_from_words(hash_u32(seed + jnp.uint32(i) * jnp.uint32(0x9E3779B9)), lo, hi)
        one = jnp.where(found, jnp.uint32(1) << (idx % 32).astype(jnp.uint32), jnp.uint32(0))
        lo, out_lo = jnp.where(in_lo, lo & ~one, lo), jnp.where(in_lo, out_lo | one, out_lo)
        hi, out_hi = jnp.where(in_lo, hi, hi & ~one), jnp.where(in_lo, out_hi, out_hi | one)
    return out_lo, out_hi


def sample_k(seed: jax.Array, allowed: jax.Array, k: int) -> jax.Array:
    """Choose min(k, sum(allowed)) distinct cells uniformly among `allowed` (without replacement).

    seed: uint32 random word; allowed: bool[n], n <= 64. Returns bool[n]. Works on two uint32
    bit sets: k picks of the r-th free bit (popcount bisection), no sort and no cumsum.
    """
    return from_words(*sample_k_words(seed, *to_words(allowed), k), allowed.shape[-1])


def _chunked(mask: jax.Array, chunk: int, fn, carry):
    """Run `carry = fn(idx, carry)` over the indices of the set entries of bool[n] `mask`, `chunk`
    at a time (idx: int32[chunk], padded with n, which `fn` must ignore: gather clipped, scatter
    with mode="drop"). A `lax.while_loop` over ceil(count / chunk) chunks: exact for any count."""
    n = mask.shape[0]
    idx = jnp.nonzero(mask, size=n + chunk, fill_value=n)[0].astype(jnp.int32)
    count = jnp.sum(mask, dtype=jnp.int32)

    def body(c):
        i, carry = c
        return i + chunk, fn(jax.lax.dynamic_slice(idx, (i,), (chunk,)), carry)

    return jax.lax.while_loop(lambda c: c[0] < count, body, (jnp.int32(0), carry))[1]


def _rows(tree, idx: jax.Array, n: int):
    """Rows idx (clipped to n - 1) of every leaf of `tree`."""
    idx = jnp.minimum(idx, n - 1)
    return jax.tree.map(lambda x: x[idx], tree)


def _put_rows(tree, idx: jax.Array, rows):
    return jax.tree.map(lambda x, r: x.at[idx].set(r, mode="drop"), tree, rows)


class MazeEnv(environment.Environment):
    """Base class: a static `MazeMap` plus door dynamics. Subclasses add the reset generator."""

    maze: MazeMap

    def __init__(self):
        super().__init__()
        m = self.maze
        H, W = m.shape
        self.H, self.W = H, W
        self._wall = jnp.asarray(m.wall)
        self._cand = jnp.asarray(m.candidates)
        self._cand_flat = jnp.asarray(m.candidates[:, 0] * W + m.candidates[:, 1])
        self._cand_index = jnp.asarray(m.candidate_index)
        self._floor = jnp.asarray(m.floor)
        self._deltas = jnp.asarray(ACTION_DELTAS)
        obs_cells = m.obs_cells
        self._obs_cells = jnp.asarray(obs_cells)
        self._obs_template = jnp.asarray(m.template.reshape(-1)[obs_cells])
        cand_of_obs = m.candidate_index.reshape(-1)[obs_cells]
        self._obs_cand = jnp.asarray(np.maximum(cand_of_obs, 0))
        self._obs_is_cand = jnp.asarray(cand_of_obs >= 0)
        self.n_cand = len(m.candidates)
        self.n_floor = len(m.floor)
        self._floor_index = {tuple(int(v) for v in c): i for i, c in enumerate(np.asarray(m.floor))}
        self.obs_len = len(obs_cells)
        if self.n_cand > 64:
            raise ValueError(f"{m.name}: {self.n_cand} door candidates; at most 64 fit the two-word bit sets")
        # per cell (flat row*W + col): the bit of its door candidate in the (lo, hi) bit sets
        ci = m.candidate_index.reshape(-1)
        self._cell_lo = jnp.asarray(np.where((ci >= 0) & (ci < 32), np.uint32(1) << (ci % 32).astype(np.uint32), 0)
                                    .astype(np.uint32))
        self._cell_hi = jnp.asarray(np.where(ci >= 32, np.uint32(1) << (ci % 32).astype(np.uint32), 0).astype(np.uint32))
        self._all_lo = np.uint32((1 << min(self.n_cand, 32)) - 1)
        self._all_hi = np.uint32((1 << max(self.n_cand - 32, 0)) - 1)
        self._step_fns = {}
        self._step_jit = jax.jit(self._step_flat, static_argnums=4)

    # ---- gymnax API -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0, 127, (self.obs_len,), jnp.uint8)

    def state_space(self, params=None) -> spaces.Dict:
        n = self.n_cand
        return spaces.Dict({
            "agent": spaces.Box(0, max(self.H, self.W), (2,), jnp.int32),
            "start": spaces.Box(0, max(self.H, self.W), (2,), jnp.int32),
            "goal": spaces.Box(0, max(self.H, self.W), (2,), jnp.int32),
            "fixed_walls": spaces.Box(0, 1, (n,), jnp.bool_),
            "door_cells": spaces.Box(0, 1, (n,), jnp.bool_),
            "closed_doors": spaces.Box(0, 1, (n,), jnp.bool_),
            "time": spaces.Discrete(2**31 - 1),
        })

    def step(self, key, state, action, params=None):
        """gymnax step with auto-reset. A concrete out-of-range action raises ValueError; inside
        jit an out-of-range action cannot raise: it is a no-op flagged in info["invalid_action"].

        The same function as gymnax's `Environment.step` (key split into step and reset keys,
        auto-reset by select, info["final_observation"] = the observation before the reset), with
        a cheaper rule under `jax.vmap` (`_step_vmap_rule`): identical results."""
        if is_concrete(action):
            a = np.asarray(action)
            if not np.issubdtype(a.dtype, np.integer) or np.any((a < 0) | (a > 3)):
                raise ValueError(f"action={action!r} is out of range; allowed: integers 0..3 (N, E, S, W)")
        if params is None:
            params = self.default_params
        leaves, treedef = jax.tree.flatten(params)
        return self._step_jit(key, state, action, leaves, treedef)

    def _step_flat(self, key, state, action, leaves, treedef):
        """`_step_one` with its vmap rule, params as (leaves, static treedef): custom_vmap builds a
        pytree of in_batched flags like its arguments, and an EnvParams of flags would fail the
        params' own validation."""
        fn = self._step_fns.get(treedef)
        if fn is None:
            fn = custom_vmap(lambda k, s, a, lv: self._step_one(k, s, a, jax.tree.unflatten(treedef, lv)))
            fn.def_vmap(lambda n, b, k, s, a, lv: self._step_vmap_rule(n, b, treedef, k, s, a, lv))
            self._step_fns[treedef] = fn
        return fn(key, state, action, leaves)

    def _step_one(self, key, state, action, params):
        """One env: gymnax's `Environment.step`."""
        key_step, key_reset = split2(key)
        obs_st, state_st, reward, terminated, info = self.step_env(key_step, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = terminated | truncated
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    # chunk sizes of the vmap rule: ceil(n / div) envs per chunk (tuned at 8192 envs)
    RESAMPLE_CHUNK_DIV = 16
    RESET_CHUNK_DIV = 64

    def _step_vmap_rule(self, n, in_batched, treedef, key, state, action, leaves):
        """`_step_one` over a batch of n envs: the per-env part (keys, move, the door draw, the
        observation) for all envs; the joint door resample (`sample_k`) only for the envs that
        resample, and `reset_env` only for the envs that are done, both in chunks (`_chunked`).
        Each env gets exactly the values `_step_one` computes for it."""
        kb, sb, ab, pb = in_batched
        widen = lambda x, b: x if b else jnp.broadcast_to(x, (n,) + jnp.shape(x))
        key, action = widen(key, kb), widen(jnp.asarray(action), ab)
        state = jax.tree.map(widen, state, sb)
        params = jax.tree.unflatten(treedef, leaves)  # static fields only; leaves may be batched
        p_axes = [0 if b else None for b in pb]

        def per_env(f, *args, lv=leaves):
            """vmap of f(*args, params) over the envs (args batched; params leaves lv as in pb)."""
            g = lambda *a: f(*a[:-1], jax.tree.unflatten(treedef, a[-1]))
            return jax.vmap(g, in_axes=(0,) * len(args) + (p_axes,))(*args, lv)

        param_rows = lambda idx: [_rows(x, idx, n) if b else x for x, b in zip(leaves, pb)]

        key_step, key_reset = split2(key)
        state_st, reward, terminated, blocked, valid, resample, seed = per_env(self._move_and_draw, key_step, state,
                                                                             action)
        if params.door_dynamics == "joint":

            def resample_chunk(idx, closed):
                new = per_env(self._resample_doors, _rows(seed, idx, n), _rows(state_st, idx, n), lv=param_rows(idx))
                return closed.at[idx].set(new, mode="drop")

            closed = _chunked(resample, -(-n // self.RESAMPLE_CHUNK_DIV), resample_chunk, state_st.closed_doors)
            state_st = state_st.replace(closed_doors=closed)
        truncated = per_env(self.is_truncated, state_st)
        done = terminated | truncated
        obs_st = self._get_obs_batch(state_st)

        def reset_chunk(idx, carry):
            states = per_env(self._reset_state, _rows(key_reset, idx, n), lv=param_rows(idx))
            return _put_rows(carry, idx, (self._get_obs_batch(states), states))

        obs, state = _chunked(done, -(-n // self.RESET_CHUNK_DIV), reset_chunk, (obs_st, state_st))
        info = {"blocked": blocked, "invalid_action": ~valid, "terminated": terminated, "truncated": truncated,
                "final_observation": obs_st}
        out = (obs, state, reward, terminated, truncated, info)
        return out, jax.tree.map(lambda _: True, out)

    def is_terminal(self, state: EnvState, params) -> jax.Array:
        return jnp.all(state.agent == state.goal) | (state.time >= params.max_steps_in_episode)

    def is_truncated(self, state: EnvState, params) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def _move_and_draw(self, key, state: EnvState, action, params):
        """step_env without the joint door resample: (state after the move with the doors of
        `independent` dynamics updated, reward, terminated, blocked, valid, resample, seed):
        in `joint` dynamics the closed doors become `_resample_doors(seed, state)` where resample."""
        action = jnp.asarray(action, jnp.int32)
        valid = (action >= 0) & (action <= 3)
        target = state.agent + self._deltas[jnp.clip(action, 0, 3)]
        blocked = self.cell_blocked(state, target) | ~valid
        agent = jnp.where(blocked, state.agent, target)
        terminated = jnp.all(agent == state.goal)
        reward = jnp.where(terminated, GOAL_REWARD, jnp.where(blocked & valid, params.blocked_reward, 0.0))
        moved = state.replace(agent=agent)
        if params.door_dynamics == "independent":
            closed, resample, seed = self.update_doors(key, moved, params), jnp.bool_(False), jnp.uint32(0)
        else:
            closed = state.closed_doors
            resample, seed = self._door_draw(key, state, params)
        state = moved.replace(closed_doors=closed, time=state.time + 1)
        return state, reward.astype(jnp.float32), terminated, blocked, valid, resample, seed

    def step_env(self, key, state: EnvState, action, params):
        state, reward, terminated, blocked, valid, resample, seed = self._move_and_draw(key, state, action, params)
        if params.door_dynamics == "joint":
            state = state.replace(closed_doors=jnp.where(resample, self._resample_doors(seed, state, params),
                                                         state.closed_doors))
        info = {"blocked": blocked, "invalid_action": ~valid}
        return self.get_obs(state, params), state, reward, terminated, info

    def reset_env(self, key, params):
        state = self._reset_state(key, params)
        return self.get_obs(state, params), state

    def _reset_state(self, key, params) -> EnvState:
        """`reset_env` without the observation."""
        bits = random_bits(key, 4)  # start, goal, fixed walls, doors
        fixed_goal = getattr(params, "goal", None)
        if fixed_goal is None:
            start_i = (bits[0] % self.n_floor).astype(jnp.int32)
            goal_i = (start_i + 1 + (bits[1] % (self.n_floor - 1)).astype(jnp.int32)) % self.n_floor
        else:  # the start uniform over the other walkable cells
            goal_i = jnp.int32(self._floor_index[fixed_goal])
            start_i = (goal_i + 1 + (bits[0] % (self.n_floor - 1)).astype(jnp.int32)) % self.n_floor
        start, goal = self._floor[start_i], self._floor[goal_i]
        fixed_lo, fixed_hi = self.place_fixed_walls_words(bits[2], start, goal, params)
        # door_allowed of the new state (door_cells = ~fixed, agent on start), on bit sets
        s_lo, s_hi = self._cell_words(start)
        g_lo, g_hi = self._cell_words(goal)
        allowed_lo = ~fixed_lo & ~s_lo & ~g_lo & self._all_lo
        allowed_hi = ~fixed_hi & ~s_hi & ~g_hi & self._all_hi
        closed = from_words(*sample_k_words(bits[3], allowed_lo, allowed_hi, self.door_count(params)), self.n_cand)
        fixed = from_words(fixed_lo, fixed_hi, self.n_cand)
        door_cells = self._initial_door_cells(closed) if params.door_dynamics == "independent" else ~fixed
        return EnvState(time=jnp.int32(0), agent=start, start=start, goal=goal, fixed_walls=fixed,
                        door_cells=door_cells, closed_doors=closed)

    # ---- subclass hooks ---------------------------------------------------------------------

    def door_count(self, params) -> int:
        """How many doors are closed after a (joint) resample. Static."""
        raise NotImplementedError

    def place_fixed_walls(self, seed, start, goal, params) -> jax.Array:
        """bool[n_cand] of fixed walls for a new episode (none by default). seed: uint32."""
        return from_words(*self.place_fixed_walls_words(seed, start, goal, params), self.n_cand)

    def place_fixed_walls_words(self, seed, start, goal, params) -> tuple[jax.Array, jax.Array]:
        """`place_fixed_walls` as (lo, hi) bit sets."""
        return jnp.uint32(0), jnp.uint32(0)

    def _initial_door_cells(self, closed):
        """Independent dynamics: which candidates are doors for the episode."""
        return jnp.ones_like(closed)

    # ---- mechanics --------------------------------------------------------------------------

    def candidate_at(self, pos: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(is_candidate, index) of the cell pos."""
        ci = self._cand_index[pos[0], pos[1]]
        return ci >= 0, jnp.maximum(ci, 0)

    def cell_blocked(self, state: EnvState, pos: jax.Array) -> jax.Array:
        is_c, ci = self.candidate_at(pos)
        return self._wall[pos[0], pos[1]] | (is_c & (state.fixed_walls[ci] | state.closed_doors[ci]))

    def blocked_grid(self, state: EnvState) -> jax.Array:
        """bool[H, W]: walls, fixed walls and closed doors."""
        cand_blocked = state.fixed_walls | state.closed_doors
        is_c = self._cand_index >= 0
        return self._wall | (is_c & cand_blocked[jnp.maximum(self._cand_index, 0)])

    def _on_cell(self, pos: jax.Array) -> jax.Array:
        """bool[n_cand]: the candidate at pos (all False if pos is not a candidate)."""
        is_c, ci = self.candidate_at(pos)
        return is_c & (jnp.arange(self.n_cand) == ci)

    def door_allowed(self, state: EnvState) -> jax.Array:
        """bool[n_cand]: doors that may be closed now (never on agent, start or goal)."""
        return (state.door_cells & ~state.fixed_walls & ~self._on_cell(state.agent)
                & ~self._on_cell(state.start) & ~self._on_cell(state.goal))

    def _cell_words(self, pos: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(lo, hi) bit sets holding the candidate at pos (empty if pos is not a candidate)."""
        f = pos[0] * self.W + pos[1]
        return self._cell_lo[f], self._cell_hi[f]

    def _door_allowed_words(self, state: EnvState) -> tuple[jax.Array, jax.Array]:
        """`door_allowed` as (lo, hi) bit sets."""
        lo, hi = to_words(state.door_cells & ~state.fixed_walls)
        for pos in (state.agent, state.start, state.goal):
            c_lo, c_hi = self._cell_words(pos)
            lo, hi = lo & ~c_lo, hi & ~c_hi
        return lo, hi

    def _door_draw(self, key, state: EnvState, params) -> tuple[jax.Array, jax.Array]:
        """Joint dynamics: (resample?, uint32 seed of the resample) from the step key. state: the
        state before the step (only its closed doors are read)."""
        bits = random_bits(key, 2)
        u = (bits[0] >> 8).astype(jnp.float32) * (1.0 / (1 << 24))  # uniform [0, 1) from 24 bits
        # as the authors' code: resample with probability p, or whenever no door is closed (p > 0)
        resample = (params.p_change > 0) & ((u < params.p_change) | ~jnp.any(state.closed_doors))
        return resample, bits[1]

    def _resample_doors(self, seed, state: EnvState, params) -> jax.Array:
        """Joint dynamics: a fresh closed set, `door_count` doors among `door_allowed(state)`."""
        lo, hi = self._door_allowed_words(state)
        return from_words(*sample_k_words(seed, lo, hi, self.door_count(params)), self.n_cand)

    def update_doors(self, key, state: EnvState, params) -> jax.Array:
        """The closed doors after a step (state: after the move, with the previous closed doors)."""
        if params.door_dynamics == "independent":
            toggle = jax.random.uniform(key, (self.n_cand,)) < params.p_change
            return (state.closed_doors ^ toggle) & self.door_allowed(state)
        resample, seed = self._door_draw(key, state, params)
        return jnp.where(resample, self._resample_doors(seed, state, params), state.closed_doors)

    # at most this many candidates: the observation takes one select per candidate (vectorises
    # along the observation); more: one lookup (a gather)
    OBS_SELECT_MAX_CAND = 8

    def _obs_index(self, pos: jax.Array) -> jax.Array:
        """Index of cell pos in the observation (obs_len, out of range, if outside the crop)."""
        r0, r1, c0, c1 = self.maze.crop
        inside = (pos[0] >= r0) & (pos[0] < r1) & (pos[1] >= c0) & (pos[1] < c1)
        return jnp.where(inside, (pos[0] - r0) * (c1 - c0) + (pos[1] - c0), self.obs_len)

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        """uint8[obs_len] tokens, row-major over the map's observed crop."""
        return self._get_obs_batch(jax.tree.map(lambda x: x[None], state))[0]

    def _get_obs_batch(self, states: EnvState) -> jax.Array:
        """`get_obs` of a batch of states (leading axis): uint8[n, obs_len]. The three markers are
        scattered (one element each) rather than compared against every cell."""
        cand_glyph = jnp.where(states.fixed_walls, self.maze.fixed_wall_glyph,
                               jnp.where(states.closed_doors, self.maze.door_glyph, FLOOR)).astype(jnp.uint8)
        if self.n_cand <= self.OBS_SELECT_MAX_CAND:
            obs = jnp.broadcast_to(self._obs_template, (cand_glyph.shape[0], self.obs_len))
            for c in range(self.n_cand):
                obs = jnp.where(self._obs_is_cand & (self._obs_cand == c), cand_glyph[:, c:c + 1], obs)
        else:
            obs = jnp.where(self._obs_is_cand, jnp.take(cand_glyph, self._obs_cand, axis=1), self._obs_template)
        # the markers, agent last (it hides the start or the goal it stands on)
        rows = jnp.arange(obs.shape[0])
        for pos, glyph in ((states.start, START), (states.goal, GOAL), (states.agent, AGENT)):
            obs = obs.at[rows, jax.vmap(self._obs_index)(pos)].set(jnp.uint8(glyph), mode="drop")
        return obs

    def optimal_path_length(self, state: EnvState) -> jax.Array:
        """BFS shortest path from agent to goal under the current doors (-1 if unreachable)."""
        return bfs.shortest_path_length(self.blocked_grid(state), state.agent, state.goal)

    # ---- explicit layouts (tests, MiniHack parity) -----------------------------------------

    def make_state(self, start, goal, fixed_walls=(), closed_doors=(), agent=None, time=0,
                   door_cells=None) -> EnvState:
        """Build a state from explicit cells. start/goal/agent: (row, col); fixed_walls and
        closed_doors: iterables of (row, col) door-candidate cells."""
        def mask(cells):
            m = np.zeros(self.n_cand, bool)
            idx = self.maze.candidate_index
            for r, c in cells:
                if idx[r, c] < 0:
                    raise ValueError(f"cell {(r, c)} is not a door candidate of {self.maze.name}")
                m[idx[r, c]] = True
            return m

        fixed, closed = mask(fixed_walls), mask(closed_doors)
        for name, p in (("start", start), ("goal", goal), ("agent", agent if agent is not None else start)):
            r, c = p
            if not (0 <= r < self.H and 0 <= c < self.W) or self.maze.wall[r, c]:
                raise ValueError(f"{name}={tuple(p)} is not a walkable cell of {self.maze.name}")
        doors = ~fixed if door_cells is None else mask(door_cells)
        return EnvState(time=jnp.int32(time), agent=jnp.asarray(agent if agent is not None else start, jnp.int32),
                        start=jnp.asarray(start, jnp.int32), goal=jnp.asarray(goal, jnp.int32),
                        fixed_walls=jnp.asarray(fixed), door_cells=jnp.asarray(doors | closed),
                        closed_doors=jnp.asarray(closed))
