"""Tests of the HRM core (hrm_jax/models/: layers.py, hrm.py; flops.py: test_flops.py). Tiny configurations: < 60 s on 2 cores."""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrm_jax.config import ModelConfig
from hrm_jax.models.layers import Linear, rms_norm, rotary_tables
from hrm_jax.acting import initial_z, select_where
from hrm_jax.models.hrm import (HRM, Carry, StoredZ, count_params, init_variables, make_model, readout_tokens,
                           run_segments, seed_carry, segment, to_stored)

# Small but structurally complete: H_cycles = L_cycles = 2, so the no-gradient part has L, L, H, L.
TINY = ModelConfig(hidden=32, heads=2, H_layers=1, L_layers=1, H_cycles=2, L_cycles=2, segments_per_step=2)
# Same parameters, one L and one H pass per segment: for tests where the cycle structure does not matter.
FLAT = dataclasses.replace(TINY, H_cycles=1, L_cycles=1)
T = 9
B = 3

# Shared jitted entry points, so tests with the same model and shapes share one compilation.
SEG = jax.jit(segment, static_argnums=(0,), static_argnames=("chunk",))
RUN = jax.jit(run_segments, static_argnums=(0, 4), static_argnames=("with_trace", "chunk", "keep"))


def _tokens(key, batch, length):
    return jax.random.randint(key, (batch, length), 0, 128).astype(jnp.uint8)


def _close(actual, desired, tol=1e-4):
    """Equal up to float32 reassociation: |a - d| <= tol * (|d| + max|d|)."""
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol * float(np.abs(desired).max()) + 1e-7)


def _random_carry(key, batch, length, hidden):
    k1, k2 = jax.random.split(key)
    shape = (batch, length + 1, hidden)
    return Carry(z_H=jax.random.normal(k1, shape), z_L=jax.random.normal(k2, shape))


@pytest.fixture(scope="module")
def tiny():
    model = make_model(TINY)
    variables = init_variables(model, jax.random.key(0), T)
    # A non-zero puzzle embedding so its path is exercised too.
    variables["params"]["puzzle_emb"] = 0.1 * jax.random.normal(jax.random.key(9), (1, TINY.hidden))
    return model, variables


# -- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("act_head, extra", [(False, 0), (True, 130)])
def test_param_count_paper_config(act_head, extra):
    model = make_model(ModelConfig(build_act_head=act_head))
    v = jax.eval_shape(lambda k: init_variables(model, k, 121), jax.random.key(0))
    assert set(v) == {"params", "constants"}
    assert count_params(v["params"], exclude=("puzzle_emb",)) == 541_056 + extra
    assert count_params(v["params"]) == 541_056 + 64 + extra
    assert v["params"]["puzzle_emb"].shape == (1, 64)
    assert {k: a.shape for k, a in v["constants"].items()} == {"H_init": (64,), "L_init": (64,)}
    # 8 blocks x 65,536 + embedding 131 x 64 + output 64 x 131.
    assert count_params(v["params"]["L_level"]) == count_params(v["params"]["H_level"]) == 4 * 65_536
    assert v["params"]["embed_tokens"]["embedding"].shape == (131, 64)
    assert v["params"]["lm_head"]["kernel"].shape == (64, 131)


def test_init_statistics():
    model = make_model(ModelConfig(H_layers=1, L_layers=1))
    v = init_variables(model, jax.random.key(1), 121)
    p = v["params"]
    assert np.all(np.asarray(p["puzzle_emb"]) == 0)
    qkv = np.asarray(p["L_level"]["block_0"]["self_attn"]["qkv_proj"]["kernel"])
    # LeCun: std exactly 1/sqrt(fan_in) after truncation (HRM's trunc_normal_init_ rescales the
    # underlying normal by 1/0.8796 and clips at 2 of its sigmas).
    assert abs(qkv.std() - 1 / 8) < 0.01 and 0.25 < np.abs(qkv).max() <= 2 / 8 / 0.8796 + 1e-6
    down = np.asarray(p["H_level"]["block_0"]["mlp"]["down_proj"]["kernel"])
    assert abs(down.std() - 1 / 16) < 0.005
    emb = np.asarray(p["embed_tokens"]["embedding"])
    assert abs(emb.std() - 1 / 8) < 0.01
    both = np.concatenate([np.asarray(v["constants"]["H_init"]), np.asarray(v["constants"]["L_init"])])
    assert 0.6 < both.std() < 1.4 and np.abs(both).max() <= 2 / 0.8796 + 1e-6
    assert not np.allclose(v["constants"]["H_init"], v["constants"]["L_init"])


