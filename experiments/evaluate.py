"""Evaluate a trained run greedily from its newest checkpoint.

    python -m experiments.evaluate runs/four_rooms-last_token-cpu-s0 --episodes 1024 --gif episodes.gif

Prints, per seed, the success fraction, the mean episode length and the mean BFS-optimal length
of the same episodes (doors keep changing with the run's p_change unless --p-change is given).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

PROG = "python -m experiments.evaluate"


def build_parser():
    from hrm_jax.cli import OneLineParser, non_negative_int, positive_int, probability, seed_int

    p = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="a run directory written by experiments.run")
    p.add_argument("--episodes", type=positive_int, default=1024, help="greedy episodes per seed (fresh environments)")
    p.add_argument("--seed", type=seed_int, default=12345, help="seed of the evaluation environments")
    p.add_argument("--p-change", type=probability, default=None, help="override the door-change probability")
    p.add_argument("--gif", default=None, help="write a GIF of the first --gif-episodes episodes of seed 0")
    p.add_argument("--gif-episodes", type=positive_int, default=3, help="episodes in the GIF")
    p.add_argument("--minihack", type=non_negative_int, default=0, metavar="N",
                   help="also play N greedy episodes of seed 0's policy in the MiniHack reference (dynamic doors "
                        "emulated as the authors did, doors drawn from reset on), on the same layouts as ours")
    p.add_argument("--failures", action="store_true",
                   help="also say why the failed episodes failed, per seed: the fractions stuck at a wall, waiting at a "
                        "closed door, oscillating between 2 cells or wandering over their last 10 steps, and cut off "
                        "from the goal for more than half the episode; and how often a greedy move bumps into a wall, with the "
                        "median Q margin of such a bump over the best open move (hrm_jax.analysis.failures; a traced rollout, slower)")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from hrm_jax.cli import fail

    if args.minihack:
        from envs.minihack_ref import minihack_missing

        missing = minihack_missing()
        if missing:
            fail(f"--minihack: {missing}", PROG)
    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        fail(f"{args.run_dir}: not a run directory (no config.json)", PROG)

    import jax

    from hrm_jax import acting
    from hrm_jax.checkpoint import CheckpointError
    from hrm_jax.runner import load_run

    try:
        cfg, tr, state, step = load_run(args.run_dir)
    except CheckpointError as exc:
        fail(str(exc), PROG)
    env_params = tr.env_params if args.p_change is None else tr.env_params.replace(p_change=args.p_change)
    m = cfg.model

    def rollout(params, constants, key, with_trace=False, n=args.episodes):
        return acting.greedy_rollout(tr.model, {"params": params, "constants": constants}, tr.env, env_params, key,
                                    n, m.segments_per_step, m.z_carry, cfg.env.max_steps, with_trace=with_trace)

    key = jax.random.key(args.seed)
    results = jax.jit(jax.vmap(lambda p, c: acting.summarize_eval(rollout(p, c, key))))(acting.policy_params(state, cfg.train.eval_net), state.constants)
    results = jax.device_get(results)
    rows = []
    print(f"{args.run_dir}: gradient step {step}, {cfg.env.name}, z {m.z_carry}, p_change {float(env_params.p_change)}, "
          f"{args.episodes} episodes per seed")
    print(f"{'seed':>4}  {'success':>8}  {'mean length':>11}  {'BFS optimum':>11}")
    for i in range(cfg.train.seeds):
        row = {k: float(v[i]) for k, v in results.items()}
        rows.append(dict(seed=cfg.train.first_agent + i, **row))
        print(f"{cfg.train.first_agent + i:>4}  {row['eval_success']:>8.3f}  {row['eval_length']:>11.2f}  {row['eval_optimal']:>11.2f}")
    if args.failures:
        from hrm_jax.analysis.failures import TAIL

        tail = min(TAIL, cfg.env.max_steps)   # a run with a shorter episode limit looks at all of it
        print_failures(rows, failure_breakdown(tr, state, rollout, key, tail), tail)
    result = dict(run_dir=args.run_dir, step=step, episodes=args.episodes, seeds=rows)
    if args.minihack:
        mh = evaluate_in_minihack(cfg, tr, state, env_params, args.minihack, args.seed)
        result["minihack"] = mh
        print(f"seed 0 in MiniHack ({mh['episodes']} episodes): success {mh['success_minihack']:.3f} "
              f"(ours on the same layouts {mh['success_jax']:.3f}), mean length {mh['length_minihack']:.2f} "
              f"(ours {mh['length_jax']:.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    if args.gif:
        write_episode_gif(args, tr, state, rollout, key)
    return 0


def failure_breakdown(tr, state, rollout, key, tail: int) -> dict:
    """Per seed, `failures.summarize_failures` of the same episodes as the evaluation (same key,
    so the same starts and doors; the traced rollout runs every episode to the step limit)."""
    import jax

    from hrm_jax import acting
    from hrm_jax.analysis import failures

    def one(params, constants):
        ev = rollout(params, constants, key, with_trace=True)
        rec = ev["records"]
        out = failures.summarize_failures(failures.failure_modes(tr.env, rec["state"], rec["action"], ev["success"], tail))
        bumps = failures.bump_margins(tr.env, rec["state"], rec["action"], rec["q"], rec["active"])
        return {**out, **failures.summarize_bumps(bumps, rec["active"])}

    return jax.device_get(jax.jit(jax.vmap(one))(acting.policy_params(state, tr.config.train.eval_net), state.constants))


def print_failures(rows: list[dict], breakdown: dict, tail: int) -> None:
    """Add each seed's breakdown to its row and print it as a table."""
    from hrm_jax.analysis.failures import MODE_KEYS, MODES

    print(f"why the failed episodes failed (their last {tail} steps; fractions of the failed episodes):")
    print(f"{'seed':>4}  {'failed':>6}  " + "  ".join(f"{m:>{max(len(m), 6)}}" for m in MODES) + "  cut off")
    for i, row in enumerate(rows):
        f = {k: float(v[i]) for k, v in breakdown.items()}
        row["failures"] = f
        print(f"{row['seed']:>4}  {f['failed']:>6.3f}  "
              + "  ".join(f"{f[k]:>{max(len(m), 6)}.3f}" for k, m in zip(MODE_KEYS, MODES)) + f"  {f['cut_off']:>7.3f}")
    print("greedy moves into a wall (fraction of all greedy steps), and at those steps the median Q margin of the "
          "bump over the best open move and the median max Q:")
    print(f"{'seed':>4}  {'wall bumps':>10}  {'Q margin':>8}  {'max Q':>6}")
    for row in rows:
        f = row["failures"]
        print(f"{row['seed']:>4}  {f['wall_bump_steps']:>10.3f}  {f['bump_margin']:>8.4f}  {f['bump_value']:>6.3f}")


