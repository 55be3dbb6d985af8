"""Supervised probe: fit the HRM to the optimal Q by regression, no RL.

    python -m experiments.probe [--preset cpu] [--steps 5000] [--every 500] [--target q|positions]
                                [--json OUT] [any config flag of experiments.run]

Every step draws `batch_size` fresh episodes (the env's own reset: random start, goal and doors),
computes the targets from BFS distances and runs `supervision_segments` deep-supervision updates
of the model from H_init/L_init (MSE, the trainer's optimiser and schedule). No replay, no
bootstrapping, no exploration: what this run cannot learn in N steps, DQN cannot either. It
separates what the model represents, and how fast, from what the RL loop adds.

Targets (`--target`):
  q          Q*(s, a) under the current doors (door changes and truncation ignored): 1 for the move
             onto the goal, gamma^d' for a move to a cell at BFS distance d', b + gamma^d for a
             blocked move from distance d (b = --blocked-reward, authors' -0.01); 0 (open move) or
             b (blocked) where the goal is cut off.
  positions  the agent's and the goal's (row, col) / 10: a first-order read-out of two tokens
             (the model's outputs are the 4 coordinates).

Printed per evaluation point: loss, the targets' variance over the batch (a constant predictor's
loss), accuracy (the argmax is an optimal move; `q` only) and greedy success on 256 fresh episodes
(z reset each step; `q` only).
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


def make_probe(cfg, target: str):
    """(init(key) -> (params, constants, opt_state), update(params, opt, key) -> (params, opt,
    loss, var, acc), evaluate(params, key) -> success). Jitted."""
    import jax
    import jax.numpy as jnp
    import optax

    from hrm_jax import acting
    from hrm_jax.models.hrm import init_variables, make_model, seed_carry, segment
    from hrm_jax.algos.dqn import make_optimizer

    m, t = cfg.model, cfg.train
    env, env_params = acting.make_env(cfg.env)
    model = make_model(m, env.maze.obs_shape[1])
    T, B = env.obs_len, t.batch_size
    tx = make_optimizer(cfg)

    def init(key):
        v = init_variables(model, key, T)
        return v["params"], v["constants"], tx.init(v["params"])

    def update(params, consts, opt, key):
        obs, st = jax.vmap(env.reset, (0, None))(jax.random.split(key, B), env_params)
        if target == "q":
            y = jax.vmap(lambda s: q_star(env, s, t.gamma, env_params.blocked_reward))(st)
        else:
            y = jnp.concatenate([st.agent, st.goal], -1).astype(jnp.float32) / 10.0
        carry = seed_carry(model, {"params": params, "constants": consts}, None, B, T)

        def sup(c, _):
            params, opt, carry = c

            def loss_fn(p):
                new, q = segment(model, {"params": p, "constants": consts}, obs, carry)
                return jnp.mean(jnp.square(q - y)), (new, q)

            (loss, (new, q)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
            u, opt = tx.update(g, opt, params)
            chosen = jnp.take_along_axis(y, jnp.argmax(q, -1)[:, None], -1)[:, 0]
            acc = jnp.mean(chosen >= jnp.max(y, -1) - 1e-6)
            return (optax.apply_updates(params, u), opt, new), (loss, acc)

        (params, opt, _), (loss, acc) = jax.lax.scan(sup, (params, opt, carry), None, length=t.supervision_segments)
        return params, opt, loss[-1], jnp.mean(jnp.var(y, 0)), acc[-1]

    def evaluate(params, consts, key):
        ev = acting.greedy_rollout(model, {"params": params, "constants": consts}, env, env_params, key, 256,
                                  m.segments_per_step, "reset", cfg.env.max_steps)
        return acting.summarize_eval(ev)["eval_success"]

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

    init, update, evaluate = make_probe(cfg, args.target)
    key = jax.random.key(cfg.train.seed)
    k_init, k_data, k_eval = jax.random.split(key, 3)
    params, consts, opt = init(k_init)
    rows, t0 = [], time.perf_counter()
    print(f"{'update':>7} {'wall s':>7} {'loss':>8} {'target var':>10} {'accuracy':>8} {'success':>7}")
    for i in range(1, args.steps + 1):
        params, opt, loss, var, acc = update(params, consts, opt, jax.random.fold_in(k_data, i))
        if i % args.every == 0 or i == args.steps:
            row = dict(update=i, wall_s=round(time.perf_counter() - t0, 1), loss=float(loss), target_var=float(var))
            if args.target == "q":
                row.update(accuracy=float(acc), success=float(evaluate(params, consts, k_eval)))
            rows.append(row)
            print(f"{i:7d} {row['wall_s']:7.1f} {row['loss']:8.4f} {row['target_var']:10.4f} "
                  f"{row.get('accuracy', float('nan')):8.2f} {row.get('success', float('nan')):7.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(target=args.target, config=cfg.to_dict(), rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
