"""The whole reproduction in one command: the carry-Z vs reset-Z sweep on both mazes, the analysis
of z over every agent pair, and one report.

    python -m experiments.reproduce --parallel                       # cpu preset, 5 seeds, both mazes
    python -m experiments.reproduce --parallel --preset random_goal  # the preset that learns the random goal here
    python -m experiments.reproduce --preset paper                   # the paper's configuration (a GPU)
    python -m experiments.reproduce --resume --out runs/reproduce-cpu   # go on after an interrupt
    python -m experiments.reproduce --dry-run                        # the commands it would run, nothing trained

Per maze E (`--envs`, default four_rooms corridor_maze), one after the other:
1. `experiments.sweep --env E --z-carry last_token reset --seeds S` into OUT/E/ (with --parallel the
   two conditions train side by side, a core each): comparison.png/.md/.json;
2. `experiments.analyze_agents OUT/E` into OUT/E/agents/: the analysis of z for every agent pair
   and the tally of the paper's claims (summary.md/.json); with --parallel the pairs are dealt to
   one process per core.
Then OUT/report.md: per maze the comparison figure, which condition reached 95% first in how many
seed pairs, the claim tally, and the wall time of every step; the machine it ran on.

Every config flag is passed on to the sweeps (the same flags as experiments.run). An interrupted
reproduction goes on with --resume: finished sweeps are kept, an unfinished one resumes from its
checkpoints, and the analyses run again.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

PROG = "python -m experiments.reproduce"
ENVS = ("four_rooms", "corridor_maze")
SKIP = ("name", "z_carry", "seeds", "first_agent")  # set per maze and per condition by the reproduction


def build_parser() -> argparse.ArgumentParser:
    from hrm_jax.cli import OneLineParser, add_config_flags, analysis_segments, positive_int

    p = OneLineParser(prog=PROG, description="Reproduce the paper: the carry-Z vs reset-Z sweep on each maze, the "
                      "analysis of z over every agent pair, one report.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS, metavar="ENV",
                   help=f"mazes, one sweep each ({', '.join(ENVS)})")
    p.add_argument("--seeds", type=positive_int, default=5, help="agents per condition (the paper: 5)")
    p.add_argument("--out", default=None, help="output directory (default: runs/reproduce-<preset>); one sweep directory per maze inside")
    p.add_argument("--resume", action="store_true", help="go on with the reproduction in --out (finished sweeps are kept)")
    p.add_argument("--parallel", action="store_true", help="train each sweep's two conditions side by side, one process per "
                   "condition pinned to its share of the CPU cores (experiments.sweep --parallel), and analyse the "
                   "agent pairs side by side, one process per core (experiments.analyze_agents --parallel)")
    p.add_argument("--analysis-envs", type=positive_int, default=1024, help="greedy episodes per agent in the analysis of z")
    p.add_argument("--segments", type=analysis_segments, default=None,
                   help="segments per step in the analysis rollouts (default: as trained)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="check everything, print each step's command and the "
                   "gradient steps it trains, then exit without training")
    add_config_flags(p, skip=SKIP)
    return p


def config_flags(args: argparse.Namespace) -> list[str]:
    """The config flags given on the command line, as flags again (to pass on to the sweeps)."""
    from hrm_jax.cli import SECTIONS, flag_name

    out = ["--preset", args.preset]
    for section, _ in SECTIONS:
        for k, v in vars(args).items():
            if k.startswith(section + "__") and v is not None:
                out += [flag_name(section, k.split("__", 1)[1]), str(v).lower() if isinstance(v, bool) else str(v)]
    return out


def steps(args: argparse.Namespace, out: str) -> list[tuple[str, str, list[str]]]:
    """[(maze, "sweep" | "analysis", argv)] in the order they run."""
    plan = []
    for env in args.envs:
        sweep_dir = os.path.join(out, env)
        sweep = (["--env", env, "--z-carry", "last_token", "reset", "--seeds", str(args.seeds), "--out", sweep_dir]
                 + config_flags(args) + ["--resume"] * args.resume + ["--parallel"] * args.parallel
                 + ["--no-progress"] * args.no_progress)
        analysis = [sweep_dir, "--envs", str(args.analysis_envs)] + (
            ["--segments", str(args.segments)] if args.segments is not None else []) + ["--parallel"] * args.parallel
        plan += [(env, "sweep", sweep), (env, "analysis", analysis)]
    return plan


def plan_text(plan: list[tuple[str, str, list[str]]], cfgs: dict[str, dict]) -> str:
    """The steps as the commands they run, with the gradient steps each sweep trains
    (cfgs: {maze: {condition: Config}})."""
    import shlex

    lines, total = [], 0
    for env, kind, argv_ in plan:
        module = "experiments.sweep" if kind == "sweep" else "experiments.analyze_agents"
        lines.append(f"{env} {kind}: python -m {module} {shlex.join(argv_)}")
        if kind == "sweep":
            for c, cfg in cfgs[env].items():
                t = cfg.train
                total += t.seeds * t.total_grad_steps
                lines.append(f"    {c}: {t.seeds} agent(s) x {t.total_grad_steps:,} gradient steps")
    lines.append(f"in all: {total:,} agent gradient steps (with --resume, what is trained already is kept)")
    return "\n".join(lines)


def report_markdown(meta: dict, parts: dict[str, dict]) -> str:
    """report.md from each maze's comparison.json and agents/summary.json."""
    from hrm_jax.analysis.agents import tally_lines

    out = ["# Reproduction: carry Z vs reset Z, and the analysis of z", "", f"Command: `{meta['command']}`", "",
           f"Machine: {meta['machine']}. Started {meta['started']}, {meta['total_s']:,.0f} s in all "
           "(this invocation; the training time of each condition below counts every invocation).", ""]
    for env, p in parts.items():
        res, tally = p["comparison"], p["tally"]
        out += [f"## {env}", "", f"![carry vs reset]({env}/comparison.png)", "",
                f"Sweep: [`{env}/comparison.md`]({env}/comparison.md) ({p['sweep_s']:,.0f} s); analysis of z: "
                f"[`{env}/agents/summary.md`]({env}/agents/summary.md) ({p['analysis_s']:,.0f} s).", ""]
        for c, pair in res["before_baseline"].items():
            auc = res["mean_success_above_baseline"][c]
            out.append(f"- {res['conditions'][c]['label']} reached 95% greedy success before Reset Z in "
                       f"**{pair['condition_first']} of {pair['pairs']}** seed pairs (Reset Z first {pair['baseline_first']}, "
                       f"neither {pair['neither']}; the paper: 4 of 5 in the maze); higher mean success (area under the "
                       f"curve) in {auc['condition_higher']} of {auc['pairs']}.")
        for c, d in res["conditions"].items():
            f, trained = d["final"], p["train_s"].get(c)
            out.append(f"- {d['label']}, greedy success at {f['grad_steps']:,} gradient steps: "
                       f"{', '.join(f'{v:.2f}' for v in f['success'])}"
                       + (f" (trained in {trained:,.0f} s over all invocations)" if trained is not None else ""))
        out += ["", "The paper's claims over the agent pairs (analysis of z):", ""] + tally_lines(tally) + [""]
    return "\n".join(out)


