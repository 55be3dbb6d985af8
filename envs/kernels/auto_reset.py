"""`env.step`: gymnax's auto-reset step with a vmap rule that skips the work most envs don't need.

gymnax's `Environment.step` splits the key into step and reset keys, steps, computes a full
`reset_env` for every env on every call and selects it where the episode ended. Under `jax.vmap`
`AutoResetStep` computes the same values but runs the two expensive parts only where they are
used: the joint door resample (envs that resample this step, ~p_change of them) and the reset
(envs that are done, ~1/40), each gathered into fixed-size chunks by a `lax.while_loop` over as
many chunks as needed (exact for any count). An unbatched call is the same rule on a batch of one,
so there is one implementation (tests/envs check it against gymnax's step, bit for bit).

The env provides the phases (`envs.gridworld.MazeEnv`): `move_and_draw_doors`, `resample_doors`,
`is_truncated`, `reset_state` (per env) and `observation.batch`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from envs.kernels.threefry import split2

# chunk sizes: ceil(n / div) envs per chunk (tuned at 8192 envs)
RESAMPLE_CHUNK_DIV = 16
RESET_CHUNK_DIV = 64


def _chunked(mask: jax.Array, chunk: int, fn, carry):
    """Run `carry = fn(idx, carry)` over the indices of the set entries of bool[n] `mask`, `chunk`
    at a time (idx: int32[chunk], padded with n, which `fn` must ignore: gather clipped, scatter
    with mode="drop"). A `lax.while_loop` over ceil(count / chunk) chunks: exact for any count."""
    n = mask.shape[0]
    idx = jnp.nonzero(mask, size=n + chunk, fill_value=n)[0].astype(jnp.int32)
    count = jnp.sum(mask, dtype=jnp.int32)

    def body(c):
        i, carry = c
        return i + chunk, fn(jax.lax.dynamic_slice(idx, (i,), (chunk,)), carry)

    return jax.lax.while_loop(lambda c: c[0] < count, body, (jnp.int32(0), carry))[1]


def _rows(tree, idx: jax.Array, n: int):
    """Rows idx (clipped to n - 1) of every leaf of `tree`."""
    idx = jnp.minimum(idx, n - 1)
    return jax.tree.map(lambda x: x[idx], tree)


def _put_rows(tree, idx: jax.Array, rows):
    return jax.tree.map(lambda x, r: x.at[idx].set(r, mode="drop"), tree, rows)


class AutoResetStep:
    """`step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)` of
    one env (vmappable) for `env`; info: blocked, invalid_action, terminated, truncated and
    final_observation (the observation before the reset)."""

    def __init__(self, env):
        self.env = env
        self._fns = {}  # treedef of the params -> its custom_vmap function
        self._jit = jax.jit(self._flat, static_argnums=4)

    def __call__(self, key, state, action, params):
        leaves, treedef = jax.tree.flatten(params)
        return self._jit(key, state, action, leaves, treedef)

    def _flat(self, key, state, action, leaves, treedef):
        """The step with params as (leaves, static treedef): custom_vmap builds a pytree of
        in_batched flags like its arguments, and a params object of flags would fail the params'
        own validation."""
        fn = self._fns.get(treedef)
        if fn is None:
            fn = custom_vmap(lambda k, s, a, lv: self._one(treedef, k, s, a, lv))
            fn.def_vmap(lambda n, b, k, s, a, lv: self._batch(n, b, treedef, k, s, a, lv))
            self._fns[treedef] = fn
        return fn(key, state, action, leaves)

    def _one(self, treedef, key, state, action, leaves):
        """One env: the batch rule on a batch of one (params unbatched)."""
        add = lambda x: jnp.asarray(x)[None]
        in_batched = (True, jax.tree.map(lambda _: True, state), True, [False] * len(leaves))
        out, _ = self._batch(1, in_batched, treedef, key[None], jax.tree.map(add, state), add(action), leaves)
        return jax.tree.map(lambda x: x[0], out)

    def _batch(self, n, in_batched, treedef, key, state, action, leaves):
        """The step of a batch of n envs: the per-env part (keys, move, door draw) for all envs; the
        joint door resample only for the envs that resample, the reset only for the envs that are
        done, both in chunks (`_chunked`). Each env gets exactly gymnax's step's values.

        in_batched: custom_vmap's flags, which of key, state leaves, action, params leaves carry
        the batch axis (the others are shared, widened here). Returns (obs uint8[n, obs_len],
        state, reward float32[n], terminated bool[n], truncated bool[n], info), all batched."""
        env = self.env
        kb, sb, ab, pb = in_batched
        widen = lambda x, b: x if b else jnp.broadcast_to(x, (n,) + jnp.shape(x))
        key, action = widen(key, kb), widen(jnp.asarray(action), ab)
        state = jax.tree.map(widen, state, sb)
        params = jax.tree.unflatten(treedef, leaves)  # static fields only; leaves may be batched
        p_axes = [0 if b else None for b in pb]

        def per_env(f, *args, lv=leaves):
            """vmap of f(*args, params) over the envs (args batched; params leaves lv as in pb)."""
            g = lambda *a: f(*a[:-1], jax.tree.unflatten(treedef, a[-1]))
            return jax.vmap(g, in_axes=(0,) * len(args) + (p_axes,))(*args, lv)

        param_rows = lambda idx: [_rows(x, idx, n) if b else x for x, b in zip(leaves, pb)]

        key_step, key_reset = split2(key)
        state_st, reward, terminated, blocked, valid, resample, seed = per_env(env.move_and_draw_doors, key_step,
                                                                             state, action)
        if params.door_dynamics == "joint":

            def resample_chunk(idx, closed):
                new = per_env(env.resample_doors, _rows(seed, idx, n), _rows(state_st, idx, n), lv=param_rows(idx))
                return closed.at[idx].set(new, mode="drop")

            closed = _chunked(resample, -(-n // RESAMPLE_CHUNK_DIV), resample_chunk, state_st.closed_doors)
            state_st = state_st.replace(closed_doors=closed)
        truncated = per_env(env.is_truncated, state_st)
        done = terminated | truncated
        obs_st = env.observation.batch(state_st)

        def reset_chunk(idx, carry):
            states = per_env(env.reset_state, _rows(key_reset, idx, n), lv=param_rows(idx))
            return _put_rows(carry, idx, (env.observation.batch(states), states))

        obs, state = _chunked(done, -(-n // RESET_CHUNK_DIV), reset_chunk, (obs_st, state_st))
        info = {"blocked": blocked, "invalid_action": ~valid, "terminated": terminated, "truncated": truncated,
                "final_observation": obs_st}
        out = (obs, state, reward, terminated, truncated, info)
        return out, jax.tree.map(lambda _: True, out)
