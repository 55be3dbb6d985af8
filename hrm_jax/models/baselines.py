"""Baseline Q-networks without a recurrent state: an MLP over one-hot glyphs and a small CNN over the
grid (`ModelConfig.arch` mlp / cnn). Not HRM-Agent's: they run in the same trainer, envs, replay and
evaluation as the HRM, so a comparison says whether a slow agent is the model or the RL loop.

Both read the observation as glyphs: the ASCII token codes mapped to `GLYPHS` (the 8 characters
the two mazes draw), one-hot. The MLP flattens them; the CNN lays them out as the grid
(`grid_width` cells per row). Hidden layers are followed by LayerNorm (as PQN's networks; it also
helps DQN) and ReLU. Q: f32[B, num_actions].

They have no z. So that the trainer, replay and acting stay one code path, a baseline's carry and
stored z are zero placeholders of width 1 (`hrm_jax.models.stored_z_shape`), and "segments" run the
same network once: every segment gives the same Q.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from envs.maps import AGENT, DOOR_MAZE, FLOOR, GOAL, OFF_MAP, START, WALL_H, WALL_V
from hrm_jax.config import ModelConfig

GLYPHS = (OFF_MAP, DOOR_MAZE, WALL_H, FLOOR, START, GOAL, AGENT, WALL_V)


def _glyph_table(vocab_size: int) -> np.ndarray:
    """int32[vocab_size]: token code -> glyph index (codes outside GLYPHS map to the off-map glyph)."""
    table = np.zeros((vocab_size,), np.int32)
    for i, g in enumerate(GLYPHS):
        table[g] = i
    return table


def one_hot_glyphs(tokens: jax.Array, vocab_size: int) -> jax.Array:
    """tokens uint8[B, T] -> f32[B, T, len(GLYPHS)]."""
    idx = jnp.asarray(_glyph_table(vocab_size))[tokens.astype(jnp.int32)]
    return jax.nn.one_hot(idx, len(GLYPHS), dtype=jnp.float32)


def _dense_ln_relu(x: jax.Array, width: int, name: str) -> jax.Array:
    x = nn.Dense(width, name=f"{name}_dense")(x)
    return nn.relu(nn.LayerNorm(name=f"{name}_norm")(x))


class MLPQ(nn.Module):
    """Two hidden layers of `baseline_width` over the flattened one-hot glyphs."""

    cfg: ModelConfig
    grid_width: int = 0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = one_hot_glyphs(tokens, self.cfg.vocab_size).reshape(tokens.shape[0], -1)
        x = _dense_ln_relu(x, self.cfg.baseline_width, "hidden_1")
        x = _dense_ln_relu(x, self.cfg.baseline_width, "hidden_2")
        return nn.Dense(self.cfg.num_actions, name="q")(x)


class Conv3x3(nn.Module):
    """A 3x3 'same' convolution written as its 9 shifted views concatenated and one matmul (im2col).
    Why not nn.Conv: XLA:CPU runs a convolution's gradient ~28x slower inside a loop (the trainer's
    lax.scan) than outside it (524 vs 18 ms per gradient step of this network, batch 64, measured
    2026-12-07); a matmul runs at the same speed in both. Same function as nn.Conv (tested)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        H, W = x.shape[1:3]
        p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        patches = jnp.concatenate([p[:, i:i + H, j:j + W] for i in range(3) for j in range(3)], axis=-1)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return patches @ kernel.reshape(9 * x.shape[-1], self.features) + bias


class CNNQ(nn.Module):
    """Three 3x3 'same' convolutions of `cnn_channels` over the glyph grid, then one hidden dense
    layer of `baseline_width`. The grid keeps its full size (no pooling): a cell's Q depends on
    where the goal is, so positions must survive to the dense layer."""

    cfg: ModelConfig
    grid_width: int = 0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        B, T = tokens.shape
        if self.grid_width < 1 or T % self.grid_width:
            raise ValueError(f"cnn baseline: {T} observation tokens are not rows of grid_width={self.grid_width}")
        x = one_hot_glyphs(tokens, self.cfg.vocab_size).reshape(B, T // self.grid_width, self.grid_width, len(GLYPHS))
        for i in range(3):
            x = Conv3x3(self.cfg.cnn_channels, name=f"conv_{i + 1}")(x)
            x = nn.relu(nn.LayerNorm(name=f"conv_{i + 1}_norm")(x))
        x = _dense_ln_relu(x.reshape(B, -1), self.cfg.baseline_width, "hidden")
        return nn.Dense(self.cfg.num_actions, name="q")(x)


BASELINES = {"mlp": MLPQ, "cnn": CNNQ}