def test_vmap_init_gives_different_agents():
    model = make_model(FLAT)
    v = jax.jit(jax.vmap(lambda k: init_variables(model, k, T)))(jax.random.split(jax.random.key(3), 2))
    for leaf in jax.tree_util.tree_leaves(v["params"]["L_level"]):
        assert not np.allclose(leaf[0], leaf[1])
    assert not np.allclose(v["constants"]["H_init"][0], v["constants"]["H_init"][1])
    # And the acting function vmaps over the agents: equal to running each alone.
    tok = _tokens(jax.random.key(4), 2, T)
    run = lambda vv: run_segments(model, vv, tok, seed_carry(model, vv, None, 2, T), 2)[1]
    run = jax.jit(run)
    qv = jax.jit(jax.vmap(run))(v)
    for i in range(2):
        _close(qv[i], run(jax.tree_util.tree_map(lambda a: a[i], v)))


# -- shapes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("obs_len, mode", [(121, "last_token"), (143, "full")])
def test_shapes(obs_len, mode):
    cfg = dataclasses.replace(TINY, H_cycles=1, L_cycles=1, z_carry=mode)
    model = make_model(cfg)
    v = init_variables(model, jax.random.key(0), obs_len)
    b, S, D = 2, obs_len + 1, cfg.hidden
    tok = _tokens(jax.random.key(1), b, obs_len)
    carry = seed_carry(model, v, None, b, obs_len)
    assert carry.z_H.shape == carry.z_L.shape == (b, S, D)
    new, q = SEG(model, v, tok, carry)
    assert q.shape == (b, cfg.num_actions) and q.dtype == jnp.float32
    assert new.z_H.shape == new.z_L.shape == (b, S, D) and new.z_H.dtype == jnp.float32
    fin, q2, trace = RUN(model, v, tok, carry, 3, with_trace=True)
    assert q2.shape == (b, cfg.num_actions) and fin.z_H.shape == (b, S, D)
    assert trace["z_H"].shape == trace["z_L"].shape == (3, b, D)
    stored = to_stored(model, fin)
    want = (b, S, D) if mode == "full" else (b, D)
    assert stored.z_H.shape == stored.z_L.shape == want
    assert initial_z(model, v, b, obs_len).z_H.shape == want
    assert jax.eval_shape(lambda v, t, c: run_segments(model, v, t, c, 2), v, tok, carry)[2] is None


@pytest.mark.parametrize("q_head, act", [("mlp", False), ("last_token_linear", True)])
def test_other_heads_run(q_head, act):
    cfg = dataclasses.replace(TINY, q_head=q_head, build_act_head=act)
    model = make_model(cfg)
    v = init_variables(model, jax.random.key(0), T)
    assert ("act_head" in v["params"]) == act and ("q_mlp_1" in v["params"]) == (q_head == "mlp")
    tok = _tokens(jax.random.key(1), B, T)
    _, q = SEG(model, v, tok, seed_carry(model, v, None, B, T))
    assert q.shape == (B, cfg.num_actions) and np.all(np.isfinite(q))


@pytest.mark.parametrize("q_head", ["last_token_linear", "mlp"])
def test_q_init_scale_scales_only_the_q_heads_initial_weights(q_head):
    tok = _tokens(jax.random.key(1), B, T)

    def init_q(scale):
        model = make_model(dataclasses.replace(FLAT, q_head=q_head, q_init_scale=scale))
        v = init_variables(model, jax.random.key(0), T)
        return v, SEG(model, v, tok, seed_carry(model, v, None, B, T))[1]

    head = "lm_head" if q_head == "last_token_linear" else "q_mlp_2"
    v1, q1 = init_q(1.0)
    v01, q01 = init_q(0.1)
    v0, q0 = init_q(0.0)
    _close(q01, 0.1 * np.asarray(q1), tol=1e-5)         # same draw, a tenth of it
    np.testing.assert_array_equal(np.asarray(q0), 0.0)  # every Q starts at 0
    for name in v1["params"]:
        same = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), v1["params"][name],
                                            v01["params"][name]))
        assert all(same) == (name != head), name  # every other parameter is initialised as before


