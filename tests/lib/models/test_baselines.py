"""The baseline Q-networks (hrm_jax/models/baselines.py): the same function as the layers they
stand for, shapes and gradients through the trainer's model API, and DQN learning a small
fixed-goal task with them (the loop works without the HRM)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.maps import AGENT, FLOOR, GOAL, WALL_V
from hrm_jax.algos import make_train
from hrm_jax.config import FIXED_GOAL, TINY, override, validate
from hrm_jax.models import init_variables, make_model, run_segments, seed_carry, segment, stored_z_shape, to_stored
from hrm_jax.models.baselines import GLYPHS, Conv3x3, one_hot_glyphs


def test_conv3x3_is_a_same_padded_convolution():
    x = jax.random.normal(jax.random.key(1), (3, 11, 13, 8))
    conv = Conv3x3(5)
    v = conv.init(jax.random.key(0), x)
    ref = nn.Conv(5, (3, 3), padding="SAME").apply({"params": v["params"]}, x)
    np.testing.assert_allclose(conv.apply(v, x), ref, atol=1e-5)


def test_one_hot_glyphs():
    tokens = jnp.array([[FLOOR, AGENT, GOAL, WALL_V]], jnp.uint8)
    oh = one_hot_glyphs(tokens, 131)
    assert oh.shape == (1, 4, len(GLYPHS))
    np.testing.assert_array_equal(oh.sum(-1), 1.0)
    assert [GLYPHS[i] for i in np.argmax(oh[0], -1)] == [FLOOR, AGENT, GOAL, WALL_V]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_baseline_shapes_and_gradients(arch):
    cfg = validate(override(TINY, "model", arch=arch)).model
    model = make_model(cfg, 11)
    v = init_variables(model, jax.random.key(0), 121)
    tokens = jax.random.choice(jax.random.key(1), jnp.array(GLYPHS, jnp.uint8), (5, 121))
    carry = seed_carry(model, v, None, 5, 121)
    stored = to_stored(model, carry)
    assert stored.z_H.shape == (5,) + stored_z_shape(cfg, 121) == (5, 1)
    new, q = segment(model, v, tokens, carry)
    assert q.shape == (5, cfg.num_actions) and new is carry
    _, q2, trace = run_segments(model, v, tokens, carry, 2, with_trace=True, keep="stored")
    np.testing.assert_allclose(q, q2, atol=1e-6)  # every segment is the same forward pass
    assert trace["z_H"].shape == (2, 5, 1)
    g = jax.grad(lambda p: jnp.sum(segment(model, {**v, "params": p}, tokens, carry)[1]))(v["params"])
    norms = {"/".join(str(getattr(k, "key", k)) for k in path): float(jnp.linalg.norm(x))
             for path, x in jax.tree_util.tree_flatten_with_path(g)[0]}
    assert all(np.isfinite(n) for n in norms.values())
    assert norms["q/kernel"] > 0 and norms["q/bias"] > 0
    first = "hidden_1_dense/kernel" if arch == "mlp" else "conv_1/kernel"
    assert norms[first] > 0, norms  # the gradient reaches the first layer


def test_cnn_needs_whole_rows():
    cfg = validate(override(TINY, "model", arch="cnn")).model
    with pytest.raises(ValueError, match="grid_width=7"):
        init_variables(make_model(cfg, 7), jax.random.key(0), 121)


def test_mlp_baseline_learns_single_goal_four_rooms():
    """DQN with the MLP on four-rooms with the goal fixed in a corner (starts and doors random):
    greedy success rises from below a random policy's (~0.14 for this goal) to >= 0.6 within 3,000
    gradient steps (2026-12-07: 0.47 at 1,500 and 0.97 at 2,000 steps, ~6 s of training; chance
    level and a broken loop stay below 0.2)."""
    cfg = validate(override(override(FIXED_GOAL, "model", arch="mlp"), "train", eval_every=500, total_grad_steps=3000))
    tr = make_train(cfg)
    state = jax.jit(tr.init)(jax.random.key(0))
    chunk = jax.jit(tr.chunk)
    curve = []
    for _ in range(tr.num_chunks):
        state, m = chunk(state)
        curve.append(float(m["eval_success"]))
        if curve[-1] >= 0.6:
            break
    assert curve[0] < 0.3 and max(curve) >= 0.6, curve
