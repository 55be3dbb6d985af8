"""The DQN trainer: `make_train(config)` -> functions that run entirely inside `jit`.

One *iteration* (docs/reference.md §3): act with all segments (epsilon-greedy per env) -> vmapped
env step (gymnax auto-reset) -> replay add -> `grad_steps_per_collect` gradient steps, organised
as minibatches of `supervision_segments` deep-supervision steps (each a 1-step-gradient segment
starting from the previous step's detached carry; targets from the target net run for all
segments from the stored converged z) -> a Polyak target update after every gradient step.

A *chunk* is `eval_every` gradient steps of iterations in one `lax.scan`, followed by a greedy
evaluation; it returns a few scalars. The host loop (experiments/run.py) calls the jitted chunk
repeatedly, so the program compiles once whatever the run length, and progress, logging and
checkpoints happen between chunks. `train(key)` is the same thing as one jittable function.

Seeds: every function works on one agent; `jax.vmap` over keys (or a `lax.map` loop over the
stacked states, `hrm_jax.sharding.over_seeds`) runs N independent agents (own init, env stream,
exploration) in one program.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hrm_jax import acting
from hrm_jax.config import Config
from hrm_jax.models import (StoredZ, count_params, init_variables, make_model, run_segments, seed_carry, segment,
                            stored_z_shape)
from hrm_jax.replay import Replay, Transition, example_transition, make_replay


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


class Trainer(NamedTuple):
    config: Config
    model: Any
    env: Any
    env_params: Any
    obs_len: int
    iters_per_chunk: int
    prefill_iters: int
    num_chunks: int
    init: Callable        # key -> TrainState (after prefill)
    chunk: Callable       # TrainState -> (TrainState, metrics dict of scalars)
    evaluate: Callable    # (TrainState, key) -> metrics dict
    train: Callable       # key -> (TrainState, metrics dict of [num_chunks] arrays)
    param_count: int
    replay: Replay        # init / add / sample of this run's buffer
    # (TrainState, key) -> (TrainState, stats): one replay minibatch's deep supervision, as `chunk` runs
    # it (exposed so that `experiments.bench train` times the learner's own step)
    learn_minibatch: Callable | None = None


def label_params(params) -> Any:
    """optax.multi_transform labels: the puzzle embedding gets its own optimiser."""
    return {k: jax.tree.map(lambda _: "puzzle" if k == "puzzle_emb" else "model", v) for k, v in params.items()}


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """Adam(W) for the model, sign-SGD with decoupled weight decay for the puzzle embedding, both
    with linear warm-up then constant."""
    t = cfg.train
    def schedule(lr):
        return optax.warmup_constant_schedule(0.0, lr, max(t.warmup_steps, 1))
    model_tx = optax.adamw(schedule(t.lr), b1=t.beta1, b2=t.beta2, weight_decay=t.weight_decay)
    # HRM's sign-SGD for the puzzle embedding: p <- p (1 - lr wd) - lr sign(g)
    puzzle_tx = optax.chain(optax.scale_by_sign(), optax.add_decayed_weights(t.puzzle_weight_decay),
                            optax.scale_by_learning_rate(schedule(t.puzzle_lr)))
    return optax.multi_transform({"model": model_tx, "puzzle": puzzle_tx}, label_params)


def epsilon_schedule(cfg: Config) -> optax.Schedule:
    t = cfg.train
    return optax.linear_schedule(t.eps_start, t.eps_end, t.eps_decay_steps)


def td_loss(q_sa: jax.Array, y: jax.Array, kind: str) -> jax.Array:
    if kind == "huber":
        return jnp.mean(optax.huber_loss(q_sa, y))
    return jnp.mean(jnp.square(q_sa - y))


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


def segment_td_grad(model, params, constants, tokens: jax.Array, carry, action: jax.Array, y: jax.Array, loss: str,
                    chunk: int | None = None):
    """One deep-supervision gradient: value_and_grad of the TD loss of one 1-step-gradient segment
    from `carry` (Q of `action` on `tokens` against the targets `y`) -> ((loss, (new carry, q)), grads)."""
    def loss_fn(p):
        new_carry, q = segment(model, {"params": p, "constants": constants}, tokens, carry, chunk)
        q_sa = jnp.take_along_axis(q, action[:, None], -1)[:, 0]
        return td_loss(q_sa, y, loss), (new_carry, q)

    return jax.value_and_grad(loss_fn, has_aux=True)(params)


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
        """One vectorised env step with all segments; returns the new state and episode stats."""
        key, k_act, k_env = jax.random.split(state.key, 3)
        vars_ = variables(state.params, state.constants)
        q, z_next, _ = acting.act(model, vars_, state.obs, state.z, m.segments_per_step)
        action = acting.epsilon_greedy(k_act, q, eps)
        obs2, env_state2, reward, term, trunc, info = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(k_env, N), state.env_state, action, env_params)
        tr = Transition(obs=state.obs, action=action, reward=reward, next_obs=info["final_observation"],
                        terminated=term, truncated=trunc, prev_z=state.z, next_z=z_next)
        buf = replay.add(state.buffer, tr)
        done = term | trunc
        z0 = acting.initial_z(model, vars_, N, obs_len)
        z_seed = z0 if m.z_carry == "reset" else acting.select_where(done, z0, z_next)
        ret = state.ep_return + reward
        stats = dict(finished=jnp.sum(done), finished_return=jnp.sum(jnp.where(done, ret, 0.0)),
                     q_act=jnp.mean(jnp.max(q, -1)))
        state = state.replace(key=key, buffer=buf, env_state=env_state2, obs=obs2, z=z_seed,
                              ep_return=jnp.where(done, 0.0, ret), env_steps=state.env_steps + N)
        return state, stats

    def learn_minibatch(state: TrainState, key):
        """Sample one minibatch; S deep-supervision gradient steps on it."""
        batch, discount = replay.sample(state.buffer, key)
        batch = shard(batch)
        consts = state.constants
        online = variables(state.params, consts) if t.double_dqn else None
        y = dqn_targets(model, variables(state.target_params, consts), batch, discount, m.segments_per_step, online)
        carry0 = seed_carry(model, variables(state.params, consts), batch.prev_z, B, obs_len)

        def sup_step(c, _):
            params, target, opt_state, carry, gs = c
            (loss, (new_carry, q)), grads = segment_td_grad(model, params, consts, batch.obs, carry, batch.action, y,
                                                            t.loss)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            target = optax.incremental_update(params, target, 1.0 - t.polyak)
            # the step is bad if its loss, its Q values or the parameters it produced are non-finite
            finite = (jnp.isfinite(loss) & jnp.all(jnp.isfinite(q))
                      & jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)])))
            return (params, target, opt_state, new_carry, gs + 1), (loss, jnp.mean(q), finite, gs)

        c0 = (state.params, state.target_params, state.opt_state, carry0, state.grad_step)
        (params, target, opt_state, _, gs), (loss, q_mean, finite, steps) = jax.lax.scan(sup_step, c0, None, length=S)
        bad = jnp.min(jnp.where(finite, jnp.iinfo(jnp.int32).max, steps))
        state = state.replace(params=params, target_params=target, opt_state=opt_state, grad_step=gs)
        return state, dict(loss=jnp.mean(loss), q_mean=jnp.mean(q_mean), first_bad_step=bad)

    def iteration(state: TrainState, _):
        eps = eps_fn(state.grad_step)
        state, stats = collect(state, eps)
        key, k_learn = jax.random.split(state.key)
        state = state.replace(key=key)
        state, lstats = jax.lax.scan(learn_minibatch, state, jax.random.split(k_learn, minibatches_per_iter))
        lstats = dict(loss=jnp.mean(lstats["loss"]), q_mean=jnp.mean(lstats["q_mean"]),
                      first_bad_step=jnp.min(lstats["first_bad_step"]))
        return state, {**stats, **lstats, "epsilon": eps}

    def evaluate(state: TrainState, key) -> dict:
        ev = acting.greedy_rollout(model, variables(acting.policy_params(state, t.eval_net), state.constants), env, env_params, key,
                                  t.eval_envs, m.segments_per_step, m.z_carry, e.max_steps)
        return acting.summarize_eval(ev)

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

    def chunk(state: TrainState):
        state, stats = jax.lax.scan(iteration, state, None, length=iters_per_chunk)
        ev = evaluate(state, jax.random.fold_in(state.eval_key, state.grad_step))
        finished = jnp.sum(stats["finished"])
        metrics = dict(
            grad_steps=state.grad_step, env_steps=state.env_steps,
            loss=jnp.mean(stats["loss"]), q_mean=jnp.mean(stats["q_mean"]), epsilon=stats["epsilon"][-1],
            train_return=jnp.sum(stats["finished_return"]) / jnp.maximum(finished, 1), train_episodes=finished,
            first_bad_step=jnp.min(stats["first_bad_step"]), **ev)
        return state, metrics

    def train(key):
        state = init(key)
        return jax.lax.scan(lambda s, _: chunk(s), state, None, length=num_chunks)

    shapes = jax.eval_shape(lambda k: init_variables(model, k, obs_len), jax.random.key(0))
    n_params = count_params(shapes["params"], exclude=("puzzle_emb",))
    return Trainer(config=cfg, model=model, env=env, env_params=env_params, obs_len=obs_len,
                   iters_per_chunk=iters_per_chunk, prefill_iters=prefill_iters, num_chunks=num_chunks,
                   init=init, chunk=chunk, evaluate=evaluate, train=train, param_count=n_params,
                   replay=replay, learn_minibatch=learn_minibatch)


def seed_keys(seed: int, n: int, first: int = 0) -> jax.Array:
    """The keys of agents first..first+n-1; agent i's key is fold_in(key(seed), i)."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(first + jnp.arange(n))
