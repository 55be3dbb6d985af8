"""Acting with the HRM: all segments of one environment step, epsilon-greedy, and greedy
evaluation inside jit. Shared by the trainer, evaluation and the analysis of z."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

import envs
from hrm_jax.config import EnvConfig
from hrm_jax.models import StoredZ, run_segments, seed_carry, to_stored


def make_env(cfg: EnvConfig):
    """(env, env_params) from a validated EnvConfig (config.validate); -1 counts mean the env's
    default. The env's params check the counts against the map (ValueError, one line)."""
    kw: dict[str, Any] = dict(max_steps_in_episode=cfg.max_steps, p_change=cfg.p_change,
                              door_dynamics=cfg.door_dynamics, blocked_reward=cfg.blocked_reward)
    if cfg.name == "four_rooms":
        if cfg.closed_doors != -1:
            kw["closed_doors"] = cfg.closed_doors
    elif cfg.name == "corridor_maze":
        if cfg.fixed_walls != -1:
            kw["fixed_walls"] = cfg.fixed_walls
        if cfg.closed_doors != -1:
            kw["dynamic_doors"] = cfg.closed_doors
    if cfg.goal_row != -1:
        kw["goal"] = (cfg.goal_row, cfg.goal_col)
    return envs.make(cfg.name, **kw)


def policy_params(state, eval_net: str):
    """The parameters greedy evaluation acts with (TrainConfig.eval_net): the online network, or
    DQN's Polyak-averaged target network."""
    return state.target_params if eval_net == "target" else state.params


def initial_z(model, variables, batch: int, obs_len: int) -> StoredZ:
    """The stored z an episode starts from (H_init / L_init)."""
    return to_stored(model, seed_carry(model, variables, None, batch, obs_len))


def act(model, variables, obs: jax.Array, z: StoredZ, n_segments: int, with_trace: bool = False):
    """Run all segments of one environment step from the stored seed z.

    obs: uint8[B, T]. Returns q f32[B, A], the converged z (StoredZ), and the per-segment trace
    (dict z_H, z_L: f32[n_segments, B, D] of the last token) when with_trace.
    """
    carry = seed_carry(model, variables, z, obs.shape[0], obs.shape[1])
    stored, q, trace = run_segments(model, variables, obs, carry, n_segments, with_trace=with_trace, keep="stored")
    return q, stored, trace


def select_where(done: jax.Array, a, b):
    """Per-env select on pytrees whose leaves have a leading env axis: done ? a : b."""
    def sel(x, y):
        d = done.reshape(done.shape + (1,) * (x.ndim - done.ndim))
        return jnp.where(d, x, y)
    return jax.tree.map(sel, a, b)


def epsilon_greedy(key, q: jax.Array, eps: jax.Array) -> jax.Array:
    """int32[B] actions: uniform random with probability eps per env, else argmax q."""
    k_explore, k_action = jax.random.split(key)
    explore = jax.random.uniform(k_explore, q.shape[:1]) < eps
    random_a = jax.random.randint(k_action, q.shape[:1], 0, q.shape[-1])
    return jnp.where(explore, random_a, jnp.argmax(q, -1)).astype(jnp.int32)


def greedy_rollout(model, variables, env, env_params, key, n_envs: int, n_segments: int, z_carry: str,
                   max_steps: int, with_trace: bool = False):
    """Greedy episodes on `n_envs` fresh environments (no auto-reset), up to the step limit.

    Returns dict: success (bool[n]), length (int32[n]: steps taken, the limit if never done),
    optimal (int32[n]: BFS length at reset, -1 if the goal was cut off), return (f32[n]).
    With with_trace, the loop is a fixed-length scan and the per-step records are returned too
    (for the analysis of z): trace z_H/z_L f32[T, n_segments, n, D], states, actions, q f32[T, n, A], active.
    """
    k_reset, k_steps = jax.random.split(key)
    obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, n_envs), env_params)
    optimal = jax.vmap(env.optimal_path_length)(state)
    z0 = initial_z(model, variables, n_envs, obs.shape[-1])

    def step(c, t):
        key = jax.random.fold_in(k_steps, t)
        obs, state, z, done, success, length, ret = c
        q, z_next, trace = act(model, variables, obs, z, n_segments, with_trace)
        action = jnp.argmax(q, -1).astype(jnp.int32)
        obs2, state2, reward, term, _ = jax.vmap(env.step_env, (0, 0, 0, None))(
            jax.random.split(key, n_envs), state, action, env_params)
        active = ~done
        success = success | (active & term)
        length = length + active
        ret = ret + jnp.where(active, reward, 0.0)
        done = done | term | (state2.time >= env_params.max_steps_in_episode)
        z_next = z0 if z_carry == "reset" else z_next
        out = (obs2, state2, z_next, done, success, length, ret)
        rec = dict(trace=trace, state=state, action=action, q=q, active=active, reward=reward) if with_trace else None
        return out, rec

    zeros_b = jnp.zeros((n_envs,), bool)
    c0 = (obs, state, z0, zeros_b, zeros_b, jnp.zeros((n_envs,), jnp.int32), jnp.zeros((n_envs,), jnp.float32))
    if with_trace:
        c, recs = jax.lax.scan(step, c0, jnp.arange(max_steps))
    else:
        def cond(cc):
            t, c = cc
            return (t < max_steps) & ~jnp.all(c[3])

        def body(cc):
            t, c = cc
            c, _ = step(c, t)
            return t + 1, c

        _, c = jax.lax.while_loop(cond, body, (jnp.int32(0), c0))
        recs = None
    _, _, _, _, success, length, ret = c
    out = dict(success=success, length=length, optimal=optimal, ret=ret)
    if with_trace:
        out["records"] = recs
    return out


def summarize_eval(ev: dict) -> dict:
    """Scalars from a greedy rollout: success fraction, mean length, mean BFS-optimal length
    (over episodes whose goal was reachable at reset), mean return."""
    reachable = ev["optimal"] >= 0
    opt = jnp.sum(jnp.where(reachable, ev["optimal"], 0)) / jnp.maximum(jnp.sum(reachable), 1)
    return dict(eval_success=jnp.mean(ev["success"].astype(jnp.float32)),
                eval_length=jnp.mean(ev["length"].astype(jnp.float32)),
                eval_optimal=opt.astype(jnp.float32),
                eval_return=jnp.mean(ev["ret"]))
