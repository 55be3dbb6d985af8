"""Small Flax linen layers for the HRM core (docs/reference.md §2).

Everything is batch-first, `[B, S, D]`. Parameters are float32; matmuls run in the compute dtype
(`cfg.dtype`), while RMSNorm and softmax statistics are computed in float32.

Performance notes (XLA:CPU is the primary target; measured on the project's 2-core machine):
  * one fused QKV projection and one fused gate/up projection per block;
  * attention works head-major ([B, H, S, hd]): the transpose out of the QKV projection fuses into
    the rotary loop, so the two batched matmuls need no further copies (the batch-first
    [B, S, H, hd] einsum form made XLA copy q and k once more: ~15% slower per block);
  * the rotary embedding is applied to q and k together in a single elementwise expression over
    the two halves of each head (no materialised rotate-half copy) and the softmax scale
    1/sqrt(head_dim) is folded into q's cos/sin tables;
  * the softmax normalisation is deferred to after the AV product (it divides [S, head_dim]
    instead of [S, S]);
  * `query_at` (read-out tokens): a block can compute its output at a few tokens only (queries
    there, keys and values from every token). The Q head reads one token of the last H update, so
    the trainer and the acting loop compute that update only where it is read (hrm_jax.models.hrm).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hrm_jax.config import ModelConfig

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it makes the truncated
# draw have exactly the requested standard deviation (as HRM's trunc_normal_init_ does).
_TRUNC_STD = 0.87962566103423978


def trunc_normal(std: float):
    """Initializer: normal truncated at +-2 sigma, rescaled so the result has standard deviation `std`."""

    def init(key, shape, dtype=jnp.float32):
        return (std / _TRUNC_STD) * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

    return init


def lecun_normal(fan_in: int, scale: float = 1.0):
    """Truncated normal with std scale/sqrt(fan_in) (scale 1: HRM's CastedLinear initialisation)."""
    return trunc_normal(scale / math.sqrt(fan_in))


def compute_dtype(cfg: ModelConfig):
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32


def rms_norm(x: jax.Array, eps: float) -> jax.Array:
    """RMSNorm without weight, computed in float32, returned in the input's dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return y.astype(x.dtype)


def rotary_tables(seq_len: int, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """cos/sin tables of shape [seq_len, head_dim // 2] (float32) for rotate-half RoPE.

    HRM's tables are `cat(freqs, freqs)`; both halves are identical, so only one half is kept.
    Computed with numpy at trace time: they are literal constants of the compiled program.
    """
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    freqs = np.arange(seq_len, dtype=np.float32)[:, None] * inv_freq[None, :]
    return jnp.asarray(np.cos(freqs), jnp.float32), jnp.asarray(np.sin(freqs), jnp.float32)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate-half RoPE on the last axis; cos/sin broadcast against x[..., :hd/2].

    Equivalent to `x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)` with
    `rotate_half(x) = cat(-x2, x1)`, written on the two halves directly so XLA emits one fused
    elementwise loop (the concatenate is an index computation inside that loop, not a copy).
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


class Linear(nn.Module):
    """Bias-free linear layer (LeCun-normal init times `init_scale`), computed in `dtype`, kernel
    stored float32."""

    features: int
    dtype: jnp.dtype = jnp.float32
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, columns: tuple[int, int] | None = None) -> jax.Array:
        """x [..., in] -> [..., features]; `columns` (start, stop): only those output columns."""
        kernel = self.param("kernel", lecun_normal(x.shape[-1], self.init_scale), (x.shape[-1], self.features),
                            jnp.float32)
        if columns is not None:
            kernel = kernel[:, columns[0]:columns[1]]
        # A 2-D matmul over all leading axes: XLA:CPU's gradient of a dot with several batch-like
        # leading axes is about half as fast as that of [N, D] @ [D, F] (docs/results/reproduce_cpu.md)
        y = jnp.dot(x.reshape(-1, x.shape[-1]).astype(self.dtype), kernel.astype(self.dtype))
        return y.reshape(*x.shape[:-1], kernel.shape[1])


def gather_tokens(x: jax.Array, at: jax.Array) -> jax.Array:
    """x [B, S, ...] at token indices at int32[B, K] -> [B, K, ...]."""
    return jnp.take_along_axis(x, at.reshape(at.shape + (1,) * (x.ndim - 2)), axis=1)


class Attention(nn.Module):
    """Non-causal multi-head self-attention, no biases, fused QKV, rotary on q and k."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, query_at: jax.Array | None = None) -> jax.Array:
        """x [B, S, D]; cos, sin [S, hd/2] float32 (see `rotary_tables`). Returns [B, S, D], or with
        `query_at` int32[B, K] the output at those tokens only, [B, K, D] (queries at those tokens,
        keys and values from all S: the same values as the full output gathered there)."""
        cfg = self.cfg
        dt = compute_dtype(cfg)
        B, S, D = x.shape
        H, hd = cfg.heads, cfg.head_dim
        proj = Linear(3 * H * hd, dtype=dt, name="qkv_proj")
        # the softmax scale 1/sqrt(hd) is folded into q's rotary tables
        scale = jnp.array([1.0 / math.sqrt(hd), 1.0], jnp.float32)[:, None, None, None, None]
        if query_at is None:
            qkv = proj(x)                                                   # [B, S, 3*H*hd]
            # Head-major [3, B, H, S, hd]: this transpose fuses into the rotary loop below, and the
            # batched matmuls then need no further copies of q, k or v.
            qkv = jnp.transpose(qkv.reshape(B, S, 3, H, hd), (2, 0, 3, 1, 4))
            # q and k are rotated in one expression.
            qk = apply_rotary(qkv[:2], (cos * scale).astype(dt), (sin * scale).astype(dt))  # [2, B, H, S, hd]
            q, k, v = qk[0], qk[1], qkv[2]
        else:
            K = query_at.shape[1]
            kv = jnp.transpose(proj(x, columns=(H * hd, 3 * H * hd)).reshape(B, S, 2, H, hd), (2, 0, 3, 1, 4))
            k, v = apply_rotary(kv[0], cos.astype(dt), sin.astype(dt)), kv[1]
            q = jnp.transpose(proj(gather_tokens(x, query_at), columns=(0, H * hd)).reshape(B, K, H, hd), (0, 2, 1, 3))
            cq, sq = (gather_tokens(jnp.broadcast_to(t, (B,) + t.shape), query_at)[:, None] * (1.0 / math.sqrt(hd)) for t in (cos, sin))
            q = apply_rotary(q, cq.astype(dt), sq.astype(dt))               # [B, H, K, hd]
        Sq = q.shape[2]
        s = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)  # [B, H, Sq, S]
        # Softmax in float32 with the normalisation deferred to the [Sq, hd] output.
        p = jnp.exp(s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True)))
        denom = jnp.sum(p, axis=-1, keepdims=True)                                         # [B, H, Sq, 1]
        o = jnp.einsum("bhqk,bhkd->bhqd", p.astype(dt), v, preferred_element_type=jnp.float32) / denom
        o = jnp.transpose(o.astype(dt), (0, 2, 1, 3)).reshape(B, Sq, H * hd)
        return Linear(D, dtype=dt, name="o_proj")(o)