def evaluate_in_minihack(cfg, tr, state, env_params, episodes: int, seed: int) -> dict:
    """Seed 0's greedy policy, acting on MiniHack's own observations (cropped `chars`), with the
    same z handling as in training; doors follow our door process with the same keys on both sides.
    The same episodes are also played in our env, so the two success rates are directly comparable."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from envs import minihack_ref as mr
    from hrm_jax import acting

    env, m = tr.env, cfg.model
    variables = {"params": jax.tree.map(lambda x: x[0], acting.policy_params(state, cfg.train.eval_net)),
                 "constants": jax.tree.map(lambda x: x[0], state.constants)}
    act = jax.jit(lambda obs, z: acting.act(tr.model, variables, obs[None], z, m.segments_per_step))
    z0 = acting.initial_z(tr.model, variables, 1, tr.obs_len)
    doors = jax.jit(env.update_doors)
    reset = jax.jit(env.reset)
    T = cfg.env.max_steps
    ref = mr.MiniHackReference(cfg.env.name, "dynamic", max_steps=T, paint_reset=True)
    ours = jax.device_get(acting.greedy_rollout(tr.model, variables, env, env_params, jax.random.key(seed + 1),
                                               episodes, m.segments_per_step, m.z_carry, T))
    k_reset, _ = jax.random.split(jax.random.key(seed + 1))
    reset_keys = jax.random.split(k_reset, episodes)  # the same layouts greedy_rollout used
    success, length = np.zeros(episodes, bool), np.zeros(episodes, np.int32)
    try:
        for i in range(episodes):
            _, st = reset(reset_keys[i], env_params)
            lay = mr.Layout.from_state(st)
            rs = ref.reset(lay, mr.seeds_for(seed, i))
            z = z0
            for t in range(T):
                q, z_next, _ = act(jnp.asarray(rs.obs), z)
                z = z0 if m.z_carry == "reset" else z_next
                a = int(np.argmax(np.asarray(q[0])))

                def doors_after(pos, st=st, t=t, i=i):
                    at = st.replace(agent=np.asarray(pos if pos is not None else lay.goal, np.int32))
                    return np.asarray(doors(jax.random.fold_in(jax.random.key(seed + 2), i * 1000 + t), at, env_params))

                rs = ref.step(a, np.asarray(st.closed_doors), doors_after)
                st = st.replace(closed_doors=jnp.asarray(rs.closed))
                length[i] = t + 1
                if rs.terminated or rs.truncated:
                    success[i] = rs.terminated
                    break
    finally:
        ref.close()
    return dict(episodes=episodes, success_minihack=float(success.mean()), length_minihack=float(length.mean()),
                success_jax=float(np.mean(ours["success"])), length_jax=float(np.mean(ours["length"])))


def write_episode_gif(args, tr, state, rollout, key) -> None:
    import jax
    import numpy as np

    from envs.render import rgb_array, write_gif
    from hrm_jax import acting

    p0 = jax.tree.map(lambda x: x[0], acting.policy_params(state, tr.config.train.eval_net))
    c0 = jax.tree.map(lambda x: x[0], state.constants)
    n = args.gif_episodes
    out = jax.jit(lambda: rollout(p0, c0, key, with_trace=True, n=n))()
    recs = jax.device_get(out["records"])
    frames = []
    shape = tr.env.maze.obs_shape
    for i in range(n):
        for t in range(recs["active"].shape[0]):
            if not recs["active"][t, i]:
                break
            st = jax.tree.map(lambda x: x[t, i], recs["state"])
            frames.append(rgb_array(np.asarray(tr.env.get_obs(st)), shape, cell=16))
        frames.extend([np.zeros_like(frames[-1])] * 2)  # a dark gap between episodes
    write_gif(frames, args.gif, fps=4)
    print(f"wrote {args.gif} ({len(frames)} frames)")


if __name__ == "__main__":
    sys.exit(main())
