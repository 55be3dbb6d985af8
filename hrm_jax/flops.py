"""Analytic FLOP counts of the HRM core (for `--dry-run` and benchmarks).

Conventions:
  * `seq_len` is the number of OBSERVATION tokens T (121 four-rooms, 143 maze), the same number
    `init_variables` takes; the prepended puzzle token is added here (S = T + 1).
  * A matmul [M, K] x [K, N] is 2*M*K*N FLOPs. Counted: the QKV, output, gate/up and down
    projections, the attention products QK^T and AV (2*B*heads*S*S*head_dim each), and the Q head.
    Not counted: elementwise work (norms, softmax, SiLU, rotary, adds) and the embedding gather,
    a few percent of the total at the paper configuration.
  * Backward = 2x forward (input and weight gradients), so forward+backward = 3x forward.
"""
from __future__ import annotations

from hrm_jax.config import ModelConfig


def block_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """One transformer block's forward over [batch, seq_len + 1, hidden]."""
    S = seq_len + 1
    M = batch * S
    D, I, A = cfg.hidden, cfg.mlp_inner, cfg.heads * cfg.head_dim
    proj = 2 * M * D * (3 * A) + 2 * M * A * D + 2 * M * D * (2 * I) + 2 * M * I * D
    attn = 2 * (2 * batch * cfg.heads * S * S * cfg.head_dim)
    return proj + attn


def q_head_flops(cfg: ModelConfig, batch: int) -> int:
    D = cfg.hidden
    if cfg.q_head in ("last_token_linear", "agent_token_linear"):
        return 2 * batch * D * cfg.vocab_size
    return 2 * batch * D * D + 2 * batch * D * cfg.num_actions


def _passes(cfg: ModelConfig, seq_len: int, batch: int, n_L: int, n_H: int) -> int:
    b = block_flops(cfg, seq_len, batch)
    return (n_L * cfg.L_layers + n_H * cfg.H_layers) * b


def segment_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """Forward of one segment: H_cycles*L_cycles L-module passes + H_cycles H-module passes
    (the Q head is not included; see `act_flops`)."""
    return _passes(cfg, seq_len, batch, cfg.H_cycles * cfg.L_cycles, cfg.H_cycles)


def act_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """One acting step's model forward: `segments_per_step` segments + the Q head once."""
    return cfg.segments_per_step * segment_flops(cfg, seq_len, batch) + q_head_flops(cfg, batch)


def grad_step_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """One 1-step-gradient segment update (`jax.grad` of a loss on `segment`'s Q):
    the no-grad part forward (H_cycles*L_cycles - 1 L passes, H_cycles - 1 H passes) plus the
    final L and H passes and the Q head at 3x their forward (forward + backward). The target
    network's forward, if any, is not included (it is `act_flops`-like and counted by the caller)."""
    no_grad = _passes(cfg, seq_len, batch, cfg.H_cycles * cfg.L_cycles - 1, cfg.H_cycles - 1)
    with_grad = _passes(cfg, seq_len, batch, 1, 1) + q_head_flops(cfg, batch)
    return no_grad + 3 * with_grad