def test_agent_token_head_reads_the_agent_cell():
    """agent_token_linear: Q = lm_head(z_H at the '@' token), found per sequence in the observation
    (+1 for the puzzle token); moving the '@' moves the read-out, and run_segments agrees."""
    cfg = dataclasses.replace(TINY, q_head="agent_token_linear")
    model = make_model(cfg)
    v = init_variables(model, jax.random.key(0), T)
    tok = np.array(_tokens(jax.random.key(1), B, T))
    tok[tok == ord("@")] = ord(".")
    where = np.array([0, 4, T - 1])
    tok[np.arange(B), where] = ord("@")
    tok = jnp.asarray(tok)
    carry = seed_carry(model, v, None, B, T)
    _, z_H = model.apply(v, model.apply(v, tok, method=HRM.embed), carry, method=HRM.reason)
    kernel = v["params"]["lm_head"]["kernel"]
    want = np.einsum("bd,da->ba", np.asarray(z_H)[np.arange(B), where + 1], np.asarray(kernel))[:, :cfg.num_actions]
    _, q = SEG(model, v, tok, carry)
    np.testing.assert_allclose(np.asarray(q), want, rtol=1e-5, atol=1e-5)
    last = np.einsum("bd,da->ba", np.asarray(z_H)[:, -1], np.asarray(kernel))[:, :cfg.num_actions]
    assert not np.allclose(want[:2], last[:2], atol=1e-3)  # rows 0, 1: the agent is not the last token
    _, q_run, _ = RUN(model, v, tok, carry, 1)
    np.testing.assert_allclose(np.asarray(q_run), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos", ["learned2d", "rope+learned2d"])
def test_grid_positions_are_row_plus_column(pos):
    """learned2d: the position vector of cell (r, c) is (row[r] + col[c]) / sqrt(2), so the step
    from one column to another is the same in every row; the puzzle token has its own vector; the
    row/column tables get gradients; rotary positions only with rope+learned2d. On the corridor
    maze's 11 x 13 grid (143 tokens); a width that does not divide the tokens is refused."""
    Hh, W = 11, 13
    cfg = dataclasses.replace(FLAT, pos_encoding=pos)
    model = make_model(cfg, grid_width=W)
    v = init_variables(model, jax.random.key(0), Hh * W)
    emb = v["params"]["embed_pos"]
    assert emb["row"].shape == (Hh, cfg.hidden) and emb["col"].shape == (W, cfg.hidden) and emb["first"].shape == (1, cfg.hidden)
    table = np.asarray(model.apply(v, 1 + Hh * W, method=lambda m, n: m.embed_pos(n)))
    assert table.shape == (1 + Hh * W, cfg.hidden)
    np.testing.assert_allclose(table[0], emb["first"][0])
    grid = table[1:].reshape(Hh, W, cfg.hidden)
    np.testing.assert_allclose(grid[4, 7], (emb["row"][4] + emb["col"][7]) / np.sqrt(2), rtol=1e-5, atol=1e-6)
    step = grid[:, 5] - grid[:, 2]  # column 2 -> 5 in every row
    np.testing.assert_allclose(step, np.broadcast_to(step[0], step.shape), rtol=1e-5, atol=1e-6)
    cos, sin = model.apply(v, 8, method=HRM.rotary)
    assert np.allclose(sin, 0.0) == (pos == "learned2d")
    tok = _tokens(jax.random.key(1), 2, Hh * W)
    carry = seed_carry(model, v, None, 2, Hh * W)
    g = jax.grad(lambda p: jnp.sum(segment(model, {**v, "params": p}, tok, carry)[1]))(v["params"])
    assert float(jnp.abs(g["embed_pos"]["row"]).sum()) > 0 and float(jnp.abs(g["embed_pos"]["col"]).sum()) > 0
    with pytest.raises(ValueError, match="not rows of grid_width=12"):
        init_variables(make_model(cfg, grid_width=12), jax.random.key(0), Hh * W)
    with pytest.raises(ValueError, match="grid_width=0"):
        init_variables(make_model(cfg), jax.random.key(0), Hh * W)


# -- the 1-step gradient --------------------------------------------------------------------------

def test_no_grad_part_has_no_gradient(tiny):
    model, v = tiny
    tok = _tokens(jax.random.key(1), B, T)
    carry = _random_carry(jax.random.key(2), B, T, TINY.hidden)
    w = jax.random.normal(jax.random.key(3), (B, TINY.num_actions))

    def loss_segment(params, carry):
        _, q = segment(model, {**v, "params": params}, tok, carry)
        return jnp.sum(q * w)

    g_params, g_carry = jax.jit(jax.grad(loss_segment, argnums=(0, 1)))(v["params"], carry)
    new, q = SEG(model, v, tok, carry)
    assert np.all(np.asarray(g_carry.z_H) == 0) and np.all(np.asarray(g_carry.z_L) == 0)

    # Hand-written: the no-grad part (L, L, H, L for H_cycles = L_cycles = 2) on constants, then
    # ONE differentiable L-then-H update and the output head on the last token's z_H.
    cos, sin = rotary_tables(T + 1, TINY.head_dim, TINY.rope_theta)
    L = lambda p, z, inj: model.apply({**v, "params": p}, z, inj, method=lambda m, z, i: m.L_level(z, i, cos, sin))
    H = lambda p, z, inj: model.apply({**v, "params": p}, z, inj, method=lambda m, z, i: m.H_level(z, i, cos, sin))
    emb = lambda p: model.apply({**v, "params": p}, tok, method=HRM.embed)
    p0 = v["params"]
    x0 = jax.jit(emb)(p0)
    Lj, Hj = jax.jit(L), jax.jit(H)
    zH, zL = carry.z_H, carry.z_L
    zL = Lj(p0, zL, zH + x0)
    zL = Lj(p0, zL, zH + x0)
    zH = Hj(p0, zH, zL)
    zL = Lj(p0, zL, zH + x0)
    zH, zL = np.asarray(zH), np.asarray(zL)          # concrete: no gradient can flow through them

    def loss_hand(p):
        zL2 = L(p, zL, zH + emb(p))
        zH2 = H(p, zH, zL2)
        q = zH2[:, -1] @ p["lm_head"]["kernel"][:, : TINY.num_actions]
        return jnp.sum(q * w), (zH2, zL2, q)

    g_hand, (zH2, zL2, q_hand) = jax.jit(jax.grad(loss_hand, has_aux=True))(p0)
    _close(q, q_hand)
    _close(new.z_H, zH2)
    _close(new.z_L, zL2)
    flat_seg = jax.tree_util.tree_leaves_with_path(g_params)
    flat_hand = dict(jax.tree_util.tree_leaves_with_path(g_hand))
    assert len(flat_seg) == len(flat_hand)
    for path, g in flat_seg:
        _close(g, flat_hand[path], 1e-3)
    # The gradient is not trivially zero, and reaches the puzzle embedding and the token embedding.
    assert np.abs(np.asarray(g_params["puzzle_emb"])).max() > 0
    assert np.abs(np.asarray(g_params["embed_tokens"]["embedding"])).max() > 0


def test_chunked_equals_unchunked_with_gradient(tiny):
    _, v = tiny
    model = make_model(FLAT)
    b = 5                                   # chunk 2 -> 3 chunks with padding
    tok = _tokens(jax.random.key(5), b, T)
    carry = _random_carry(jax.random.key(6), b, T, TINY.hidden)

    def loss(params, chunk):
        new, q = segment(model, {**v, "params": params}, tok, carry, chunk=chunk)
        return jnp.sum(q ** 2), (new, q)

    vg = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    (l0, (n0, q0)), g0 = vg(v["params"], 0)
    (l1, (n1, q1)), g1 = vg(v["params"], 2)
    _close(q1, q0)
    _close(n1.z_H, n0.z_H)
    for a, c in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)):
        _close(a, c, 1e-3)