class SwiGLU(nn.Module):
    """SwiGLU MLP: fused gate/up projection to 2*inner, silu(gate)*up, down projection."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.cfg
        dt = compute_dtype(cfg)
        inner = cfg.mlp_inner
        gu = Linear(2 * inner, dtype=dt, name="gate_up_proj")(x)
        gate, up = gu[..., :inner], gu[..., inner:]
        return Linear(x.shape[-1], dtype=dt, name="down_proj")(jax.nn.silu(gate) * up)


class Block(nn.Module):
    """Post-norm transformer block: x = rms(x + attn(x)); x = rms(x + mlp(x)).

    The residual adds and the norms run in float32; the result is in the compute dtype."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, query_at: jax.Array | None = None) -> jax.Array:
        """x [B, S, D] -> [B, S, D], or [B, K, D] at the tokens `query_at` int32[B, K] (see Attention)."""
        eps, dt, f32 = self.cfg.rms_eps, compute_dtype(self.cfg), jnp.float32
        x = x.astype(dt)
        res = x if query_at is None else gather_tokens(x, query_at)
        x = rms_norm(res.astype(f32) + Attention(self.cfg, name="self_attn")(x, cos, sin, query_at).astype(f32), eps).astype(dt)
        x = rms_norm(x.astype(f32) + SwiGLU(self.cfg, name="mlp")(x).astype(f32), eps).astype(dt)
        return x


class ReasoningModule(nn.Module):
    """A stack of blocks; `z = module(z, injection)` adds the injection to z, then runs the blocks.
    With `query_at` int32[B, K] the last block computes only those tokens: [B, K, D]."""

    cfg: ModelConfig
    num_layers: int

    @nn.compact
    def __call__(self, z: jax.Array, injection: jax.Array, cos: jax.Array, sin: jax.Array,
                 query_at: jax.Array | None = None) -> jax.Array:
        x = z + injection
        for i in range(self.num_layers):
            x = Block(self.cfg, name=f"block_{i}")(x, cos, sin, query_at if i == self.num_layers - 1 else None)
        return x
