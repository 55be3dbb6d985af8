"""Carry-Z vs reset-Z sweep (paper §3.1, figures 3-4; docs/reference.md §3 "Seeds").

    python -m experiments.sweep --env four_rooms --z-carry last_token reset --seeds 5
    python -m experiments.sweep --preset paper --env corridor_maze --seeds 5 --out runs/sweep-maze
    python -m experiments.sweep --compare-only --out runs/sweep-maze      # redo the comparison only
    python -m experiments.sweep --resume --seeds 4 --out runs/sweep-maze  # add agents 2-3 to a 2-seed sweep
    python -m experiments.sweep --first-agent 2 --seeds 1 --out runs/maze-agent2  # agent 2 alone, in its own sweep
    python -m experiments.sweep --parallel --preset random_goal --seeds 5  # both conditions at once, a core each
    python -m experiments.sweep --vary q-init-scale=1,0.1 --seeds 5 --out runs/q-init  # any flag's values instead

Every `--z-carry` value is one *condition*; its `--seeds` agents train in one program, vmapped or
looped (`--seed-loop`; `hrm_jax.runner.train_run`), one run directory per condition: OUT/<z_carry>/. Conditions run one
after the other, or with `--parallel` side by side (one process per condition, each pinned to its
share of the CPU cores; output in OUT/<z_carry>.log). Then the sweep directory gets:

* comparison.png: greedy success and mean episode length vs gradient steps; per condition the
  mean over seeds (line) and the min..max band; the BFS-optimal mean path length dashed.
* comparison.md / comparison.json: per seed and condition, the gradient steps, env steps and wall
  time at which greedy success first reached 90 / 95 / 99 % (first evaluation point at or above
  the threshold; "not reached" otherwise), and for how many seed indices carry-Z reached 95%
  before reset-Z (the paper: 4 of 5 in the maze); per seed, the mean greedy success over all
  evaluation points (the area under the success curve) and in how many pairs carry-Z's is higher
  (this ranks runs that never reach 95%).

`--vary FLAG=V1,V2,...` compares the values of any other config flag instead (z carry fixed at
the preset's or at a single --z-carry value): one condition per value, run directory
OUT/<field>=<value>/ (e.g. OUT/q_init_scale=0.1/), and the pairs compare every value with the
first one, the baseline (reset Z in a z-carry sweep). Everything else (--parallel, --resume,
--seeds, --sustain) works the same.

Adding seeds: `--resume` with a larger `--seeds` trains the new agents (agent i keyed
fold_in(key(seed), i), as a larger sweep would key them) in one more run directory per condition,
OUT/<z_carry>.agents-<first>-<last>/ (config `first_agent`); the comparison pools every run
directory of a condition, seeds named by agent index. `--first-agent A --seeds N` makes a sweep of
agents A..A+N-1 only (the agents a larger sweep would train as those), e.g. one more seed pair in
its own directory, trained while another sweep runs.

Wall time is the wall time of the program that trained the seed (the seeds of one run directory
train together and share it; the first evaluation point includes compilation).
"""
from __future__ import annotations

import argparse
import os
import sys

from hrm_jax.sweep import PROG, Z_CHOICES, condition_configs, holds_runs, run_sweep


