"""PQN, an on-policy Q-learner (Gallici et al. 2024, "Simplifying deep temporal difference learning";
TrainConfig.algo "pqn"). Not HRM-Agent's: the on-policy variant its paper names as future work.

No replay buffer and no target network. One *iteration*:

  1. rollout: `pqn_rollout_steps` (T) vectorised env steps of all `num_envs` (N) envs, acting as DQN
     does (all segments per step from the carried z, epsilon-greedy, z reset at episode ends), keeping
     obs, action, reward, terminated, truncated, the z each step started from (`prev_z`), and the
     greedy value max_a Q(obs, a) the acting step computed.
  2. bootstrap values, without gradient, from the current network (the one that just acted), run
     for all segments from the stored z: V(s_{t+1}) of a step that did not end an episode is the
     acting value of step t+1 (same network, same observation, same seed z: no second pass). The
     two that acting did not compute run in one batch of 2N: the true next observation (gymnax's
     `final_observation`, not the auto-reset one) of each env's truncated step (at most one per env
     since T <= max_steps), and that of the rollout's last step, each from the converged z of its
     step.
  3. Q(lambda) targets backwards (`lambda_returns`):
       R_t = r_t + gamma (1 - term_t) [(1 - lambda) V(s_{t+1}) + lambda R_{t+1}],
     the lambda part cut where an episode ends (terminated: no bootstrap; truncated: V of the true
     next observation) and at the rollout's end (R_T = V(s_T)).
  4. `pqn_epochs` passes over the T*N transitions, each shuffled into `pqn_minibatches`
     minibatches; each minibatch gets DQN's deep supervision: `supervision_segments` gradient steps,
     each a 1-step-gradient segment from the previous one's detached carry, starting from the stored
     `prev_z`, regressed on the fixed targets (TrainConfig.loss).

A gradient step is one optimiser update, as in DQN, so an iteration is
pqn_epochs * pqn_minibatches * supervision_segments gradient steps and `grad_steps`, the epsilon
schedule (per gradient step, drawn once per rollout), the optimiser and the chunk / evaluation /
metrics (including `first_bad_step`) mean what they mean for DQN (hrm_jax.algos.dqn).

PQN's "normalisation inside the network" is already there: the HRM has RMSNorm after every
sub-layer (post-norm) and the mlp / cnn baselines have LayerNorm after every hidden layer.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hrm_jax import acting
from hrm_jax.algos.common import (Trainer, act_and_step, deep_supervision, epsilon_schedule, make_chunk, make_evaluate,
                                  make_optimizer, param_count, segment_td_loss)
from hrm_jax.config import Config
from hrm_jax.models import StoredZ, init_variables, make_model, run_segments, seed_carry


class TrainState(struct.PyTreeNode):
    params: Any                 # the network (trainable); also the bootstrap network
    constants: Any              # H_init / L_init (never trained)
    opt_state: Any
    env_state: Any              # batched EnvState [num_envs]
    obs: jax.Array              # uint8[num_envs, T]
    z: StoredZ                  # the seed for the next acting step, per env
    ep_return: jax.Array        # f32[num_envs] running return of the current episodes
    key: jax.Array
    eval_key: jax.Array         # evaluation draws its own stream (independent of eval frequency)
    grad_step: jax.Array        # int32
    env_steps: jax.Array        # int32 transitions collected


class Steps(NamedTuple):
    """One rollout, leaves [T, N, ...] (time first)."""
    obs: jax.Array          # uint8: the observation acted on
    action: jax.Array       # int32
    reward: jax.Array       # f32
    terminated: jax.Array   # bool
    truncated: jax.Array    # bool
    prev_z: StoredZ         # the z seed the step acted from
    v: jax.Array            # f32: max_a Q(obs, a) of the acting step (all segments from prev_z)
    next_obs: jax.Array     # uint8: the true next observation (before any auto-reset)
    next_z: StoredZ         # the converged z after acting (the seed on next_obs)


class Batch(NamedTuple):
    """What a gradient step reads, leaves [B, ...]."""
    obs: jax.Array
    action: jax.Array
    prev_z: StoredZ
    target: jax.Array       # f32: the Q(lambda) return


class Parts(NamedTuple):
    """The pieces of one iteration, for tests and tools; `make_train` composes them."""
    rollout: Callable       # (TrainState, eps) -> (TrainState, Steps [T, N], episode stats)
    bootstrap: Callable     # (variables, Steps) -> f32[T, N] V(s_{t+1}), no gradient
    targets: Callable       # (variables, Steps) -> f32[T, N] Q(lambda) returns
    minibatch: Callable     # (TrainState, Batch) -> (TrainState, stats): supervision_segments gradient steps
    loss: Callable          # (params, constants, Batch, Carry) -> (loss, (detached carry, q)): one gradient step's


def lambda_returns(reward, terminated, truncated, v_next, gamma: float, lam: float) -> jax.Array:
    """Q(lambda) returns over a rollout, arrays [T, ...] (time first):

        R_t = r_t + gamma (1 - term_t) [(1 - lam) v_next_t + lam R_{t+1}]

    with R_{t+1} replaced by v_next_t where step t ended an episode (terminated or truncated) and
    at t = T - 1. v_next_t = max_a Q(s_{t+1}, a) of step t's true next observation. lam 0: the
    one-step Q-learning target; lam 1: the discounted rewards to the episode's (or the rollout's)
    end plus the discounted bootstrap there."""
    done = terminated | truncated
    keep = 1.0 - terminated.astype(jnp.float32)

    def back(r_next, x):
        r, d, k, v = x
        mix = jnp.where(d, v, (1.0 - lam) * v + lam * r_next)
        ret = r + gamma * k * mix
        return ret, ret

    _, out = jax.lax.scan(back, v_next[-1], (reward, done, keep, v_next), reverse=True)
    return out


def make_parts(cfg: Config, model, env, env_params, obs_len: int, tx: optax.GradientTransformation,
               shard_batch: Callable | None = None) -> Parts:
    m, t = cfg.model, cfg.train
    N, T = t.num_envs, t.pqn_rollout_steps
    shard = shard_batch if shard_batch is not None else (lambda tree: tree)

    def env_step(state: TrainState, eps):
        """One vectorised env step acted with all segments (as DQN's collection, without replay)."""
        state, step, stats = act_and_step(cfg, model, env, env_params, state, eps)
        step = Steps(obs=step["obs"], action=step["action"], reward=step["reward"], terminated=step["terminated"],
                     truncated=step["truncated"], prev_z=step["prev_z"], v=jnp.max(step["q"], -1),
                     next_obs=step["next_obs"], next_z=step["next_z"])
        return state, (step, stats)

    def rollout(state: TrainState, eps):
        state, (steps, stats) = jax.lax.scan(lambda s, _: env_step(s, eps), state, None, length=T)
        return state, steps, jax.tree.map(jnp.sum, stats)

    def bootstrap(vars_, steps: Steps) -> jax.Array:
        """V(s_{t+1}) = max_a Q(s_{t+1}, a), f32[T, N], from the network in vars_ (module docstring, 2.)."""
        n = jnp.arange(N)
        t_trunc = jnp.argmax(steps.truncated, axis=0)       # each env's truncated step (0 if none: unused)
        pick = lambda x: jnp.concatenate([x[t_trunc, n], x[-1]])
        obs, z = pick(steps.next_obs), jax.tree.map(pick, steps.next_z)
        _, q, _ = run_segments(model, vars_, obs, seed_carry(model, vars_, z, 2 * N, obs_len), m.segments_per_step,
                               keep="none")
        v = jnp.max(q, -1)
        v_trunc, v_last = v[:N], v[N:]
        v_next = jnp.concatenate([steps.v[1:], v_last[None]])
        return jax.lax.stop_gradient(jnp.where(steps.truncated, v_trunc[None], v_next))

    def targets(vars_, steps: Steps) -> jax.Array:
        return lambda_returns(steps.reward, steps.terminated, steps.truncated, bootstrap(vars_, steps),
                              t.gamma, t.pqn_lambda)

    def loss(params, constants, batch: Batch, carry):
        return segment_td_loss(model, params, constants, batch.obs, carry, batch.action, batch.target, t.loss)

    def minibatch(state: TrainState, batch: Batch):
        """supervision_segments gradient steps on one minibatch (DQN's deep supervision, no target net)."""
        batch = shard(batch)
        return deep_supervision(cfg, model, tx, state, batch.obs, batch.action, batch.prev_z, batch.target)

    return Parts(rollout=rollout, bootstrap=bootstrap, targets=targets, minibatch=minibatch, loss=loss)


def make_train(cfg: Config, shard_batch: Callable | None = None) -> Trainer:
    """The Trainer of hrm_jax.algos.dqn with PQN inside: the same fields (prefill_iters 0, replay None),
    metrics and TrainState fields the run driver and the tools read (params, constants, env_state,
    obs, z, ep_return, grad_step, env_steps, key, eval_key). `shard_batch`: as DQN's (data-parallel:
    the reset environments and each minibatch split over devices)."""
    m, t, e = cfg.model, cfg.train, cfg.env
    env, env_params = acting.make_env(e)
    model = make_model(m, env.maze.obs_shape[1])
    obs_len = env.obs_len
    N, T, E, M = t.num_envs, t.pqn_rollout_steps, t.pqn_epochs, t.pqn_minibatches
    grad_steps_per_iter = E * M * t.supervision_segments
    iters_per_chunk = t.eval_every // grad_steps_per_iter
    num_chunks = math.ceil(t.total_grad_steps / t.eval_every)
    tx = make_optimizer(cfg)
    eps_fn = epsilon_schedule(cfg)
    shard = shard_batch if shard_batch is not None else (lambda tree: tree)
    parts = make_parts(cfg, model, env, env_params, obs_len, tx, shard_batch)

    def iteration(state: TrainState, _):
        eps = eps_fn(state.grad_step)
        state, steps, stats = parts.rollout(state, eps)
        y = parts.targets({"params": state.params, "constants": state.constants}, steps)
        flat = lambda x: x.reshape((T * N,) + x.shape[2:])
        data = Batch(obs=flat(steps.obs), action=flat(steps.action), prev_z=jax.tree.map(flat, steps.prev_z),
                     target=flat(y))
        key, k_learn = jax.random.split(state.key)
        state = state.replace(key=key)

        def epoch(state, k):
            perm = jax.random.permutation(k, T * N)
            mbs = jax.tree.map(lambda x: x[perm].reshape((M, T * N // M) + x.shape[1:]), data)
            return jax.lax.scan(parts.minibatch, state, mbs)

        state, lstats = jax.lax.scan(epoch, state, jax.random.split(k_learn, E))
        return state, {**stats, "loss": jnp.mean(lstats["loss"]), "q_mean": jnp.mean(lstats["q_mean"]),
                       "first_bad_step": jnp.min(lstats["first_bad_step"]), "epsilon": eps}

    evaluate = make_evaluate(cfg, model, env, env_params)

    def init(key) -> TrainState:
        k_model, k_env, k_state, k_eval = jax.random.split(key, 4)
        vars_ = init_variables(model, k_model, obs_len)
        obs, env_state = shard(jax.vmap(env.reset, (0, None))(jax.random.split(k_env, N), env_params))
        return TrainState(
            params=vars_["params"], constants=vars_["constants"], opt_state=tx.init(vars_["params"]),
            env_state=env_state, obs=obs, z=acting.initial_z(model, vars_, N, obs_len),
            ep_return=jnp.zeros((N,), jnp.float32), key=k_state, eval_key=k_eval,
            grad_step=jnp.int32(0), env_steps=jnp.int32(0))

    chunk, train = make_chunk(iteration, evaluate, init, iters_per_chunk, num_chunks)
    return Trainer(config=cfg, model=model, env=env, env_params=env_params, obs_len=obs_len,
                   iters_per_chunk=iters_per_chunk, prefill_iters=0, num_chunks=num_chunks,
                   init=init, chunk=chunk, evaluate=evaluate, train=train, param_count=param_count(model, obs_len),
                   replay=None)