def training_seconds(run_dirs: list[str]) -> float | None:
    """Wall time a condition's agents trained, from each run directory's summary.json (which counts
    every invocation: a resumed run adds its earlier time). Several run directories (seeds added by a
    later sweep) trained one after the other, so their times add up. None if one has no summary."""
    total = 0.0
    for d in run_dirs:
        path = os.path.join(d, "summary.json")
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            total += max(s["wall_time_s"] for s in json.load(fh)["seeds"])
    return total


def sweep_configs(args: argparse.Namespace, out: str) -> dict[str, dict]:
    """{maze: {condition: Config}} of the sweeps (what `experiments.sweep` resolves from each step's
    command line), every one checked before anything trains (one line, exit 2)."""
    from dataclasses import replace

    from hrm_jax.acting import make_env
    from hrm_jax.cli import config_from_args, fail
    from hrm_jax.sweep import condition_configs, holds_runs

    base = config_from_args(args, PROG)
    cfgs = {}
    for env in args.envs:
        cfg = replace(base, env=replace(base.env, name=env), train=replace(base.train, seeds=args.seeds))
        try:
            make_env(cfg.env)
            cfgs[env] = condition_configs(cfg, "model", "z_carry", ["last_token", "reset"])
        except ValueError as exc:  # ConfigError too
            fail(str(exc), PROG)
        sweep_dir = os.path.join(out, env)
        if not args.resume and holds_runs(sweep_dir, list(cfgs[env])):
            fail(f"--out {out}: {sweep_dir} already holds runs of these conditions (use --resume to continue them, "
                 "or another --out)", PROG)
    return cfgs