def build_parser() -> argparse.ArgumentParser:
    from hrm_jax.cli import OneLineParser, add_config_flags, number

    p = OneLineParser(prog=PROG, description="Train one multi-seed run per --z-carry condition and compare "
                      "them (success / episode length curves, gradient steps to 90/95/99% success).",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # "%(default).0s" prints nothing; it keeps argparse from appending "(default: None)"
    p.add_argument("--z-carry", nargs="+", default=None, choices=Z_CHOICES, dest="conditions",
                   metavar="Z", help=f"conditions to train, one run each ({', '.join(Z_CHOICES)}; default: last_token "
                   "reset); with --vary, one value: the z carry of every condition (default: the preset's)%(default).0s")
    p.add_argument("--vary", default=None, metavar="FLAG=V1,V2",
                   help="instead of z carry, compare values of any config flag, one condition (run directory "
                        "OUT/<field>=<value>) per value, every other flag as given; the first value is the baseline "
                        "the others are paired with seed by seed (e.g. --vary q-init-scale=1,0.1)")
    p.add_argument("--out", default=None, help="sweep directory (default: runs/sweep-<env>-<preset>); "
                   "one run directory per condition inside it")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep in --out: finished conditions are kept, unfinished ones resume from their checkpoint; with a larger --total-grad-steps every condition trains on to it")
    p.add_argument("--compare-only", action="store_true", help="do not train: redo the comparison from the run directories in --out")
    p.add_argument("--sustain", type=number(int, 1, why="consecutive evaluations at or above a threshold"), default=1, metavar="K",
                   help="a success threshold counts as reached at the first of K consecutive evaluations at or above "
                        "it (1: the first evaluation at or above it; 2-3 discount a single lucky evaluation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--parallel", action="store_true",
                   help="train the conditions side by side, one process per condition pinned to its share of the CPU "
                        "cores (output in OUT/<z_carry>.log); two conditions of the cpu preset on a 2-core CPU: 1.6x faster "
                        "than one after the other")
    add_config_flags(p, skip=("z_carry",))
    return p


def resolve(argv: list[str] | None = None):
    """(args, {condition: Config}, sweep_dir); exits 2 with one line on bad input."""
    from dataclasses import replace

    from hrm_jax.acting import make_env
    from hrm_jax.cli import config_from_args, fail, flag_name, parse_field_values
    from hrm_jax.config import ConfigError

    args = build_parser().parse_args(argv)
    if args.conditions and len(set(args.conditions)) != len(args.conditions):
        fail(f"--z-carry {' '.join(args.conditions)}: a condition is repeated", PROG)
    args.varied = None  # (section, field) of --vary
    if args.vary is not None:
        try:
            section, name, values = parse_field_values(args.vary)
        except ConfigError as exc:
            fail(str(exc), PROG)
        if name in ("z_carry", "seeds", "first_agent"):
            fail(f"--vary {args.vary}: {name} is set by the sweep itself ({'--z-carry' if name == 'z_carry' else '--seeds, --resume'})", PROG)
        if getattr(args, f"{section}__{name}", None) is not None:
            fail(f"--vary {args.vary}: {flag_name(section, name)} is also given; give its values in --vary only", PROG)
        if args.conditions and len(args.conditions) > 1:
            fail(f"--vary with --z-carry {' '.join(args.conditions)}: vary one thing at a time (one --z-carry value)", PROG)
        args.varied = (section, name)
    base = config_from_args(args, PROG)
    try:
        make_env(base.env)
    except ValueError as exc:
        fail(str(exc), PROG)
    if args.vary is None:
        section, name, values = "model", "z_carry", args.conditions or ["last_token", "reset"]
    elif args.conditions:
        base = replace(base, model=replace(base.model, z_carry=args.conditions[0]))
    try:
        cfgs = condition_configs(base, section, name, values)
    except ConfigError as exc:
        fail(f"--vary {args.vary}: {exc}" if args.vary else str(exc), PROG)
    args.conditions = list(cfgs)
    suffix = f"-{args.varied[1]}" if args.varied else ""
    out = args.out or os.path.join("runs", f"sweep-{base.env.name}-{args.preset}{suffix}")
    if args.compare_only:
        for c in args.conditions:
            if not os.path.isfile(os.path.join(out, c, "metrics.jsonl")):
                fail(f"--compare-only: {os.path.join(out, c)} has no metrics.jsonl (train it first)", PROG)
    elif not args.resume and holds_runs(out, args.conditions):
        fail(f"--out {out} already holds runs of these conditions (use --resume to continue them, or another --out)", PROG)
    return args, cfgs, out


def seed_loop_given(args) -> bool:
    """Whether the command line sets the seed loop (--seed-loop, or --vary seed-loop=...)."""
    return args.train__seed_loop is not None or (args.varied is not None and args.varied[1] == "seed_loop")


def main(argv: list[str] | None = None) -> int:
    args, cfgs, out = resolve(argv)
    from hrm_jax.cli import fail
    from hrm_jax.config import ConfigError

    try:
        return run_sweep(out, cfgs, train=not args.compare_only, parallel=args.parallel, progress=not args.no_progress,
                         keep_seed_loop=not seed_loop_given(args), sustain=args.sustain,
                         varied=f"{args.varied[0]}.{args.varied[1]}" if args.varied else None)
    except ConfigError as exc:
        fail(str(exc), PROG)


if __name__ == "__main__":
    sys.exit(main())
