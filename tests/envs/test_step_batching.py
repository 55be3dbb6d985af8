"""The batched step (MazeEnv's vmap rule) and the unrolled threefry give exactly what the plain
per-env computation gives: gymnax's `Environment.step` under vmap, jax.random's split and bits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment

import envs
from envs.kernels import room_graph, threefry

N = 256


def gymnax_step(env):
    """gymnax's own Environment.step (reset for every env, auto-reset by select), unjitted."""
    return lambda k, s, a, p: environment.Environment.step.__wrapped__(env, k, s, a, p)


def assert_same(a, b):
    la, lb = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def batch(env, params, key, n=N, spread_time=True):
    _, st = jax.vmap(env.reset, (0, None))(jax.random.split(key, n), params)
    if spread_time:  # many envs truncate this step
        st = st.replace(time=jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, params.max_steps_in_episode))
    return st


CASES = [("four_rooms", {}), ("four_rooms", {"door_dynamics": "independent", "p_change": 0.3}),
         ("corridor_maze", {}), ("corridor_maze", {"p_change": 1.0}), ("corridor_maze", {"p_change": 0.0}),
         ("corridor_maze", {"door_dynamics": "independent", "p_change": 0.2}),
         ("corridor_maze", {"fixed_walls": 0, "dynamic_doors": 0})]


@pytest.mark.parametrize("name,kw", CASES)
def test_vmapped_step_equals_gymnax_step(name, kw):
    env, params = envs.make(name, **kw)
    st = batch(env, params, jax.random.key(3))
    keys = jax.random.split(jax.random.key(4), N)
    actions = jax.random.randint(jax.random.key(5), (N,), 0, 4)
    ours = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))(keys, st, actions, params)
    ref = jax.jit(jax.vmap(gymnax_step(env), (0, 0, 0, None)))(keys, st, actions, params)
    assert bool(ours[3].any() | ours[4].any())  # some envs were reset
    assert_same(ours, ref)
    # one env, no vmap
    one = lambda t: jax.tree.map(lambda x: x[7], t)
    assert_same(env.step(keys[7], one(st), int(actions[7]), params), one(ref))


def test_vmapped_step_variants():
    """Unbatched key/state/action leaves, batched params, raw uint32 keys, nested vmap, scan."""
    env, params = envs.make("corridor_maze")
    ref_step = gymnax_step(env)
    st = batch(env, params, jax.random.key(6))
    keys = jax.random.split(jax.random.key(7), N)
    a = jax.random.randint(jax.random.key(8), (N,), 0, 4)
    run = lambda f, axes, *args: jax.jit(jax.vmap(f, axes))(*args)
    # the same key and action for every env
    assert_same(run(env.step, (None, 0, None, None), keys[0], st, 2, params),
                run(ref_step, (None, 0, None, None), keys[0], st, 2, params))
    # per-env params: axis 0 maps every pytree leaf (p_change, max_steps, the bump penalty)
    p = params.replace(p_change=jnp.linspace(0.0, 1.0, N), max_steps_in_episode=jnp.arange(N) % 80 + 1,
                       blocked_reward=-jnp.linspace(0.0, 0.5, N))
    assert_same(run(env.step, (0, 0, 0, 0), keys, st, a, p), run(ref_step, (0, 0, 0, 0), keys, st, a, p))
    # raw uint32 keys
    raw = jax.random.key_data(keys)
    assert_same(run(env.step, (0, 0, 0, None), raw, st, a, params), run(ref_step, (0, 0, 0, None), raw, st, a, params))
    # nested vmap (seeds x envs), as the trainer does
    nest = lambda f: jax.jit(jax.vmap(jax.vmap(f, (0, 0, 0, None)), (0, 0, 0, None)))
    shape2 = lambda t: jax.tree.map(lambda x: x.reshape((4, N // 4) + x.shape[1:]), t)
    assert_same(nest(env.step)(shape2(keys), shape2(st), shape2(a), params),
                nest(ref_step)(shape2(keys), shape2(st), shape2(a), params))

    # a scan with auto-resets, aligned starts (all envs truncate together at step 80)
    def roll(step):
        def body(s, k):
            ka, ks = jax.random.split(k)
            out = jax.vmap(step, (0, 0, 0, None))(jax.random.split(ks, N), s, jax.random.randint(ka, (N,), 0, 4), params)
            return out[1], out
        return jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(9), 90))[1])
    st0 = batch(env, params, jax.random.key(10), spread_time=False)
    ours, ref = roll(env.step)(st0), roll(ref_step)(st0)
    assert int(np.asarray(ours[4]).sum(1).max()) > N // 2
    assert_same(ours, ref)


@pytest.mark.parametrize("make_key", [lambda s: jax.random.key(s), lambda s: jax.random.PRNGKey(s),
                                      lambda s: jax.random.key(s, impl="rbg")])
def test_split2_and_random_bits_equal_jax_random(make_key):
    for seed in (0, 1, 12345):
        key = make_key(seed)
        k0, k1 = threefry.split2(key)
        ref = jax.random.split(key)
        data = lambda k: np.asarray(jax.random.key_data(k) if jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key) else k)
        np.testing.assert_array_equal(data(k0), data(ref[0]))
        np.testing.assert_array_equal(data(k1), data(ref[1]))
        for n in (1, 2, 4, 7):
            np.testing.assert_array_equal(np.asarray(threefry.random_bits(key, n)),
                                          np.asarray(jax.random.bits(key, (n,), jnp.uint32)))
    keys = jax.vmap(make_key)(jnp.arange(1000))
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda k: threefry.random_bits(k, 4))(keys)),
                                  np.asarray(jax.vmap(lambda k: jax.random.bits(k, (4,), jnp.uint32))(keys)))


def test_rooms_connected_matches_layer_flood():
    """The corridor-at-a-time flood decides exactly as a one-room-per-layer flood (29 layers)."""
    rng = np.random.default_rng(0)
    n = 20000
    open_c = rng.random((n, room_graph.N_CAND)) < rng.uniform(0.3, 1.0, (n, 1))
    src = (1 << rng.integers(0, 30, n)).astype(np.uint32)
    dst = (1 << rng.integers(0, 30, n)).astype(np.uint32)
    got = np.asarray(jax.jit(jax.vmap(room_graph.rooms_connected))(jnp.asarray(open_c), src, dst))
    bit, is_h = room_graph._CAND_BIT, room_graph._CAND_IS_H
    east = np.bitwise_or.reduce(np.where(open_c & is_h, bit, 0).astype(np.uint32), axis=1)
    south = np.bitwise_or.reduce(np.where(open_c & ~is_h, bit, 0).astype(np.uint32), axis=1)
    r = src.copy()
    for _ in range(29):
        r = r | ((r & east) << 1) | ((r >> 1) & east) | ((r & south) << 6) | ((r >> 6) & south)
    want = (r & dst) != 0
    assert 0.2 < want.mean() < 0.95
    np.testing.assert_array_equal(got, want)