# -- segments, trace ------------------------------------------------------------------------------

def test_run_segments_equals_successive_segments(tiny):
    model, v = tiny
    b, n = 5, 3
    tok = _tokens(jax.random.key(7), b, T)
    carry = seed_carry(model, v, None, b, T)
    fin, q, trace = RUN(model, v, tok, carry, n, with_trace=True, chunk=2)
    seg = functools.partial(SEG, model, chunk=0)
    c = carry
    for k in range(n):
        c, qk = seg(v, tok, c)
        _close(trace["z_H"][k], c.z_H[:, -1])
        _close(trace["z_L"][k], c.z_L[:, -1])
    _close(fin.z_H, c.z_H)
    _close(fin.z_L, c.z_L)
    _close(q, qk)
    np.testing.assert_array_equal(trace["z_H"][-1], fin.z_H[:, -1])
    np.testing.assert_array_equal(trace["z_L"][-1], fin.z_L[:, -1])
    # Segments change z (the trace is not constant).
    assert not np.allclose(trace["z_H"][0], trace["z_H"][1])


def test_run_segments_has_no_gradient(tiny):
    _, v = tiny
    model = make_model(FLAT)
    tok = _tokens(jax.random.key(8), B, T)
    carry = _random_carry(jax.random.key(2), B, T, TINY.hidden)
    g = jax.jit(jax.grad(lambda p: jnp.sum(run_segments(model, {**v, "params": p}, tok, carry, 2)[1])))(v["params"])
    assert all(np.all(np.asarray(a) == 0) for a in jax.tree_util.tree_leaves(g))


