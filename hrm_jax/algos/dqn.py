"""The DQN trainer: `make_train(config)` -> functions that run entirely inside `jit`.

One *iteration* (docs/reference.md §3): act with all segments (epsilon-greedy per env) -> vmapped
env step (gymnax auto-reset) -> replay add -> `grad_steps_per_collect` gradient steps, organised
as minibatches of `supervision_segments` deep-supervision steps (each a 1-step-gradient segment
starting from the previous step's detached carry; targets from the target net run for all
segments from the stored converged z) -> a Polyak target update after every gradient step.

A *chunk* is `eval_every` gradient steps of iterations in one `lax.scan`, followed by a greedy
evaluation; it returns a few scalars. The run driver (hrm_jax/runner.py) calls the jitted chunk
repeatedly, so the program compiles once whatever the run length, and progress, logging and
checkpoints happen between chunks. `train(key)` is the same thing as one jittable function.

Seeds: every function works on one agent; `jax.vmap` over keys (or a `lax.map` loop over the
stacked states, `hrm_jax.sharding.over_seeds`) runs N independent agents (own init, env stream,
exploration) in one program.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from hrm_jax import acting
from hrm_jax.algos.common import (Trainer, act_and_step, deep_supervision, epsilon_schedule, make_chunk, make_evaluate,
                                  make_optimizer, param_count)
from hrm_jax.config import Config
from hrm_jax.models import StoredZ, init_variables, make_model, run_segments, seed_carry, stored_z_shape
from hrm_jax.replay import Transition, example_transition, make_replay


class TrainState(struct.PyTreeNode):
    params: Any                 # online network (trainable)
    target_params: Any          # target network
    constants: Any              # H_init / L_init (never trained)
    opt_state: Any
    buffer: Any                 # flashbax buffer state
    env_state: Any              # batched EnvState [num_envs]
    obs: jax.Array              # uint8[num_envs, T]
    z: StoredZ                  # the seed for the next acting step, per env
    ep_return: jax.Array        # f32[num_envs] running return of the current episodes
    key: jax.Array
    eval_key: jax.Array         # evaluation draws its own stream (independent of eval frequency)
    grad_step: jax.Array        # int32
    env_steps: jax.Array        # int32 transitions collected


def dqn_targets(model, target_vars, batch: Transition, discount, n_segments: int, online_vars=None) -> jax.Array:
    """y = r + discount * (1 - terminated) * max_a Q_target(s', a); truncation bootstraps.
    `discount`: gamma, or gamma^k per transition (f32[B]) for k-step returns.
    The target net runs all segments on s' from the stored converged z. With `online_vars` (double
    DQN) the online net, run the same way, picks the action and the target net's Q of it is used."""
    B, L = batch.next_obs.shape[:2]

    def q_of(vars_):
        _, q, _ = run_segments(model, vars_, batch.next_obs, seed_carry(model, vars_, batch.next_z, B, L), n_segments,
                               keep="none")
        return q

    q_next = q_of(target_vars)
    if online_vars is None:
        v_next = jnp.max(q_next, -1)
    else:
        a_next = jnp.argmax(q_of(online_vars), -1)
        v_next = jnp.take_along_axis(q_next, a_next[:, None], -1)[:, 0]
    y = batch.reward + discount * (1.0 - batch.terminated.astype(jnp.float32)) * v_next
    return jax.lax.stop_gradient(y)


