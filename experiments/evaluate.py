"""Evaluate a trained run greedily from its newest checkpoint.

    python -m experiments.evaluate runs/four_rooms-last_token-cpu-s0 --episodes 1024 --gif episodes.gif

Prints, per seed, the success fraction, the mean episode length and the mean BFS-optimal length
of the same episodes (doors keep changing with the run's p_change unless --p-change is given).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

PROG = "python -m experiments.evaluate"


def build_parser():
    from hrm_jax.cli import OneLineParser

    p = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="a run directory written by experiments.run")
    p.add_argument("--episodes", type=int, default=1024, help="greedy episodes per seed (fresh environments)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation environments")
    p.add_argument("--p-change", type=float, default=None, help="override the door-change probability")
    p.add_argument("--gif", default=None, help="write a GIF of the first --gif-episodes episodes of seed 0")
    p.add_argument("--gif-episodes", type=int, default=3, help="episodes in the GIF")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from hrm_jax.cli import fail

    if args.episodes < 1:
        fail(f"--episodes={args.episodes} must be >= 1", PROG)
    if args.p_change is not None and not 0.0 <= args.p_change <= 1.0:
        fail(f"--p-change={args.p_change} must be in [0, 1]", PROG)
    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        fail(f"{args.run_dir}: not a run directory (no config.json)", PROG)

    import jax
    import numpy as np

    from experiments.run import load_run
    from hrm_jax import agent
    from hrm_jax.checkpoint import CheckpointError

    try:
        cfg, tr, state, step = load_run(args.run_dir)
    except CheckpointError as exc:
        fail(str(exc), PROG)
    env_params = tr.env_params if args.p_change is None else tr.env_params.replace(p_change=args.p_change)
    m = cfg.model

    def rollout(params, constants, key, with_trace=False, n=args.episodes):
        return agent.greedy_rollout(tr.model, {"params": params, "constants": constants}, tr.env, env_params, key,
                                    n, m.segments_per_step, m.z_carry, cfg.env.max_steps, with_trace=with_trace)

    key = jax.random.key(args.seed)
    results = jax.jit(jax.vmap(lambda p, c: agent.summarize_eval(rollout(p, c, key))))(state.params, state.constants)
    results = jax.device_get(results)
    rows = []
    print(f"{args.run_dir}: gradient step {step}, {cfg.env.name}, z {m.z_carry}, p_change {float(env_params.p_change)}, "
          f"{args.episodes} episodes per seed")
    print(f"{'seed':>4}  {'success':>8}  {'mean length':>11}  {'BFS optimum':>11}")
    for i in range(cfg.train.seeds):
        row = {k: float(v[i]) for k, v in results.items()}
        rows.append(dict(seed=i, **row))
        print(f"{i:>4}  {row['eval_success']:>8.3f}  {row['eval_length']:>11.2f}  {row['eval_optimal']:>11.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(run_dir=args.run_dir, step=step, episodes=args.episodes, seeds=rows), fh, indent=2)
    if args.gif:
        write_episode_gif(args, tr, state, rollout, key)
    return 0


def write_episode_gif(args, tr, state, rollout, key) -> None:
    import jax
    import numpy as np

    from envs.render import rgb_array, write_gif

    p0 = jax.tree.map(lambda x: x[0], state.params)
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
