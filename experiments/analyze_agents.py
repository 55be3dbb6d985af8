"""The analysis of z for every agent of a sweep, and a tally of the paper's claims over agents.

    python -m experiments.analyze_agents runs/rg-sweep --envs 1024
    python -m experiments.analyze_agents runs/rg-sweep --segments 8 --out runs/rg-sweep/agents-s8

For every agent index held by both the carry-Z condition (`--carry`, default last_token) and the
reset-Z condition of the sweep (in any of a condition's run directories, including those added
by `sweep --resume --seeds N`), the analysis of `experiments.analyze` runs on that pair of agents (same
environments, same options) into OUT/agent-<i>/. Then OUT/summary.md and summary.json: per agent
pair the greedy success of both agents (and of the carry agent with z reset), per paper claim its
verdict and which of its comparisons held robustly, split by module (z_H, z_L), and per claim in
how many pairs it is supported. One agent pair can be an accident of its seed (docs/results/random_goal.md:
which module shows the paper's effect flipped between two agents); the tally says how often it is.
The analysis is hrm_jax.analysis.agents.
"""
from __future__ import annotations

import argparse
import os
import sys

from hrm_jax.analysis.agents import PROG
from hrm_jax.analysis.report import OPTIONS


def build_parser():
    from hrm_jax.cli import OneLineParser, analysis_segments, non_negative_int, positive_int, probability, seed_int

    p = OneLineParser(prog=PROG, description="Run experiments.analyze on every carry/reset agent pair of a sweep and "
                      "tally the paper's claims over the pairs.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a directory written by experiments.sweep")
    p.add_argument("--carry", default="last_token", choices=("last_token", "full"), help="the carry-Z condition")
    p.add_argument("--envs", type=positive_int, default=OPTIONS["envs"], help="greedy episodes per agent (experiments.analyze --envs)")
    p.add_argument("--segments", type=analysis_segments, default=OPTIONS["segments"], help="segments per step in the rollouts (experiments.analyze --segments)")
    p.add_argument("--p-change", type=probability, default=OPTIONS["p_change"], help="door-change probability (experiments.analyze --p-change)")
    p.add_argument("--eval-seed", type=seed_int, default=OPTIONS["eval_seed"], help="seed of the evaluation environments, the same for every pair")
    p.add_argument("--batch", type=positive_int, default=OPTIONS["batch"], help="environments per rollout program (experiments.analyze --batch)")
    p.add_argument("--bootstrap", type=non_negative_int, default=OPTIONS["bootstrap"], help="episode-bootstrap resamples behind each verdict")
    p.add_argument("--out", default=None, help="output directory (default: SWEEP_DIR/agents, or agents-s<N> with --segments)")
    p.add_argument("--parallel", action="store_true", help="analyse the agent pairs side by side, one process per CPU "
                   "core, each pinned to its core (log OUT/analysis-<k>.log); the results are the same")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hrm_jax.analysis.agents import analyze_agents
    from hrm_jax.analysis.report import AnalysisError
    from hrm_jax.cli import fail

    out = args.out or os.path.join(args.sweep_dir, "agents" + (f"-s{args.segments}" if args.segments else ""))
    try:
        return analyze_agents(args.sweep_dir, out, args.carry, envs=args.envs, p_change=args.p_change,
                              eval_seed=args.eval_seed, batch=args.batch, segments=args.segments,
                              bootstrap=args.bootstrap, parallel=args.parallel,
                              command=" ".join([PROG] + (argv if argv is not None else sys.argv[1:])))
    except AnalysisError as exc:
        fail(str(exc), PROG)


if __name__ == "__main__":
    sys.exit(main())