# -- read-out tokens ------------------------------------------------------------------------------

# Two blocks per module (the first runs every token, the last only the read-out tokens) and two
# cycles, so the read-out sits after a full no-gradient part.
DEEP = dataclasses.replace(TINY, H_layers=2, L_layers=2, segments_per_step=3)


@pytest.mark.parametrize("q_head", ["last_token_linear", "agent_token_linear"])
def test_read_out_tokens_equal_the_full_computation(q_head):
    """The last H update computed at the read-out tokens only gives the full update's values there
    (the module's output, Q, every parameter's gradient, the acting step's stored z and trace, the
    target net's Q), while the other tokens still change the result through keys and values."""
    cfg = dataclasses.replace(DEEP, q_head=q_head)
    model = make_model(cfg)
    v = init_variables(model, jax.random.key(0), T)
    tok = np.array(_tokens(jax.random.key(1), B, T))
    tok[tok == ord("@")] = ord(".")
    tok[np.arange(B), [0, 4, T - 1]] = ord("@")
    tok = jnp.asarray(tok)
    carry = _random_carry(jax.random.key(2), B, T, cfg.hidden)
    at = readout_tokens(cfg, tok)
    want_q_token = [1, 5, T] if q_head == "agent_token_linear" else [T] * B
    np.testing.assert_array_equal(np.asarray(at), np.stack([want_q_token, [T] * B], axis=1))

    # the module: the read-out equals the full output gathered, and depends on the other tokens
    cos, sin = rotary_tables(T + 1, cfg.head_dim, cfg.rope_theta)
    Hm = lambda z, inj, q=None: model.apply(v, z, inj, method=lambda m, z, i: m.H_level(z, i, cos, sin, q))
    full = np.asarray(Hm(carry.z_H, carry.z_L))
    _close(Hm(carry.z_H, carry.z_L, at), full[np.arange(B)[:, None], np.asarray(at)])
    other = carry.z_L.at[:, 2].add(1.0)  # token 2 is never read out here
    assert not np.allclose(np.asarray(Hm(carry.z_H, other, at)), np.asarray(Hm(carry.z_H, carry.z_L, at)), atol=1e-4)

    # one training segment: Q and the gradients against the full update + the full Q head
    w = jax.random.normal(jax.random.key(3), (B, cfg.num_actions))

    def loss_reference(p):
        vv = {**v, "params": p}
        x = model.apply(vv, tok, method=HRM.embed)
        new, z_H = model.apply(vv, x, carry, method=HRM.reason)
        return jnp.sum(model.apply(vv, z_H, tok, method=HRM.q_values) * w), new

    def loss_read_out(p):
        new, q = segment(model, {**v, "params": p}, tok, carry)
        return jnp.sum(q * w), new

    (l_ref, new_ref), g_ref = jax.jit(jax.value_and_grad(loss_reference, has_aux=True))(v["params"])
    (l_new, new_new), g_new = jax.jit(jax.value_and_grad(loss_read_out, has_aux=True))(v["params"])
    _close(l_new, l_ref)
    for a, b in zip(jax.tree_util.tree_leaves((new_new, g_new)), jax.tree_util.tree_leaves((new_ref, g_ref))):
        _close(a, b)
    assert float(jnp.abs(g_new["H_level"]["block_1"]["mlp"]["down_proj"]["kernel"]).sum()) > 0

    # acting and the target net: the same Q, stored z and trace as every token computed
    fin, q_full, tr_full = RUN(model, v, tok, carry, cfg.segments_per_step, with_trace=True)
    stored, q_st, tr_st = RUN(model, v, tok, carry, cfg.segments_per_step, with_trace=True, keep="stored")
    none, q_none, _ = RUN(model, v, tok, carry, cfg.segments_per_step, keep="none")
    assert none is None and isinstance(stored, StoredZ) and stored.z_H.shape == (B, cfg.hidden)
    for a, b in zip(jax.tree_util.tree_leaves((q_st, q_none, stored, tr_st)),
                    jax.tree_util.tree_leaves((q_full, q_full, to_stored(model, fin), tr_full))):
        _close(a, b)
    with pytest.raises(ValueError, match="keep='all'; allowed: carry, stored, none"):
        run_segments(model, v, tok, carry, 1, keep="all")


