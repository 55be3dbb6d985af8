"""What every learner shares: the Trainer it returns, the optimiser and epsilon schedule, one acted
env step, the deep-supervision gradient steps on a minibatch, greedy evaluation, and the chunk
(iterations, then an evaluation, then a few scalars) the run driver calls.

A learner (dqn.py, pqn.py) supplies its TrainState (a flax PyTreeNode with at least params,
constants, opt_state, env_state, obs, z, ep_return, key, eval_key, grad_step, env_steps) and its
`iteration(state, _) -> (state, stats)`; stats per iteration: finished, finished_return, loss,
q_mean, first_bad_step, epsilon.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hrm_jax import acting
from hrm_jax.config import Config
from hrm_jax.models import count_params, init_variables, seed_carry, segment


class Trainer(NamedTuple):
    config: Config
    model: Any
    env: Any
    env_params: Any
    obs_len: int
    iters_per_chunk: int
    prefill_iters: int
    num_chunks: int
    init: Callable        # key -> TrainState (after any prefill)
    chunk: Callable       # TrainState -> (TrainState, metrics dict of scalars)
    evaluate: Callable    # (TrainState, key) -> metrics dict
    train: Callable       # key -> (TrainState, metrics dict of [num_chunks] arrays)
    param_count: int
    replay: Any           # DQN: init / add / sample of this run's buffer (hrm_jax.replay.Replay); None without replay
    # (TrainState, key) -> (TrainState, stats): one replay minibatch's deep supervision, as `chunk` runs
    # it (exposed so that `experiments.bench train` times the learner's own step); None without replay
    learn_minibatch: Callable | None = None


def seed_keys(seed: int, n: int, first: int = 0) -> jax.Array:
    """The keys of agents first..first+n-1; agent i's key is fold_in(key(seed), i)."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(first + jnp.arange(n))


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


def segment_td_loss(model, params, constants, tokens: jax.Array, carry, action: jax.Array, y: jax.Array, loss: str,
                    chunk: int | None = None):
    """The TD loss of one 1-step-gradient segment from `carry`: Q of `action` on `tokens` against the
    targets `y` -> (loss, (detached new carry, q))."""
    new_carry, q = segment(model, {"params": params, "constants": constants}, tokens, carry, chunk)
    q_sa = jnp.take_along_axis(q, action[:, None], -1)[:, 0]
    return td_loss(q_sa, y, loss), (new_carry, q)


def segment_td_grad(model, params, constants, tokens: jax.Array, carry, action: jax.Array, y: jax.Array, loss: str,
                    chunk: int | None = None):
    """One deep-supervision gradient: value_and_grad of `segment_td_loss` -> ((loss, (new carry, q)), grads)."""
    return jax.value_and_grad(lambda p: segment_td_loss(model, p, constants, tokens, carry, action, y, loss, chunk),
                              has_aux=True)(params)


def deep_supervision(cfg: Config, model, tx, state, obs: jax.Array, action: jax.Array, prev_z, y: jax.Array,
                     polyak: float | None = None):
    """`supervision_segments` gradient steps on one minibatch (obs uint8[B, T], action int32[B],
    targets y f32[B]): each a 1-step-gradient segment, the first from the stored seed z `prev_z`,
    each later one from the previous one's detached carry. With `polyak` (DQN) the state's
    target_params follow after every step. Returns (state, stats: loss, q_mean, first_bad_step)."""
    consts = state.constants
    carry0 = seed_carry(model, {"params": state.params, "constants": consts}, prev_z, obs.shape[0], obs.shape[1])
    target0 = state.target_params if polyak is not None else None

    def sup_step(c, _):
        params, target, opt_state, carry, gs = c
        (loss, (new_carry, q)), grads = segment_td_grad(model, params, consts, obs, carry, action, y, cfg.train.loss)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if polyak is not None:
            target = optax.incremental_update(params, target, 1.0 - polyak)
        # the step is bad if its loss, its Q values or the parameters it produced are non-finite
        finite = (jnp.isfinite(loss) & jnp.all(jnp.isfinite(q))
                  & jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)])))
        return (params, target, opt_state, new_carry, gs + 1), (loss, jnp.mean(q), finite, gs)

    c0 = (state.params, target0, state.opt_state, carry0, state.grad_step)
    (params, target, opt_state, _, gs), (loss, q_mean, finite, steps) = jax.lax.scan(
        sup_step, c0, None, length=cfg.train.supervision_segments)
    bad = jnp.min(jnp.where(finite, jnp.iinfo(jnp.int32).max, steps))
    state = state.replace(params=params, opt_state=opt_state, grad_step=gs)
    if polyak is not None:
        state = state.replace(target_params=target)
    return state, dict(loss=jnp.mean(loss), q_mean=jnp.mean(q_mean), first_bad_step=bad)


