"""FLOP counts (hrm_jax.models.flops) against XLA's cost analysis of the compiled programs."""
import jax
import jax.numpy as jnp
import pytest

from hrm_jax.config import ModelConfig
from hrm_jax.models.flops import act_flops, block_flops, grad_step_flops, q_head_flops, segment_flops
from hrm_jax.models.hrm import init_variables, make_model, run_segments, seed_carry, segment

SEG = jax.jit(segment, static_argnums=(0,), static_argnames=("chunk",))
RUN = jax.jit(run_segments, static_argnums=(0, 4), static_argnames=("with_trace", "chunk", "keep"))


def _xla_flops(compiled) -> float:
    ca = compiled.cost_analysis()
    return float((ca[0] if isinstance(ca, (list, tuple)) else ca)["flops"])


def test_flops_match_xla_cost_analysis():
    # Hidden 64 so the counted matmuls dominate as in the paper configuration; compile only.
    cfg = ModelConfig(H_layers=1, L_layers=1, H_cycles=2, L_cycles=2, segments_per_step=1)
    obs_len, b = 121, 2
    model = make_model(cfg)
    v = jax.eval_shape(lambda k: init_variables(model, k, obs_len), jax.random.key(0))
    tok = jax.ShapeDtypeStruct((b, obs_len), jnp.uint8)
    c = jax.eval_shape(lambda v: seed_carry(model, v, None, b, obs_len), v)
    fwd = SEG.lower(model, v, tok, c, chunk=0).compile()
    assert _xla_flops(fwd) == pytest.approx(segment_flops(cfg, obs_len, b) + q_head_flops(cfg, b), rel=0.2)

    def loss(p, v, t, c):
        return jnp.sum(segment(model, {**v, "params": p}, t, c, chunk=0)[1] ** 2)

    grad = jax.jit(jax.grad(loss)).lower(v["params"], v, tok, c).compile()
    assert _xla_flops(grad) == pytest.approx(grad_step_flops(cfg, obs_len, b), rel=0.2)
    for keep in ("carry", "stored", "none"):
        act = RUN.lower(model, v, tok, c, cfg.segments_per_step, chunk=0, keep=keep).compile()
        assert _xla_flops(act) == pytest.approx(act_flops(cfg, obs_len, b, keep=keep), rel=0.2), keep
    # Sanity of the structure: 4 L passes + 2 H passes per segment; the gradient step ~ (3 + 3*2)/6.
    assert act_flops(cfg, obs_len, b, keep="carry") == segment_flops(cfg, obs_len, b) + q_head_flops(cfg, b)
    # reading out 2 of 122 tokens in the last H update saves most of that block
    saved = act_flops(cfg, obs_len, b, keep="carry") - act_flops(cfg, obs_len, b, keep="stored")
    assert 0.5 * block_flops(cfg, obs_len, b) < saved < block_flops(cfg, obs_len, b)
    assert act_flops(cfg, obs_len, b, keep="none") == act_flops(cfg, obs_len, b, keep="stored")
    assert grad_step_flops(cfg, obs_len, b) > segment_flops(cfg, obs_len, b)