# -- z between environment steps ------------------------------------------------------------------

def test_last_token_seeding_broadcasts(tiny):
    model, v = tiny
    S = T + 1
    stored = StoredZ(z_H=jax.random.normal(jax.random.key(1), (B, TINY.hidden)),
                     z_L=jax.random.normal(jax.random.key(2), (B, TINY.hidden)))
    c = seed_carry(model, v, stored, B, T)
    assert c.z_H.shape == (B, S, TINY.hidden)
    for s in range(S):
        np.testing.assert_array_equal(c.z_H[:, s], stored.z_H)
        np.testing.assert_array_equal(c.z_L[:, s], stored.z_L)
    # None -> H_init / L_init everywhere.
    c0 = seed_carry(model, v, None, B, T)
    np.testing.assert_array_equal(c0.z_H, np.broadcast_to(v["constants"]["H_init"], c0.z_H.shape))
    np.testing.assert_array_equal(c0.z_L, np.broadcast_to(v["constants"]["L_init"], c0.z_L.shape))
    # to_stored keeps the last token; seeding from it reproduces a broadcast of that token.
    new, _ = SEG(model, v, _tokens(jax.random.key(3), B, T), c)
    st = to_stored(model, new)
    np.testing.assert_array_equal(st.z_H, new.z_H[:, -1])
    np.testing.assert_array_equal(seed_carry(model, v, st, B, T).z_L[:, 0], new.z_L[:, -1])


def test_reset_mode_ignores_stored(tiny):
    _, v = tiny
    model = make_model(dataclasses.replace(FLAT, z_carry="reset"))
    stored = StoredZ(z_H=jnp.full((B, TINY.hidden), 7.0), z_L=jnp.full((B, TINY.hidden), -7.0))
    c = seed_carry(model, v, stored, B, T)
    c0 = seed_carry(model, v, None, B, T)
    np.testing.assert_array_equal(c.z_H, c0.z_H)
    np.testing.assert_array_equal(c.z_L, c0.z_L)
    np.testing.assert_array_equal(c.z_H[:, 3], np.broadcast_to(v["constants"]["H_init"], (B, TINY.hidden)))
    tok = _tokens(jax.random.key(1), B, T)
    q, q0 = RUN(model, v, tok, c, 2)[1], RUN(model, v, tok, c0, 2)[1]
    np.testing.assert_array_equal(q, q0)
    assert to_stored(model, c).z_H.shape == (B, TINY.hidden)      # same shapes as last_token


def test_full_mode_round_trips(tiny):
    _, v = tiny
    model = make_model(dataclasses.replace(FLAT, z_carry="full"))
    carry = _random_carry(jax.random.key(4), B, T, TINY.hidden)
    st = to_stored(model, carry)
    assert st.z_H.shape == (B, T + 1, TINY.hidden)
    back = seed_carry(model, v, st, B, T)
    np.testing.assert_array_equal(back.z_H, carry.z_H)
    np.testing.assert_array_equal(back.z_L, carry.z_L)
    # The whole per-token z matters: different positions seeded differently give a different Q.
    tok = _tokens(jax.random.key(1), B, T)
    _, q_full = SEG(model, v, tok, back)
    lt = make_model(FLAT)
    _, q_last = SEG(lt, v, tok, seed_carry(lt, v, to_stored(lt, carry), B, T))
    assert not np.allclose(q_full, q_last)