def act_and_step(cfg: Config, model, env, env_params, state, eps: jax.Array):
    """One vectorised env step of all envs, acted with all segments from each env's carried z,
    epsilon-greedy; z reset (H_init / L_init) where an episode ended. Returns (state advanced,
    step dict: obs, action, q f32[N, A], reward, terminated, truncated, next_obs (the true one,
    before gymnax's auto-reset), prev_z, next_z (the converged z), and stats: finished,
    finished_return)."""
    m = cfg.model
    N, obs_len = state.obs.shape
    key, k_act, k_env = jax.random.split(state.key, 3)
    vars_ = {"params": state.params, "constants": state.constants}
    q, z_next, _ = acting.act(model, vars_, state.obs, state.z, m.segments_per_step)
    action = acting.epsilon_greedy(k_act, q, eps)
    obs2, env_state2, reward, term, trunc, info = jax.vmap(env.step, (0, 0, 0, None))(
        jax.random.split(k_env, N), state.env_state, action, env_params)
    done = term | trunc
    z0 = acting.initial_z(model, vars_, N, obs_len)
    z_seed = z0 if m.z_carry == "reset" else acting.select_where(done, z0, z_next)
    ret = state.ep_return + reward
    step = dict(obs=state.obs, action=action, q=q, reward=reward, terminated=term, truncated=trunc,
                next_obs=info["final_observation"], prev_z=state.z, next_z=z_next)
    stats = dict(finished=jnp.sum(done), finished_return=jnp.sum(jnp.where(done, ret, 0.0)))
    state = state.replace(key=key, env_state=env_state2, obs=obs2, z=z_seed,
                          ep_return=jnp.where(done, 0.0, ret), env_steps=state.env_steps + N)
    return state, step, stats


def make_evaluate(cfg: Config, model, env, env_params) -> Callable:
    """(state, key) -> metrics: greedy success etc. on eval_envs fresh environments, acting with
    the network TrainConfig.eval_net names."""
    m, t = cfg.model, cfg.train

    def evaluate(state, key) -> dict:
        variables = {"params": acting.policy_params(state, t.eval_net), "constants": state.constants}
        ev = acting.greedy_rollout(model, variables, env, env_params, key, t.eval_envs, m.segments_per_step,
                                   m.z_carry, cfg.env.max_steps)
        return acting.summarize_eval(ev)

    return evaluate


def make_chunk(iteration: Callable, evaluate: Callable, init: Callable, iters_per_chunk: int, num_chunks: int):
    """(chunk, train): a chunk is `iters_per_chunk` iterations in one lax.scan, then a greedy
    evaluation, reduced to the scalars the run driver logs; train(key) = init and every chunk."""
    def chunk(state):
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

    return chunk, train


def param_count(model, obs_len: int) -> int:
    """Trainable parameters, the puzzle embedding left out (it has its own optimiser)."""
    shapes = jax.eval_shape(lambda k: init_variables(model, k, obs_len), jax.random.key(0))
    return count_params(shapes["params"], exclude=("puzzle_emb",))
