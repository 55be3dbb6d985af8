"""Analysis of the recurrent state of trained runs (paper §3.2, figures 5-7; docs/reference.md §4).

    python -m experiments.analyze runs/sweep-four_rooms-cpu/last_token runs/sweep-four_rooms-cpu/reset
    python -m experiments.analyze RUN_DIR [RUN_DIR ...] --envs 1024 --p-change 0.05 --out DIR

For every run directory: greedy rollouts of its newest checkpoint (agent `--seed-index`, default
the run's first) on `--envs` fresh environments with door-change probability `--p-change`, recording z_H and
z_L of the last token after each segment of every step (`acting.greedy_rollout(with_trace=True)`,
the same forward pass as acting). Every run sees the same environments at reset (same
`--eval-seed`). Runs trained with carry Z (config.json `model.z_carry` last_token or full) are also
evaluated with z reset at every step (an intervention: same weights, no carried z).

Steps are split into "changed" / "unchanged" (hrm_jax.analysis.convergence.env_changed: a cell on a
shortest path from the agent to the goal at the previous step changed, or the goal became
reachable); the first step of each episode and steps after termination are excluded.

Writes to --out: convergence.png (median MSE between z after segment k and after the last
segment), divergence.png (same against the first segment), intervention.png (carry-Z checkpoints
evaluated with reset z), report.md (figures, tables, one verdict per paper claim) and
analysis.json (every number in the report). (hrm_jax.analysis.report).
"""
from __future__ import annotations

import argparse
import os
import sys

from hrm_jax.analysis.report import OPTIONS, PROG


def build_parser():
    from hrm_jax.cli import OneLineParser, analysis_segments, non_negative_int, positive_int, probability, seed_int

    p = OneLineParser(prog=PROG, description="Convergence / divergence of the HRM's recurrent state in greedy "
                      "rollouts of trained runs (carry Z vs reset Z; environment changed vs not).",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by experiments.run / experiments.sweep")
    p.add_argument("--envs", type=positive_int, default=OPTIONS["envs"], help="greedy episodes (fresh environments) per run")
    p.add_argument("--p-change", type=probability, default=OPTIONS["p_change"], help="door-change probability during the analysis (the authors: 0.05)")
    p.add_argument("--seed-index", type=int, default=None, help="which agent of each run to analyse: its index, the `seed` "
                   "column of metrics.jsonl (default: the run's first agent, 0 unless the run was added to a sweep)")
    p.add_argument("--eval-seed", type=seed_int, default=OPTIONS["eval_seed"], help="seed of the evaluation environments (shared by all runs)")
    p.add_argument("--batch", type=positive_int, default=OPTIONS["batch"], help="environments per rollout program (bounds memory: the trace "
                   "is 2 x max_steps x segments x batch x hidden floats)")
    p.add_argument("--segments", type=analysis_segments, default=OPTIONS["segments"],
                   help="segments per environment step in the rollouts (default: each run's segments_per_step). More than "
                   "the run was trained with gives longer convergence curves (HRM run deeper at inference); the action "
                   "is then taken after the last of them, so success may differ from training")
    p.add_argument("--bootstrap", type=non_negative_int, default=OPTIONS["bootstrap"], help="episode-bootstrap resamples behind each verdict (0: point estimates only)")
    p.add_argument("--out", default=None, help="output directory (default: <common parent of the runs>/analysis)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hrm_jax.analysis.report import AnalysisError, analyze_runs
    from hrm_jax.cli import fail

    out = args.out
    if out is None:
        parents = {os.path.dirname(os.path.abspath(d.rstrip("/"))) for d in args.run_dirs}
        out = os.path.join(parents.pop() if len(parents) == 1 else "runs", "analysis")
    try:
        analyze_runs(args.run_dirs, out, envs=args.envs, p_change=args.p_change, seed_index=args.seed_index,
                     eval_seed=args.eval_seed, batch=args.batch, segments=args.segments, bootstrap=args.bootstrap,
                     command=" ".join([PROG] + (argv if argv is not None else sys.argv[1:])))
    except AnalysisError as exc:
        fail(str(exc), PROG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
