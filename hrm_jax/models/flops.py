"""Analytic FLOP counts of the HRM core (for `--dry-run` and benchmarks).

Conventions:
  * `seq_len` is the number of OBSERVATION tokens T (121 four-rooms, 143 maze), the same number
    `init_variables` takes; the prepended puzzle token is added here (S = T + 1).
  * A matmul [M, K] x [K, N] is 2*M*K*N FLOPs. Counted: the QKV, output, gate/up and down
    projections, the attention products QK^T and AV (2*B*heads*S*S*head_dim each), and the Q head.
    Not counted: elementwise work (norms, softmax, SiLU, rotary, adds) and the embedding gather,
    a few percent of the total at the paper configuration.
  * Backward = 2x forward (input and weight gradients), so forward+backward = 3x forward.
  * Read-out tokens (hrm_jax.models.hrm): where the model computes the last H update only at the tokens
    the Q head reads, that update's last block is counted at those K tokens (queries, output
    projection and MLP at K tokens; keys and values at every token).
"""
from __future__ import annotations

from hrm_jax.config import ModelConfig
from hrm_jax.models.hrm import reads_out


def block_flops(cfg: ModelConfig, seq_len: int, batch: int, queries: int | None = None) -> int:
    """One transformer block's forward over [batch, seq_len + 1, hidden]; with `queries` K, its
    output at K tokens only (layers.Attention query_at)."""
    S = seq_len + 1
    Q = S if queries is None else queries
    M, Mq = batch * S, batch * Q
    D, I, A = cfg.hidden, cfg.mlp_inner, cfg.heads * cfg.head_dim
    proj = 2 * M * D * (2 * A) + 2 * Mq * D * A + 2 * Mq * A * D + 2 * Mq * D * (2 * I) + 2 * Mq * I * D
    attn = 2 * (2 * batch * cfg.heads * Q * S * cfg.head_dim)
    return proj + attn


def q_head_flops(cfg: ModelConfig, batch: int) -> int:
    D = cfg.hidden
    if cfg.q_head in ("last_token_linear", "agent_token_linear"):
        return 2 * batch * D * cfg.vocab_size
    return 2 * batch * D * D + 2 * batch * D * cfg.num_actions


def _passes(cfg: ModelConfig, seq_len: int, batch: int, n_L: int, n_H: int) -> int:
    b = block_flops(cfg, seq_len, batch)
    return (n_L * cfg.L_layers + n_H * cfg.H_layers) * b


def _H_read_out(cfg: ModelConfig, seq_len: int, batch: int, queries: int) -> int:
    """One H-module update computed at `queries` tokens (its earlier blocks at every token)."""
    return (cfg.H_layers - 1) * block_flops(cfg, seq_len, batch) + block_flops(cfg, seq_len, batch, queries)


def segment_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """Forward of one segment: H_cycles*L_cycles L-module passes + H_cycles H-module passes
    (the Q head is not included; see `act_flops`)."""
    return _passes(cfg, seq_len, batch, cfg.H_cycles * cfg.L_cycles, cfg.H_cycles)


def act_flops(cfg: ModelConfig, seq_len: int, batch: int, keep: str = "stored") -> int:
    """One acting step's model forward (`model.run_segments` with `keep`; acting: "stored", the
    target network: "none"): `segments_per_step` segments + the Q head once, the last H update at
    the 2 read-out tokens where the model does that."""
    full = cfg.segments_per_step * segment_flops(cfg, seq_len, batch) + q_head_flops(cfg, batch)
    if not reads_out(cfg, keep):
        return full
    return full - _passes(cfg, seq_len, batch, 0, 1) + _H_read_out(cfg, seq_len, batch, 2)


def grad_step_flops(cfg: ModelConfig, seq_len: int, batch: int) -> int:
    """One 1-step-gradient segment update (`jax.grad` of a loss on `segment`'s Q):
    the no-grad part forward (H_cycles*L_cycles - 1 L passes, H_cycles - 1 H passes) plus the
    final L and H passes and the Q head at 3x their forward (forward + backward). With a Q head
    that reads one token, the final H pass with gradient runs at that token only, and the full one
    (for the carry) is forward only. The target network's forward, if any, is not included (it is
    `act_flops(..., keep="none")` and counted by the caller)."""
    no_grad = _passes(cfg, seq_len, batch, cfg.H_cycles * cfg.L_cycles - 1, cfg.H_cycles - 1)
    if cfg.q_head == "mlp":
        return no_grad + 3 * (_passes(cfg, seq_len, batch, 1, 1) + q_head_flops(cfg, batch))
    with_grad = _passes(cfg, seq_len, batch, 1, 0) + _H_read_out(cfg, seq_len, batch, 1) + q_head_flops(cfg, batch)
    return no_grad + _passes(cfg, seq_len, batch, 0, 1) + 3 * with_grad
