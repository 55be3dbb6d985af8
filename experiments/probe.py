"""Supervised probe: fit the HRM to the optimal Q by regression, no RL.

    python -m experiments.probe [--preset cpu] [--steps 5000] [--every 500] [--target q|positions]
                                [--states trajectory|reset] [--json OUT] [any config flag of experiments.run]

Every update trains on `batch_size` states and runs `supervision_segments` deep-supervision updates
of the model from H_init/L_init (MSE, the trainer's optimiser and schedule). No replay, no
bootstrapping, no exploration. It separates what the model represents, and how fast, from what
the RL loop adds; it cannot exonerate the RL loop (DQN also has to bootstrap its targets and
explore), only tell whether the model can fit the optimal Q at all and how many updates that takes.
Any Q-network of the trainer can be probed (`--model hrm|mlp|cnn`).

States (`--states`):
  trajectory (default)  a pool of `batch_size` environments walked by a uniformly random policy
             (gymnax auto-reset; burnt in for `max_steps` steps so episodes are out of phase), one
             step per update: states along episodes, with the start marker `<` left behind, doors
             that changed, the agent anywhere on its way, as in evaluation.
  reset      fresh episodes (the env's own reset) every update: only first states (the agent on
             its start cell, so `<` is never visible), not what greedy evaluation meets.

Targets (`--target`):
  q          Q*(s, a) under the current doors (door changes and truncation ignored): 1 for the move
             onto the goal, gamma^d' for a move to a cell at BFS distance d', b + gamma^d for a
             blocked move from distance d (b = --blocked-reward, authors' -0.01); 0 (open move) or
             b (blocked) where the goal is cut off.
  positions  the agent's and the goal's (row, col) / 10: a first-order read-out of two tokens
             (the model's outputs are the 4 coordinates).

Printed per evaluation point, each beside its chance level: loss and the targets' variance over the
batch (a constant predictor's loss); accuracy (the argmax is an optimal move) and the chance that
a uniformly random move is optimal (the mean share of optimal moves; ~0.41 on four-rooms: 1.6
optimal moves per state); greedy success on 256 fresh episodes (z reset each step) and a uniformly
random policy's success on 256 fresh episodes (`q` only for the last three).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

PROG = "python -m experiments.probe"


def build_parser() -> argparse.ArgumentParser:
    from hrm_jax.cli import OneLineParser, add_config_flags, positive_int

    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=5000, help="updates (minibatches; each gets supervision_segments gradient steps)")
    p.add_argument("--every", type=positive_int, default=500, help="updates between evaluation points")
    p.add_argument("--target", choices=("q", "positions"), default="q", help="what to regress (see above)")
    p.add_argument("--states", choices=("trajectory", "reset"), default="trajectory",
                   help="where the training states come from (see above)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the rows as JSON to OUT")
    add_config_flags(p, skip=("z_carry",))
    return p


def q_star(env, state, gamma: float, blocked_reward: float = -0.01):
    """f32[4]: the optimal Q of one state under its current doors (see the module docstring)."""
    import jax.numpy as jnp

    from envs.policies import move_distances

    here, after, blocked = move_distances(env, state)
    g = jnp.float32(gamma)
    q = jnp.where(blocked, g ** here.astype(jnp.float32) + blocked_reward, g ** after.astype(jnp.float32))
    return jnp.where(here < 0, jnp.where(blocked, blocked_reward, 0.0), q)


def optimal_moves(y):
    """bool[B, 4]: the moves whose target Q is the best (ties included). Its mean over moves is the
    chance that a uniformly random move is optimal."""
    import jax.numpy as jnp

    return y >= jnp.max(y, -1, keepdims=True) - 1e-6


def make_probe(cfg, target: str, states: str = "trajectory"):
    """(init(key) -> (params, constants, opt_state, pool), update(params, consts, opt, pool, key) ->
    (params, opt, pool, loss, var, acc, chance), evaluate(params, consts, key) -> (success,
    random_success)). Jitted. `pool`: (obs, env state) of the walked environments (`states`
    trajectory) or None (reset)."""
    import jax
    import jax.numpy as jnp
    import optax

    from envs.policies import random_policy, run_episodes
    from hrm_jax import acting
    from hrm_jax.algos.common import make_optimizer
    from hrm_jax.models import init_variables, make_model, seed_carry, segment

    m, t = cfg.model, cfg.train
    env, env_params = acting.make_env(cfg.env)
    model = make_model(m, env.maze.obs_shape[1])
    T, B = env.obs_len, t.batch_size
    tx = make_optimizer(cfg)

    def walk(pool, key, live=None):
        """Every env of the pool (where `live`, bool[B]) one uniformly random step (auto-reset at
        episode ends)."""
        k_act, k_step = jax.random.split(key)
        actions = jax.random.randint(k_act, (B,), 0, 4, jnp.int32)
        new = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k_step, B), pool[1], actions, env_params)[:2]
        return new if live is None else acting.select_where(live, new, pool)

    def init(key):
        k_model, k_reset, k_phase, k_burn = jax.random.split(key, 4)
        v = init_variables(model, k_model, T)
        pool = None
        if states == "trajectory":
            pool = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, B), env_params)
            # env i walks phase[i] < max_steps steps, so the pool's episodes are out of phase
            # (walked in step, every env would be truncated and reset at the same step)
            phase = jax.random.randint(k_phase, (B,), 0, cfg.env.max_steps)
            pool = jax.lax.fori_loop(0, cfg.env.max_steps,
                                     lambda i, p: walk(p, jax.random.fold_in(k_burn, i), i < phase), pool)
        return v["params"], v["constants"], tx.init(v["params"]), pool

    def update(params, consts, opt, pool, key):
        if states == "trajectory":
            pool = walk(pool, key)
            obs, st = pool
        else:
            obs, st = jax.vmap(env.reset, (0, None))(jax.random.split(key, B), env_params)
        if target == "q":
            y = jax.vmap(lambda s: q_star(env, s, t.gamma, env_params.blocked_reward))(st)
        else:
            y = jnp.concatenate([st.agent, st.goal], -1).astype(jnp.float32) / 10.0
        optimal = optimal_moves(y)
        chance = jnp.mean(jnp.mean(optimal.astype(jnp.float32), -1))
        carry = seed_carry(model, {"params": params, "constants": consts}, None, B, T)

        def sup(c, _):
            params, opt, carry = c

            def loss_fn(p):
                new, q = segment(model, {"params": p, "constants": consts}, obs, carry)
                return jnp.mean(jnp.square(q - y)), (new, q)

            (loss, (new, q)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
            u, opt = tx.update(g, opt, params)
            acc = jnp.mean(jnp.take_along_axis(optimal, jnp.argmax(q, -1)[:, None], -1))
            return (optax.apply_updates(params, u), opt, new), (loss, acc)

        (params, opt, _), (loss, acc) = jax.lax.scan(sup, (params, opt, carry), None, length=t.supervision_segments)
        return params, opt, pool, loss[-1], jnp.mean(jnp.var(y, 0)), acc[-1], chance

    def evaluate(params, consts, key):
        k_greedy, k_random = jax.random.split(key)
        ev = acting.greedy_rollout(model, {"params": params, "constants": consts}, env, env_params, k_greedy, 256,
                                   m.segments_per_step, "reset", cfg.env.max_steps)
        rnd = run_episodes(env, env_params, random_policy, k_random, 256)
        return acting.summarize_eval(ev)["eval_success"], jnp.mean(rnd["success"].astype(jnp.float32))

    if m.num_actions != 4 and target == "positions":
        raise ValueError("--target positions needs num_actions=4 (the 4 coordinates)")
    return jax.jit(init), jax.jit(update), jax.jit(evaluate)


def main(argv: list[str] | None = None) -> int:
    from hrm_jax.cli import config_from_args, fail

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, PROG)
    from hrm_jax.acting import make_env
    try:
        make_env(cfg.env)
    except ValueError as exc:
        fail(str(exc), PROG)

    import jax

    init, update, evaluate = make_probe(cfg, args.target, args.states)
    key = jax.random.key(cfg.train.seed)
    k_init, k_data, k_eval = jax.random.split(key, 3)
    params, consts, opt, pool = init(k_init)
    rows, t0 = [], time.perf_counter()
    print(f"{'update':>7} {'wall s':>7} {'loss':>8} {'target var':>10} {'accuracy':>8} {'chance':>6} "
          f"{'success':>7} {'random':>6}")
    for i in range(1, args.steps + 1):
        params, opt, pool, loss, var, acc, chance = update(params, consts, opt, pool, jax.random.fold_in(k_data, i))
        if i % args.every == 0 or i == args.steps:
            row = dict(update=i, wall_s=round(time.perf_counter() - t0, 1), loss=float(loss), target_var=float(var))
            if args.target == "q":
                success, random_success = evaluate(params, consts, k_eval)
                row.update(accuracy=float(acc), accuracy_chance=float(chance), success=float(success),
                           random_policy_success=float(random_success))
            rows.append(row)
            nan = float("nan")
            print(f"{i:7d} {row['wall_s']:7.1f} {row['loss']:8.4f} {row['target_var']:10.4f} "
                  f"{row.get('accuracy', nan):8.2f} {row.get('accuracy_chance', nan):6.2f} "
                  f"{row.get('success', nan):7.3f} {row.get('random_policy_success', nan):6.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(target=args.target, states=args.states, config=cfg.to_dict(), rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