def run_step(args: argparse.Namespace, out: str, env: str, kind: str, argv: list[str], cfgs: dict) -> int:
    """One step of the plan (the sweep of a maze, or the analysis of its agents); its exit status."""
    from hrm_jax.analysis import agents
    from hrm_jax.analysis.report import OPTIONS, AnalysisError
    from hrm_jax.cli import fail
    from hrm_jax.config import ConfigError
    from hrm_jax.sweep import run_sweep

    sweep_dir = os.path.join(out, env)
    try:
        if kind == "sweep":
            return run_sweep(sweep_dir, cfgs, parallel=args.parallel, progress=not args.no_progress,
                             keep_seed_loop=args.train__seed_loop is None)
        options = dict(OPTIONS, envs=args.analysis_envs, segments=args.segments)
        return agents.analyze_agents(sweep_dir, os.path.join(sweep_dir, "agents" + (f"-s{args.segments}" if args.segments else "")),
                                     "last_token", parallel=args.parallel, command=" ".join([agents.PROG] + argv), **options)
    except (ConfigError, AnalysisError) as exc:
        fail(str(exc), PROG)


def main(argv: list[str] | None = None) -> int:
    from hrm_jax.cli import fail

    args = build_parser().parse_args(argv)
    if len(set(args.envs)) != len(args.envs):
        fail(f"--envs {' '.join(args.envs)}: a maze is repeated", PROG)
    out = args.out or os.path.join("runs", f"reproduce-{args.preset}")
    plan = steps(args, out)
    cfgs = sweep_configs(args, out)
    if args.dry_run:
        print(plan_text(plan, cfgs))
        return 0
    os.makedirs(out, exist_ok=True)
    started, t_all = datetime.datetime.now().isoformat(timespec="seconds"), time.time()
    parts: dict[str, dict] = {}
    for env, kind, argv_ in plan:
        print(f"== {PROG}: {env}: {kind}", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            status = run_step(args, out, env, kind, argv_, cfgs[env])
        except KeyboardInterrupt:  # training saves its checkpoint itself (hrm_jax.runner.train_run)
            status = 130
        parts.setdefault(env, {})[f"{kind}_s"] = time.time() - t0
        if status != 0:
            print(f"{PROG}: {env}: {kind} stopped with status {status}; go on with --resume --out {out}", file=sys.stderr)
            return status
    for env in args.envs:
        with open(os.path.join(out, env, "comparison.json")) as fh:
            parts[env]["comparison"] = json.load(fh)
        parts[env]["train_s"] = {c: training_seconds(d["run_dirs"])
                                 for c, d in parts[env]["comparison"]["conditions"].items()}
        with open(os.path.join(out, env, "agents", "summary.json")) as fh:
            parts[env]["tally"] = json.load(fh)["tally"]
    from hrm_jax.machine import machine_info, machine_text

    meta = dict(command=" ".join([PROG] + (argv if argv is not None else sys.argv[1:])), started=started,
                total_s=time.time() - t_all, machine=machine_text(machine_info()).removeprefix("machine: ").replace("\n", "; "))
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(report_markdown(meta, parts))
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump(dict(meta=meta, parts={e: {k: p[k] for k in ("sweep_s", "analysis_s", "train_s")} for e, p in parts.items()}),
                  fh, indent=2)
    print(f"\nwrote {os.path.join(out, 'report.md')} ({meta['total_s']:,.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
