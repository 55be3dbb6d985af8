"""The gridworld both mazes share: movement, rewards, doors, observation, explicit layouts.

Semantics (reference-facts §1): 4 actions N/E/S/W; a blocked move (wall, fixed wall, closed door)
leaves the agent in place with reward -0.01; stepping onto the goal gives +1 and terminates;
truncation at `max_steps_in_episode` (blocked moves count). After every move the closed doors
are updated (`joint`: with probability p, or when none is closed, the whole closed set is
resampled; `independent`: each door toggles with probability p). A door never closes on the
agent's cell, the start or the goal.

Deviations from the reference, on purpose: closed doors are drawn at reset and shown in the reset
observation (the authors' MiniHack wrapper closes and draws them only from the first step on, and
with p_change=0 never closes any).

Cost note: gymnax's `step` computes a full `reset_env` on every call (auto-reset by select), so
reset is on the hot path. It draws all its randomness with one `jax.random.bits` call and picks
cells by counting, never by sorting or per-cell key splitting.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
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


def is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_probability(name: str, p: Any) -> None:
    if is_concrete(p):
        v = np.asarray(p)
        if not np.all((v >= 0.0) & (v <= 1.0)):
            raise ValueError(f"{name}={p} must be a probability in [0, 1]")


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


def sample_k(seed: jax.Array, allowed: jax.Array, k: int) -> jax.Array:
    """Choose min(k, sum(allowed)) distinct cells uniformly among `allowed` (without replacement).

    seed: uint32 random word; allowed: bool[n], n <= 64. Returns bool[n]. Works on two uint32
    bit sets: k picks of the r-th free bit (popcount bisection), no sort and no cumsum.
    """
    n = allowed.shape[-1]
    lo, hi = to_words(allowed)
    out_lo = out_hi = jnp.uint32(0)
    for i in range(k):
        found, in_lo, idx = pick_from_words(hash_u32(seed + jnp.uint32(i) * jnp.uint32(0x9E3779B9)), lo, hi)
        one = jnp.where(found, jnp.uint32(1) << (idx % 32).astype(jnp.uint32), jnp.uint32(0))
        lo, out_lo = jnp.where(in_lo, lo & ~one, lo), jnp.where(in_lo, out_lo | one, out_lo)
        hi, out_hi = jnp.where(in_lo, hi, hi & ~one), jnp.where(in_lo, out_hi, out_hi | one)
    return from_words(out_lo, out_hi, n)


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
        self.obs_len = len(obs_cells)

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
        jit an out-of-range action cannot raise: it is a no-op flagged in info["invalid_action"]."""
        if is_concrete(action):
            a = np.asarray(action)
            if not np.issubdtype(a.dtype, np.integer) or np.any((a < 0) | (a > 3)):
                raise ValueError(f"action={action!r} is out of range; allowed: integers 0..3 (N, E, S, W)")
        return super().step(key, state, action, params)

    def is_terminal(self, state: EnvState, params) -> jax.Array:
        return jnp.all(state.agent == state.goal) | (state.time >= params.max_steps_in_episode)

    def is_truncated(self, state: EnvState, params) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def step_env(self, key, state: EnvState, action, params):
        action = jnp.asarray(action, jnp.int32)
        valid = (action >= 0) & (action <= 3)
        target = state.agent + self._deltas[jnp.clip(action, 0, 3)]
        blocked = self.cell_blocked(state, target) | ~valid
        agent = jnp.where(blocked, state.agent, target)
        terminated = jnp.all(agent == state.goal)
        reward = jnp.where(terminated, GOAL_REWARD, jnp.where(blocked & valid, BLOCKED_REWARD, 0.0))
        closed = self.update_doors(key, state.replace(agent=agent), params)
        state = state.replace(agent=agent, closed_doors=closed, time=state.time + 1)
        info = {"blocked": blocked, "invalid_action": ~valid}
        return self.get_obs(state, params), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params):
        bits = jax.random.bits(key, (4,), jnp.uint32)  # start, goal, fixed walls, doors
        start_i = (bits[0] % self.n_floor).astype(jnp.int32)
        goal_i = (start_i + 1 + (bits[1] % (self.n_floor - 1)).astype(jnp.int32)) % self.n_floor
        start, goal = self._floor[start_i], self._floor[goal_i]
        fixed = self.place_fixed_walls(bits[2], start, goal, params)
        state = EnvState(time=jnp.int32(0), agent=start, start=start, goal=goal, fixed_walls=fixed,
                         door_cells=~fixed, closed_doors=jnp.zeros_like(fixed))
        closed = sample_k(bits[3], self.door_allowed(state), self.door_count(params))
        if params.door_dynamics == "independent":
            state = state.replace(door_cells=self._initial_door_cells(closed))
        state = state.replace(closed_doors=closed)
        return self.get_obs(state, params), state

    # ---- subclass hooks ---------------------------------------------------------------------

    def door_count(self, params) -> int:
        """How many doors are closed after a (joint) resample. Static."""
        raise NotImplementedError

    def place_fixed_walls(self, seed, start, goal, params) -> jax.Array:
        """bool[n_cand] of fixed walls for a new episode (none by default). seed: uint32."""
        return jnp.zeros((self.n_cand,), bool)

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

    def update_doors(self, key, state: EnvState, params) -> jax.Array:
        allowed = self.door_allowed(state)
        if params.door_dynamics == "independent":
            toggle = jax.random.uniform(key, (self.n_cand,)) < params.p_change
            return (state.closed_doors ^ toggle) & allowed
        bits = jax.random.bits(key, (2,), jnp.uint32)
        u = (bits[0] >> 8).astype(jnp.float32) * (1.0 / (1 << 24))  # uniform [0, 1) from 24 bits
        # as the authors' code: resample with probability p, or whenever no door is closed (p > 0)
        resample = (params.p_change > 0) & ((u < params.p_change) | ~jnp.any(state.closed_doors))
        return jnp.where(resample, sample_k(bits[1], allowed, self.door_count(params)), state.closed_doors)

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        """uint8[obs_len] tokens, row-major over the map's observed crop."""
        cand_glyph = jnp.where(state.fixed_walls, self.maze.fixed_wall_glyph,
                               jnp.where(state.closed_doors, self.maze.door_glyph, FLOOR)).astype(jnp.uint8)
        obs = jnp.where(self._obs_is_cand, cand_glyph[self._obs_cand], self._obs_template)
        flat = lambda p: p[0] * self.W + p[1]
        cells = self._obs_cells
        obs = jnp.where(cells == flat(state.start), jnp.uint8(START), obs)
        obs = jnp.where(cells == flat(state.goal), jnp.uint8(GOAL), obs)
        obs = jnp.where(cells == flat(state.agent), jnp.uint8(AGENT), obs)
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