def make_train(cfg: Config, shard_batch: Callable | None = None) -> Trainer:
    """`shard_batch` (data-parallel mode, see hrm_jax.sharding): applied to pytrees whose leaves have a
    leading env / minibatch axis (the replay minibatch, the reset environments) to split that axis
    over devices; None = identity (the single-device program, unchanged)."""
    m, t, e = cfg.model, cfg.train, cfg.env
    env, env_params = acting.make_env(e)
    model = make_model(m, env.maze.obs_shape[1])
    obs_len = env.obs_len
    N, B, S, G = t.num_envs, t.batch_size, t.supervision_segments, t.grad_steps_per_collect
    minibatches_per_iter = G // S
    iters_per_chunk = t.eval_every // G
    num_chunks = math.ceil(t.total_grad_steps / t.eval_every)
    # n-step windows need n - 1 more steps of every env before the first full window exists
    prefill_iters = math.ceil(max(B, t.learning_starts) / N) + t.n_step - 1
    tx = make_optimizer(cfg)
    eps_fn = epsilon_schedule(cfg)
    z_shape = stored_z_shape(m, obs_len)
    replay = make_replay(t.buffer_capacity, B, max(B, t.learning_starts), N, t.n_step, t.gamma)
    shard = shard_batch if shard_batch is not None else (lambda tree: tree)

    def variables(params, constants):
        return {"params": params, "constants": constants}

    def collect(state: TrainState, eps: jax.Array):
        """One vectorised env step with all segments, its transitions added to replay; returns the
        new state and episode stats."""
        state, step, stats = act_and_step(cfg, model, env, env_params, state, eps)
        tr = Transition(obs=step["obs"], action=step["action"], reward=step["reward"], next_obs=step["next_obs"],
                        terminated=step["terminated"], truncated=step["truncated"], prev_z=step["prev_z"],
                        next_z=step["next_z"])
        return state.replace(buffer=replay.add(state.buffer, tr)), stats

    def learn_minibatch(state: TrainState, key):
        """Sample one minibatch; S deep-supervision gradient steps on it, the target net following each."""
        batch, discount = replay.sample(state.buffer, key)
        batch = shard(batch)
        consts = state.constants
        online = variables(state.params, consts) if t.double_dqn else None
        y = dqn_targets(model, variables(state.target_params, consts), batch, discount, m.segments_per_step, online)
        return deep_supervision(cfg, model, tx, state, batch.obs, batch.action, batch.prev_z, y, polyak=t.polyak)

    def iteration(state: TrainState, _):
        eps = eps_fn(state.grad_step)
        state, stats = collect(state, eps)
        key, k_learn = jax.random.split(state.key)
        state = state.replace(key=key)
        state, lstats = jax.lax.scan(learn_minibatch, state, jax.random.split(k_learn, minibatches_per_iter))
        lstats = dict(loss=jnp.mean(lstats["loss"]), q_mean=jnp.mean(lstats["q_mean"]),
                      first_bad_step=jnp.min(lstats["first_bad_step"]))
        return state, {**stats, **lstats, "epsilon": eps}

    evaluate = make_evaluate(cfg, model, env, env_params)

    def init(key) -> TrainState:
        k_model, k_env, k_state, k_eval = jax.random.split(key, 4)
        vars_ = init_variables(model, k_model, obs_len)
        params, constants = vars_["params"], vars_["constants"]
        obs, env_state = shard(jax.vmap(env.reset, (0, None))(jax.random.split(k_env, N), env_params))
        z0 = acting.initial_z(model, vars_, N, obs_len)
        state = TrainState(
            params=params,
            target_params=jax.tree.map(jnp.copy, params),  # a COPY (the authors' code initialised it independently)
            constants=constants, opt_state=tx.init(params),
            buffer=replay.init(example_transition(obs_len, z_shape)),
            env_state=env_state, obs=obs, z=z0, ep_return=jnp.zeros((N,), jnp.float32),
            key=k_state, eval_key=k_eval, grad_step=jnp.int32(0), env_steps=jnp.int32(0))
        # Fill replay with one batch (or learning_starts) before the first gradient step.
        state, _ = jax.lax.scan(lambda s, _: collect(s, eps_fn(0)), state, None, length=prefill_iters)
        return state

    chunk, train = make_chunk(iteration, evaluate, init, iters_per_chunk, num_chunks)
    return Trainer(config=cfg, model=model, env=env, env_params=env_params, obs_len=obs_len,
                   iters_per_chunk=iters_per_chunk, prefill_iters=prefill_iters, num_chunks=num_chunks,
                   init=init, chunk=chunk, evaluate=evaluate, train=train, param_count=param_count(model, obs_len),
                   replay=replay, learn_minibatch=learn_minibatch)
