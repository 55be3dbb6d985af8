"""The gridworld both mazes share: moves, rewards, goal, truncation, door dynamics, resets.

Semantics (docs/reference.md §1): 4 actions N/E/S/W; a blocked move (wall, fixed wall, closed door)
leaves the agent in place with reward `params.blocked_reward` (-0.01); stepping onto the goal gives
+1 and terminates; truncation at `max_steps_in_episode` (blocked moves count). After every move the
closed doors are updated (`joint`: with probability p, or when none is closed, the whole closed
set is resampled; `independent`: each door toggles with probability p). A door never closes on
the agent's cell, the start or the goal.

Deviations from the reference, on purpose: closed doors are drawn at reset and shown in the reset
observation (the authors' MiniHack wrapper closes and draws them only from the first step on, and
with p_change=0 never closes any).

`step_env`/`reset_env` are the gymnax semantics; `step` is gymnax's auto-reset step computed by
`envs.kernels.auto_reset` (same values, cheaper under vmap). Door sets are handled as two-word bit
sets (`envs.kernels.bitsets`) and a reset draws all its randomness with one 4-word
`jax.random.bits` draw (`envs.kernels.threefry`): it picks cells by counting, never by sorting.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from envs import bfs, checks
from envs.kernels.auto_reset import AutoResetStep
from envs.kernels.bitsets import CellWords, from_words, pick_k, to_words
from envs.kernels.threefry import random_bits
from envs.maps import ACTION_DELTAS, MazeMap
from envs.observation import Observation
from envs.params import MazeParams

GOAL_REWARD = 1.0


@struct.dataclass
class EnvState(environment.EnvState):
    """One maze episode. Cells are (row, col) in the full map (outer wall included).

    door_cells marks the candidates that may be closed this episode (all non-fixed candidates in
    `joint` mode; in `independent` mode the doors placed at reset, as the paper's text reads).
    """

    agent: jax.Array         # int32[2]
    start: jax.Array         # int32[2]
    goal: jax.Array          # int32[2]
    fixed_walls: jax.Array   # bool[n_cand] over the map's door candidates
    door_cells: jax.Array    # bool[n_cand]
    closed_doors: jax.Array  # bool[n_cand]


class MazeEnv(environment.Environment):
    """A gymnax environment on a static `MazeMap`. A maze subclass sets `maze`, `params_class`
    and, if it has them, its fixed walls (`fixed_walls_words`, `independent_door_cells`)."""

    maze: MazeMap
    params_class: type[MazeParams]

    def __init__(self):
        super().__init__()
        m = self.maze
        H, W = m.shape
        self.H, self.W = H, W
        self._wall = jnp.asarray(m.wall)
        self._cand = jnp.asarray(m.candidates)
        self._cand_index = jnp.asarray(m.candidate_index)
        self._floor = jnp.asarray(m.floor)
        self._deltas = jnp.asarray(ACTION_DELTAS)
        self.n_cand = len(m.candidates)
        self.n_floor = len(m.floor)
        self._floor_index = {tuple(int(v) for v in c): i for i, c in enumerate(np.asarray(m.floor))}
        self.observation = Observation(m)
        self.obs_len = self.observation.obs_len
        self._words = CellWords(m.candidate_index)  # door sets as two uint32 words
        self._auto_reset_step = AutoResetStep(self)

    # ---- gymnax API -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def default_params(self) -> MazeParams:
        return self.params_class()

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0, 127, (self.obs_len,), jnp.uint8)

    def state_space(self, params=None) -> spaces.Dict:
        n, hw = self.n_cand, max(self.H, self.W)
        return spaces.Dict({
            "agent": spaces.Box(0, hw, (2,), jnp.int32),
            "start": spaces.Box(0, hw, (2,), jnp.int32),
            "goal": spaces.Box(0, hw, (2,), jnp.int32),
            "fixed_walls": spaces.Box(0, 1, (n,), jnp.bool_),
            "door_cells": spaces.Box(0, 1, (n,), jnp.bool_),
            "closed_doors": spaces.Box(0, 1, (n,), jnp.bool_),
            "time": spaces.Discrete(2**31 - 1),
        })

    def step(self, key, state, action, params=None):
        """gymnax's `Environment.step` (auto-reset; info["final_observation"] is the observation
        before the reset), computed by `AutoResetStep`. A concrete out-of-range action raises
        ValueError; inside jit it is a no-op flagged in info["invalid_action"]."""
        checks.check_action(action)
        return self._auto_reset_step(key, state, action, self.default_params if params is None else params)

    def step_env(self, key, state: EnvState, action, params):
        """obs uint8[obs_len], state, reward float32, terminated bool, info (blocked, invalid_action)."""
        state, reward, terminated, blocked, valid, resample, seed = self.move_and_draw_doors(key, state, action, params)
        state = state.replace(closed_doors=self._apply_resample(resample, seed, state, params))
        info = {"blocked": blocked, "invalid_action": ~valid}
        return self.get_obs(state, params), state, reward, terminated, info

    def reset_env(self, key, params):
        state = self.reset_state(key, params)
        return self.get_obs(state, params), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        """uint8[obs_len] tokens, row-major over the map's observed crop."""
        return self.observation.one(state)

    def is_terminal(self, state: EnvState, params) -> jax.Array:
        return jnp.all(state.agent == state.goal) | (state.time >= params.max_steps_in_episode)

    def is_truncated(self, state: EnvState, params) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    # ---- the step, in the phases `AutoResetStep` batches ------------------------------------

    def move_and_draw_doors(self, key, state: EnvState, action, params):
        """The step up to the joint door resample: (state after the move and the door draw, time
        + 1; reward float32; terminated, blocked, valid, resample bool; seed uint32). `independent`
        doors are updated here; `joint` ones become `resample_doors(seed, state)` where resample."""
        action = jnp.asarray(action, jnp.int32)
        valid = (action >= 0) & (action <= 3)
        target = state.agent + self._deltas[jnp.clip(action, 0, 3)]
        blocked = self.cell_blocked(state, target) | ~valid
        agent = jnp.where(blocked, state.agent, target)
        terminated = jnp.all(agent == state.goal)
        reward = jnp.where(terminated, GOAL_REWARD, jnp.where(blocked & valid, params.blocked_reward, 0.0))
        moved = state.replace(agent=agent)
        closed, resample, seed = self._draw_doors(key, moved, params)
        state = moved.replace(closed_doors=closed, time=state.time + 1)
        return state, reward.astype(jnp.float32), terminated, blocked, valid, resample, seed

    def _draw_doors(self, key, state: EnvState, params):
        """The door update's random draw (state: after the move, previous doors): independent:
        (toggled doors, False, 0); joint: (unchanged doors, resample?, uint32 seed)."""
        if params.door_dynamics == "independent":
            toggle = jax.random.uniform(key, (self.n_cand,)) < params.p_change
            return (state.closed_doors ^ toggle) & self.door_allowed(state), jnp.bool_(False), jnp.uint32(0)
        bits = random_bits(key, 2)
        u = (bits[0] >> 8).astype(jnp.float32) * (1.0 / (1 << 24))  # uniform [0, 1) from 24 bits
        # as the authors' code: resample with probability p, or whenever no door is closed (p > 0)
        resample = (params.p_change > 0) & ((u < params.p_change) | ~jnp.any(state.closed_doors))
        return state.closed_doors, resample, bits[1]

    def resample_doors(self, seed, state: EnvState, params) -> jax.Array:
        """Joint dynamics: a fresh closed set, `door_count` doors among `door_allowed(state)`."""
        return from_words(*pick_k(seed, *to_words(self.door_allowed(state)), params.door_count), self.n_cand)

    def _apply_resample(self, resample, seed, state: EnvState, params) -> jax.Array:
        """The closed doors after the joint resample where `resample` (independent: unchanged)."""
        if params.door_dynamics != "joint":
            return state.closed_doors
        return jnp.where(resample, self.resample_doors(seed, state, params), state.closed_doors)

    def update_doors(self, key, state: EnvState, params) -> jax.Array:
        """The closed doors after a step (state: after the move, with the previous closed doors)."""
        closed, resample, seed = self._draw_doors(key, state, params)
        return self._apply_resample(resample, seed, state.replace(closed_doors=closed), params)

    def reset_state(self, key, params) -> EnvState:
        """`reset_env` without the observation."""
        bits = random_bits(key, 4)  # start, goal, fixed walls, doors
        if params.goal is None:
            start_i = (bits[0] % self.n_floor).astype(jnp.int32)
            goal_i = (start_i + 1 + (bits[1] % (self.n_floor - 1)).astype(jnp.int32)) % self.n_floor
        else:  # the start uniform over the other walkable cells
            goal_i = jnp.int32(self._floor_index[params.goal])
            start_i = (goal_i + 1 + (bits[0] % (self.n_floor - 1)).astype(jnp.int32)) % self.n_floor
        start, goal = self._floor[start_i], self._floor[goal_i]
        fixed_lo, fixed_hi = self.fixed_walls_words(bits[2], start, goal, params)
        # door_allowed of the new state (door_cells = ~fixed, agent on start)
        allowed = self._words.without(~fixed_lo & self._words.all_lo, ~fixed_hi & self._words.all_hi, (start, goal))
        closed = from_words(*pick_k(bits[3], *allowed, params.door_count), self.n_cand)
        fixed = from_words(fixed_lo, fixed_hi, self.n_cand)
        door_cells = self.independent_door_cells(closed) if params.door_dynamics == "independent" else ~fixed
        return EnvState(time=jnp.int32(0), agent=start, start=start, goal=goal, fixed_walls=fixed,
                        door_cells=door_cells, closed_doors=closed)

    # ---- maze hooks -------------------------------------------------------------------------

    def fixed_walls_words(self, seed, start, goal, params) -> tuple[jax.Array, jax.Array]:
        """The fixed walls of a new episode as (lo, hi) bit sets (none by default). seed: uint32."""
        return jnp.uint32(0), jnp.uint32(0)

    def independent_door_cells(self, closed: jax.Array) -> jax.Array:
        """Independent dynamics: which candidates are doors for the episode (default: all)."""
        return jnp.ones_like(closed)

    # ---- cells and doors --------------------------------------------------------------------

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

    def optimal_path_length(self, state: EnvState) -> jax.Array:
        """BFS shortest path from agent to goal under the current doors (-1 if unreachable)."""
        return bfs.shortest_path_length(self.blocked_grid(state), state.agent, state.goal)

    # ---- explicit layouts (tests, MiniHack parity) -----------------------------------------

    def make_state(self, start, goal, fixed_walls=(), closed_doors=(), agent=None, time=0,
                   door_cells=None) -> EnvState:
        """Build a state from explicit cells. start/goal/agent: (row, col); fixed_walls and
        closed_doors: iterables of (row, col) door-candidate cells."""
        idx = self.maze.candidate_index

        def mask(cells):
            m = np.zeros(self.n_cand, bool)
            for cell in cells:
                checks.check_candidate(cell, self.maze)
                m[idx[cell[0], cell[1]]] = True
            return m

        agent = start if agent is None else agent
        fixed, closed = mask(fixed_walls), mask(closed_doors)
        for name, p in (("start", start), ("goal", goal), ("agent", agent)):
            checks.check_walkable(name, p, self.maze)
        doors = ~fixed if door_cells is None else mask(door_cells)
        return EnvState(time=jnp.int32(time), agent=jnp.asarray(agent, jnp.int32), start=jnp.asarray(start, jnp.int32),
                        goal=jnp.asarray(goal, jnp.int32), fixed_walls=jnp.asarray(fixed),
                        door_cells=jnp.asarray(doors | closed), closed_doors=jnp.asarray(closed))
