"""The observation: the map's token template cropped, with closed doors, fixed walls and the
`<` start, `>` goal and `@` agent markers drawn over it (one uint8 ASCII code per cell)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.maps import AGENT, FLOOR, GOAL, START, MazeMap

# at most this many candidates: one select per candidate (vectorises along the observation);
# more: one lookup (a gather)
SELECT_MAX_CAND = 8


class Observation:
    """Renders states of one map as tokens, row-major over the map's observed crop."""

    def __init__(self, maze: MazeMap):
        self.maze = maze
        obs_cells = maze.obs_cells
        self.obs_len = len(obs_cells)
        self.n_cand = len(maze.candidates)
        self._template = jnp.asarray(maze.template.reshape(-1)[obs_cells])
        cand_of_obs = maze.candidate_index.reshape(-1)[obs_cells]
        self._cand = jnp.asarray(np.maximum(cand_of_obs, 0))
        self._is_cand = jnp.asarray(cand_of_obs >= 0)

    def index(self, pos: jax.Array) -> jax.Array:
        """Index of cell pos (int32[2]) in the observation (obs_len, out of range, outside the crop)."""
        r0, r1, c0, c1 = self.maze.crop
        inside = (pos[0] >= r0) & (pos[0] < r1) & (pos[1] >= c0) & (pos[1] < c1)
        return jnp.where(inside, (pos[0] - r0) * (c1 - c0) + (pos[1] - c0), self.obs_len)

    def batch(self, states) -> jax.Array:
        """A batch of states (EnvState, leading axis B) -> uint8[B, obs_len]. The three markers
        are scattered (one element each) rather than compared against every cell."""
        cand_glyph = jnp.where(states.fixed_walls, self.maze.fixed_wall_glyph,
                               jnp.where(states.closed_doors, self.maze.door_glyph, FLOOR)).astype(jnp.uint8)
        if self.n_cand <= SELECT_MAX_CAND:
            obs = jnp.broadcast_to(self._template, (cand_glyph.shape[0], self.obs_len))
            for c in range(self.n_cand):
                obs = jnp.where(self._is_cand & (self._cand == c), cand_glyph[:, c:c + 1], obs)
        else:
            obs = jnp.where(self._is_cand, jnp.take(cand_glyph, self._cand, axis=1), self._template)
        # the markers, agent last (it hides the start or the goal it stands on)
        rows = jnp.arange(obs.shape[0])
        for pos, glyph in ((states.start, START), (states.goal, GOAL), (states.agent, AGENT)):
            obs = obs.at[rows, jax.vmap(self.index)(pos)].set(jnp.uint8(glyph), mode="drop")
        return obs

    def one(self, state) -> jax.Array:
        """One state -> uint8[obs_len]."""
        return self.batch(jax.tree.map(lambda x: x[None], state))[0]
