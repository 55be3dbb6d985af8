"""The DQN trainer: replay contents and the z off-by-one, targets, Polyak, epsilon, seeds."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrm_jax import acting, config as C
from hrm_jax.models.hrm import StoredZ, run_segments, seed_carry
from hrm_jax.algos.common import epsilon_schedule, seed_keys
from hrm_jax.algos.dqn import dqn_targets, make_train


def tiny(**train):
    cfg = C.TINY
    return C.validate(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train)))


@pytest.fixture(scope="module")
def prefilled():
    """Only collection (learning_starts large): every transition was acted with the initial params."""
    cfg = tiny(num_envs=8, learning_starts=8 * 90, buffer_capacity=1024, batch_size=8)  # > 80 steps: truncations happen
    tr = make_train(cfg)
    state = jax.jit(tr.init)(jax.random.key(3))
    return cfg, tr, state


def _buffer_items(state, n):
    exp = state.buffer.experience
    return jax.tree.map(lambda x: np.asarray(x[0, :n]), exp)  # item buffer: [1, capacity, ...]


def test_buffer_contents_and_z_off_by_one(prefilled):
    cfg, tr, state = prefilled
    N = cfg.train.num_envs
    T = tr.prefill_iters
    assert T == 90 and int(state.env_steps) == N * T
    items = _buffer_items(state, N * T)
    # item buffer with add_batches: row t*N + i is env i at collection t
    get = lambda x: x.reshape((T, N) + x.shape[1:])
    obs, nxt, act, rew = get(items.obs), get(items.next_obs), get(items.action), get(items.reward)
    term, trunc = get(items.terminated), get(items.truncated)
    prev_z = jax.tree.map(get, items.prev_z)
    next_z = jax.tree.map(get, items.next_z)
    assert obs.dtype == np.uint8 and obs.shape == (T, N, tr.obs_len) and act.dtype == np.int32
    assert set(np.unique(act)) <= {0, 1, 2, 3}
    assert np.isin(rew, np.float32([-0.01, 0.0, 1.0])).all()
    np.testing.assert_array_equal(rew == 1.0, term)
    variables = {"params": state.params, "constants": state.constants}
    z0 = acting.initial_z(tr.model, variables, 1, tr.obs_len)
    done = term | trunc
    assert done.any() and (~done).any()
    for t in range(T - 1):
        for i in range(N):
            if done[t, i]:
                # episode boundary: the next step starts from H_init/L_init, on a fresh observation
                np.testing.assert_allclose(prev_z.z_H[t + 1, i], np.asarray(z0.z_H[0]), rtol=0, atol=0)
                np.testing.assert_allclose(prev_z.z_L[t + 1, i], np.asarray(z0.z_L[0]), rtol=0, atol=0)
            else:
                # the seed used at t+1 is exactly the converged z stored at t; obs chains
                np.testing.assert_array_equal(prev_z.z_H[t + 1, i], next_z.z_H[t, i])
                np.testing.assert_array_equal(prev_z.z_L[t + 1, i], next_z.z_L[t, i])
                np.testing.assert_array_equal(obs[t + 1, i], nxt[t, i])
    # the converged z stored at t is what acting from prev_z on obs gives (recomputed here)
    t = 5
    z_in = StoredZ(z_H=jnp.asarray(prev_z.z_H[t]), z_L=jnp.asarray(prev_z.z_L[t]))
    q, z_out, _ = acting.act(tr.model, variables, jnp.asarray(obs[t]), z_in, cfg.model.segments_per_step)
    np.testing.assert_allclose(np.asarray(z_out.z_H), next_z.z_H[t], atol=1e-5)
    np.testing.assert_allclose(np.asarray(z_out.z_L), next_z.z_L[t], atol=1e-5)
    # first collection starts every env from the initial z
    np.testing.assert_array_equal(prev_z.z_H[0], np.broadcast_to(np.asarray(z0.z_H[0]), prev_z.z_H[0].shape))


def test_dqn_targets(prefilled):
    cfg, tr, state = prefilled
    variables = {"params": state.params, "constants": state.constants}
    items = jax.tree.map(lambda x: jnp.asarray(x[0, :6]), state.buffer.experience)
    batch = items.replace(terminated=jnp.array([True, False, True, False, False, True]),
                          reward=jnp.array([1.0, 0.0, 1.0, -0.01, 0.0, 1.0], jnp.float32))
    y = dqn_targets(tr.model, variables, batch, 0.9, cfg.model.segments_per_step)
    carry = seed_carry(tr.model, variables, batch.next_z, 6, tr.obs_len)
    _, q_next, _ = run_segments(tr.model, variables, batch.next_obs, carry, cfg.model.segments_per_step)
    expect = np.where(np.asarray(batch.terminated), np.asarray(batch.reward),
                      np.asarray(batch.reward) + 0.9 * np.asarray(q_next).max(-1))
    np.testing.assert_allclose(np.asarray(y), expect, rtol=1e-6, atol=1e-6)


def test_double_dqn_targets_value_the_online_argmax_with_the_target_net(prefilled):
    cfg, tr, state = prefilled
    target = {"params": state.params, "constants": state.constants}
    # a different online net: the target's params perturbed, so the two argmaxes disagree somewhere
    leaves, tdef = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [x + 0.5 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    online = {"params": jax.tree.unflatten(tdef, noisy), "constants": state.constants}
    batch = jax.tree.map(lambda x: jnp.asarray(x[0, :32]), state.buffer.experience)
    batch = batch.replace(terminated=jnp.arange(32) % 5 == 0)
    S = cfg.model.segments_per_step

    def q_next(v):
        carry = seed_carry(tr.model, v, batch.next_z, 32, tr.obs_len)
        return np.asarray(run_segments(tr.model, v, batch.next_obs, carry, S)[1])

    q_t, q_o = q_next(target), q_next(online)
    a = q_o.argmax(-1)
    assert (a != q_t.argmax(-1)).any()  # else the test could not tell double from plain DQN
    y = dqn_targets(tr.model, target, batch, 0.9, S, online_vars=online)
    keep = 1.0 - np.asarray(batch.terminated, np.float32)
    expect = np.asarray(batch.reward) + 0.9 * keep * q_t[np.arange(32), a]
    np.testing.assert_allclose(np.asarray(y), expect, rtol=1e-5, atol=1e-6)
    # with the online net equal to the target net it is plain DQN
    same = dqn_targets(tr.model, target, batch, 0.9, S, online_vars=target)
    np.testing.assert_allclose(np.asarray(same), np.asarray(dqn_targets(tr.model, target, batch, 0.9, S)),
                               rtol=1e-6, atol=1e-6)


def test_double_dqn_flag_reaches_the_trainer(monkeypatch):
    import hrm_jax.algos.dqn as train_mod
    seen = []
    real = train_mod.dqn_targets

    def spy(model, target_vars, batch, discount, n_segments, online_vars=None):
        seen.append(online_vars is not None)
        return real(model, target_vars, batch, discount, n_segments, online_vars)

    monkeypatch.setattr(train_mod, "dqn_targets", spy)
    tr = make_train(tiny(double_dqn=True, eval_envs=8))
    # tracing is enough to see the wiring (the values are checked above); compiling would cost ~15 s
    s0 = jax.eval_shape(tr.init, jax.random.key(0))
    _, m = jax.eval_shape(tr.chunk, s0)
    assert seen and all(seen)  # traced with the online net's variables
    assert m["loss"].shape == () and m["loss"].dtype == jnp.float32


@pytest.mark.parametrize("polyak", [0.0, 1.0])
def test_polyak_extremes(polyak):
    cfg = tiny(polyak=polyak, eval_envs=8)
    tr = make_train(cfg)
    s0 = jax.jit(tr.init)(jax.random.key(0))
    s1, _ = jax.jit(tr.chunk)(s0)
    expect = s1.params if polyak == 0.0 else s0.params
    for a, b in zip(jax.tree.leaves(s1.target_params), jax.tree.leaves(expect)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the online network did change, so the check above is not vacuous
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s0.params)))


def test_target_is_a_copy_at_init(prefilled):
    _, _, state = prefilled
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state.target_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_epsilon_schedule():
    cfg = C.PAPER
    eps = epsilon_schedule(cfg)
    assert float(eps(0)) == pytest.approx(1.0)
    assert float(eps(150_000)) == pytest.approx(1.0 - 0.85 / 2)
    assert float(eps(300_000)) == pytest.approx(0.15)
    assert float(eps(10**7)) == pytest.approx(0.15)


def test_seeds_differ_and_are_deterministic():
    cfg = tiny()
    tr = make_train(cfg)
    init = jax.jit(jax.vmap(tr.init))
    s = init(seed_keys(0, 2))
    leaf = np.asarray(jax.tree.leaves(s.params)[0])
    assert not np.array_equal(leaf[0], leaf[1])  # each seed its own init
    assert not np.array_equal(np.asarray(s.obs[0]), np.asarray(s.obs[1]))  # and its own env stream
    s2 = init(seed_keys(0, 2))
    np.testing.assert_array_equal(leaf, np.asarray(jax.tree.leaves(s2.params)[0]))
    # agents 1.. started on their own (a sweep adding seeds) get the keys a larger run gives them
    np.testing.assert_array_equal(jax.random.key_data(seed_keys(0, 2, first=1)),
                                  jax.random.key_data(seed_keys(0, 3))[1:])


def test_train_is_one_jittable_function():
    cfg = tiny(total_grad_steps=40, eval_every=20, eval_envs=8)
    tr = make_train(cfg)
    state, metrics = jax.jit(tr.train)(jax.random.key(1))
    assert metrics["grad_steps"].tolist() == [20, 40]
    assert int(state.grad_step) == 40
    assert np.isfinite(np.asarray(metrics["loss"])).all()


# -- n-step returns (an option; the authors' DQN is 1-step) ------------------------------------

def test_dqn_targets_take_a_discount_per_transition(prefilled):
    cfg, tr, state = prefilled
    variables = {"params": state.params, "constants": state.constants}
    batch = jax.tree.map(lambda x: jnp.asarray(x[0, :4]), state.buffer.experience)
    batch = batch.replace(terminated=jnp.array([False, False, True, False]))
    discount = jnp.array([0.9, 0.81, 0.9, 0.729], jnp.float32)
    y = dqn_targets(tr.model, variables, batch, discount, cfg.model.segments_per_step)
    carry = seed_carry(tr.model, variables, batch.next_z, 4, tr.obs_len)
    _, q_next, _ = run_segments(tr.model, variables, batch.next_obs, carry, cfg.model.segments_per_step)
    expect = np.asarray(batch.reward) + np.where([False, False, True, False], 0.0,
                                                 np.asarray(discount) * np.asarray(q_next).max(-1))
    np.testing.assert_allclose(np.asarray(y), expect, rtol=1e-6, atol=1e-6)


def test_n_step_replay_keeps_each_env_in_time_order_and_trains():
    N, n = 8, 3
    cfg = tiny(num_envs=N, n_step=n, learning_starts=8 * 60, buffer_capacity=1024, batch_size=16,
               total_grad_steps=20, eval_every=20, eval_envs=8)
    tr = make_train(cfg)
    state = jax.jit(tr.init)(jax.random.key(5))
    T = tr.prefill_iters
    assert T == 60 + n - 1 and int(state.env_steps) == N * T
    exp = jax.tree.map(np.asarray, state.buffer.experience)   # trajectory buffer: [N envs, time, ...]
    assert exp.obs.shape == (N, 1024 // N, tr.obs_len)
    done = (exp.terminated | exp.truncated)[:, :T]
    assert done.any()
    cont = ~done[:, :-1]
    # within an episode each env's next step starts where the previous one ended, from its z
    np.testing.assert_array_equal(exp.obs[:, 1:T][cont], exp.next_obs[:, :T - 1][cont])
    np.testing.assert_array_equal(exp.prev_z.z_L[:, 1:T][cont], exp.next_z.z_L[:, :T - 1][cont])
    # sampled n-step transitions are windows of that layout
    batch, discount = jax.jit(tr.replay.sample)(state.buffer, jax.random.key(0))
    assert batch.obs.shape == (16, tr.obs_len)
    powers = np.float32(cfg.train.gamma) ** np.arange(1, n + 1, dtype=np.float32)
    k = np.argmin(np.abs(np.asarray(discount)[:, None] - powers), 1) + 1   # steps counted per transition
    np.testing.assert_allclose(np.asarray(discount), powers[k - 1], rtol=1e-6)
    ended = np.asarray(batch.terminated | batch.truncated)
    assert (ended | (k == n)).all()  # a window is cut short only by an episode's end
    # and the trainer runs on them
    state, metrics = jax.jit(tr.chunk)(state)
    assert int(metrics["grad_steps"]) == 20 and np.isfinite(float(metrics["loss"]))



def test_eval_net_target_evaluates_the_target_network(prefilled):
    """--eval-net target: greedy evaluation acts with the Polyak-averaged target network, i.e. it
    equals evaluating a state whose online network is that target network."""
    cfg, tr, state = prefilled
    state = state.replace(target_params=jax.tree.map(lambda x: x * 0.5 + 0.1, state.params))
    on_target = make_train(C.validate(C.override(cfg, "train", eval_net="target")))
    key = jax.random.key(7)
    got = jax.jit(on_target.evaluate)(state, key)
    want = jax.jit(tr.evaluate)(state.replace(params=state.target_params), key)
    online = jax.jit(tr.evaluate)(state, key)
    assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in want.items()}
    assert float(got["eval_return"]) != float(online["eval_return"])  # the two networks act differently
    assert acting.policy_params(state, "target") is state.target_params
    assert acting.policy_params(state, "online") is state.params
    with pytest.raises(C.ConfigError, match="eval_net='target' needs a target network"):
        C.validate(C.override(C.override(cfg, "train", eval_net="target"), "train", algo="pqn"))