def test_z_reset_where_episodes_ended(tiny):
    """What the learners do at episode ends: acting.select_where(done, initial_z, z)."""
    model, v = tiny
    seed = StoredZ(z_H=jnp.ones((4, TINY.hidden)), z_L=2 * jnp.ones((4, TINY.hidden)))
    init = initial_z(model, v, 4, T)
    done = jnp.array([True, False, False, True])
    out = select_where(done, init, seed)
    for b in range(4):
        want = init if done[b] else seed
        np.testing.assert_array_equal(out.z_H[b], want.z_H[b])
        np.testing.assert_array_equal(out.z_L[b], want.z_L[b])
    full = make_model(dataclasses.replace(TINY, z_carry="full"))
    fi = initial_z(full, v, 4, T)
    fo = select_where(done, fi, StoredZ(z_H=jnp.zeros_like(fi.z_H), z_L=jnp.zeros_like(fi.z_L)))
    np.testing.assert_array_equal(fo.z_H[0], fi.z_H[0])
    np.testing.assert_array_equal(fo.z_H[1], 0)


# -- numerics -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 8), (3, 7, 8), (2, 3, 4, 8)])
def test_linear_is_a_matmul_on_the_last_axis_with_its_gradient(shape):
    """Linear flattens the leading axes into one 2-D matmul (faster gradients on XLA:CPU): the same
    function, and the same gradients, as x @ W on any number of leading axes."""
    x = jax.random.normal(jax.random.key(0), shape)
    lin = Linear(6)
    v = lin.init(jax.random.key(1), x)
    W = v["params"]["kernel"]
    assert W.shape == (8, 6)
    np.testing.assert_allclose(lin.apply(v, x), jnp.einsum("...d,df->...f", x, W), rtol=1e-5, atol=1e-6)
    dy = jax.random.normal(jax.random.key(2), shape[:-1] + (6,))
    gW, gx = jax.grad(lambda v, x: jnp.vdot(lin.apply(v, x), dy), (0, 1))(v, x)
    np.testing.assert_allclose(gW["params"]["kernel"], jnp.einsum("...d,...f->df", x, dy), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, jnp.einsum("...f,df->...d", dy, W), rtol=1e-5, atol=1e-5)


def test_rms_norm_float32_and_unit_rms():
    x = (jax.random.normal(jax.random.key(0), (4, 7, 32)) * 30).astype(jnp.bfloat16)
    y = rms_norm(x, 1e-5)
    assert y.dtype == jnp.bfloat16
    r = np.sqrt(np.mean(np.asarray(y, np.float32) ** 2, axis=-1))
    np.testing.assert_allclose(r, 1.0, rtol=2e-2)


def test_bfloat16_close_to_float32(tiny):
    _, v = tiny
    model = make_model(FLAT)
    model16 = make_model(dataclasses.replace(FLAT, dtype="bfloat16"))
    tok = _tokens(jax.random.key(1), B, T)
    c = seed_carry(model, v, None, B, T)
    f32, q32, _ = RUN(model, v, tok, c, 2)
    f16, q16, _ = RUN(model16, v, tok, c, 2)
    assert q16.dtype == jnp.float32 and f16.z_H.dtype == jnp.float32
    assert np.all(np.isfinite(q16))
    # z is RMS-normalised (unit scale): bf16 (8-bit mantissa) through 4 blocks stays within a few %.
    assert np.sqrt(np.mean((np.asarray(f16.z_H) - np.asarray(f32.z_H)) ** 2)) < 0.1
    np.testing.assert_allclose(q16, q32, atol=0.1 * float(np.abs(q32).max()) + 0.02)
    # ... and the gradient path compiles and is finite in bf16.
    g = jax.jit(jax.grad(lambda p: jnp.sum(segment(model16, {**v, "params": p}, tok, c)[1])))(v["params"])
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g))
