"""A sweep: one multi-seed run directory per condition (a --z-carry mode, or a value of any config
field), OUT/<condition>/, plus OUT/<condition>.agents-A-B/ for agents added later. Plans which
run directories bring a condition to its agents and total steps (new, resumed or extended ones)
and trains them, one condition after the other or side by side (hrm_jax.parallel). The
comparison of the conditions is hrm_jax.comparison."""
from __future__ import annotations

import json
import math
import os
import sys

from hrm_jax.runlog import METRICS, read_rows

# the command that trains sweeps: its messages name it
PROG = "python -m experiments.sweep"
Z_CHOICES = ("last_token", "full", "reset")


def condition_label(condition: str) -> str:
    """"Reset Z" / "Carry Z (last_token)" for a --z-carry condition; a --vary condition is
    named by its field and value already ("q_init_scale=0.1")."""
    if condition not in Z_CHOICES:
        return condition
    return "Reset Z" if condition == "reset" else f"Carry Z ({condition})"


def vary_condition(field: str, value) -> str:
    """The condition (and run directory) name of one value of a --vary field: "q_init_scale=0.1"."""
    return f"{field}={str(value).lower() if isinstance(value, bool) else value}"


def part_name(condition: str, first: int, last: int) -> str:
    """The run directory of agents first..last added to a condition's sweep after its first run."""
    return f"{condition}.agents-{first}-{last}"


def condition_runs(sweep_dir: str, condition: str) -> list[str]:
    """Every run directory of a condition that has a config.json: OUT/<condition> (its first agents)
    and OUT/<condition>.agents-A-B (agents added later), ordered by first agent."""
    found = []
    names = os.listdir(sweep_dir) if os.path.isdir(sweep_dir) else []
    for name in [condition] + [n for n in names if n.startswith(condition + ".agents-")]:
        path = os.path.join(sweep_dir, name, "config.json")
        if os.path.isfile(path):
            with open(path) as fh:
                found.append((json.load(fh).get("train", {}).get("first_agent", 0), os.path.join(sweep_dir, name)))
    return [d for _, d in sorted(found)]


def finished(run_dir: str, cfg) -> bool:
    """Whether a run directory trained to cfg's total (its last evaluation point) and wrote its summary."""
    p = os.path.join(run_dir, METRICS)
    if not os.path.isfile(p):
        return False
    rows = read_rows(p)
    total = math.ceil(cfg.train.total_grad_steps / cfg.train.eval_every) * cfg.train.eval_every
    return bool(rows) and max(r["grad_steps"] for r in rows) >= total and os.path.isfile(os.path.join(run_dir, "summary.json"))


def plan_runs(sweep_dir: str, condition: str, cfg, keep_seed_loop: bool = False) -> list[tuple[str, object, bool]]:
    """[(run_dir, config, resume)] that bring a condition to its agents cfg.train.first_agent ..
    first_agent + seeds - 1 and cfg.train.total_grad_steps: its existing run directories (each
    resumed, or extended by a larger total), then one new directory for the agents a larger --seeds
    adds. An existing run goes on with its own seed loop if `keep_seed_loop` (no --seed-loop given:
    bit-identical to an uninterrupted run), else with cfg's. Raises ConfigError (one line) if an
    existing run was trained with another config, starts at another agent than --first-agent, or
    --seeds would drop agents."""
    from dataclasses import replace

    from hrm_jax.runner import extended, with_seed_loop
    from hrm_jax.config import Config, ConfigError

    start = cfg.train.first_agent
    end = start + cfg.train.seeds  # one past the last agent
    plan, covered = [], start
    for run_dir in condition_runs(sweep_dir, condition):
        with open(os.path.join(run_dir, "config.json")) as fh:
            saved = Config.from_dict(json.load(fh))
        try:  # a larger --total-grad-steps extends the run (hrm_jax.runner.extended)
            saved = extended(saved, cfg.train.total_grad_steps)
        except ConfigError as exc:
            raise ConfigError(f"--resume: {run_dir}: {exc}") from None
        # the same config, except which agents this directory holds (and perhaps how it loops over them)
        want = replace(cfg, train=replace(cfg.train, seeds=saved.train.seeds, first_agent=saved.train.first_agent))
        want = with_seed_loop(want, saved.train.seed_loop) if keep_seed_loop else want
        saved = with_seed_loop(saved, want.train.seed_loop)
        if saved != want:
            raise ConfigError(f"--resume: {run_dir} was trained with a different config "
                              f"({', '.join(want.differing_fields(saved))})")
        if saved.train.first_agent != covered:
            before = (f"--first-agent is {start}" if covered == start else
                      f"the condition's runs before it end at agent {covered - 1}")
            raise ConfigError(f"--resume: {run_dir} holds agents from {saved.train.first_agent} on, but {before}")
        plan.append((run_dir, want, True))
        covered += saved.train.seeds
    if end < covered:
        raise ConfigError(f"--seeds={cfg.train.seeds}: {sweep_dir} already holds agents {start}..{covered - 1} of "
                          f"{condition}; give --seeds {covered - start} or more")
    if end > covered:
        new = replace(cfg, train=replace(cfg.train, seeds=end - covered, first_agent=covered))
        name = condition if covered == start else part_name(condition, covered, end - 1)
        plan.append((os.path.join(sweep_dir, name), new, False))
    return plan


def train_plan(condition: str, plan: list[tuple[str, object, bool]], progress: bool) -> int:
    """Train one condition's run directories (plan_runs) one after the other; the first non-zero
    exit status stops it."""
    from hrm_jax.runner import train_run

    for run_dir, cfg, resume in plan:
        if resume and finished(run_dir, cfg):
            print(f"{condition_label(condition)}: {run_dir} is finished, kept", file=sys.stderr)
            continue
        t = cfg.train
        print(f"== {condition_label(condition)}: agents {t.first_agent}..{t.first_agent + t.seeds - 1} ({t.seed_loop}) -> {run_dir}",
              file=sys.stderr, flush=True)
        status = train_run(cfg, run_dir, resume=resume, progress=progress)
        if status != 0:
            print(f"{PROG}: condition {condition} stopped with status {status}", file=sys.stderr)
            return status
    return 0


def train_side_by_side(plans: dict, sweep_dir: str) -> int:
    """One process per condition, each pinned to its own share of the cores (at least one each),
    all at once (hrm_jax.parallel). On this CPU two programs on one core each finish both
    conditions sooner than one after the other on both cores (the `cpu` preset: 0.089 s per
    iteration on 2 cores vs 0.109 s on one; measured 1.6x, docs/scaling.md).
    Returns the first non-zero status."""
    from hrm_jax import parallel

    cores = sorted(os.sched_getaffinity(0))
    procs = {}
    for (c, plan), group in zip(plans.items(), parallel.core_groups(cores, len(plans))):
        log_path = os.path.join(sweep_dir, f"{c}.log")
        procs[c] = parallel.start(train_plan, (c, plan, False), group, log_path, name=f"sweep-{c}")
        print(f"== {condition_label(c)}: cores {','.join(map(str, group))}, log {log_path}", file=sys.stderr, flush=True)
    status = 0
    for c, proc in procs.items():
        code = parallel.wait(proc, f"{PROG}: interrupt: waiting for the conditions to save their checkpoints")
        print(f"{condition_label(c)}: exit status {code} (log {os.path.join(sweep_dir, c + '.log')})", file=sys.stderr)
        status = status or code
    return status


def train_conditions(plans: dict, sweep_dir: str, parallel: bool, progress: bool) -> int:
    """Train every condition's plan ({condition: plan_runs(...)}): side by side, or one after the
    other until one stops with a non-zero status. Returns the first non-zero status."""
    if parallel:
        return train_side_by_side(plans, sweep_dir)
    for c, plan in plans.items():
        status = train_plan(c, plan, progress)
        if status != 0:
            return status
    return 0


def condition_configs(base, section: str, name: str, values: list) -> dict:
    """{condition: config}: `base` with the field `section.name` set to each value. A z-carry sweep
    names its conditions by the z carry ("reset"), any other by field and value (vary_condition).
    Raises ConfigError (one line) if a value makes an invalid config."""
    from dataclasses import replace

    from hrm_jax.config import validate

    named = (lambda v: v) if (section, name) == ("model", "z_carry") else (lambda v: vary_condition(name, v))
    return {named(v): validate(replace(base, **{section: replace(getattr(base, section), **{name: v})})) for v in values}


def holds_runs(sweep_dir: str, conditions: list[str]) -> bool:
    """Whether the sweep directory already holds a (non-empty) run directory of one of the conditions."""
    return os.path.isdir(sweep_dir) and any(os.listdir(os.path.join(sweep_dir, c)) for c in conditions
                                            if os.path.isdir(os.path.join(sweep_dir, c)))


def run_sweep(sweep_dir: str, cfgs: dict, *, train: bool = True, parallel: bool = False, progress: bool = True,
              keep_seed_loop: bool = True, sustain: int = 1, varied: str | None = None) -> int:
    """Train every condition ({condition: config}) to its config (plan_runs; `keep_seed_loop`: an
    existing run goes on with its own seed loop) unless not `train`, then compare them
    (hrm_jax.comparison) and print the pairs' verdicts. `varied`: the field a --vary sweep varies
    ("train.lr"; its first condition is the baseline), None for a z-carry sweep (baseline reset Z).
    Returns the exit status; raises ConfigError (one line) before training anything if a
    condition's existing runs do not fit its config, or `parallel` has fewer cores than conditions."""
    from hrm_jax.comparison import compare, run_title
    from hrm_jax.config import ConfigError
    from hrm_jax.runner import cap_full_z_capacity

    if train:
        os.makedirs(sweep_dir, exist_ok=True)
        plans = {c: plan_runs(sweep_dir, c, cap_full_z_capacity(cfg), keep_seed_loop)  # every condition checked first
                 for c, cfg in cfgs.items()}
        cores = sorted(os.sched_getaffinity(0))
        if parallel and len(cores) < len(plans):
            raise ConfigError(f"--parallel: {len(plans)} conditions need at least {len(plans)} CPU cores; this process may "
                              f"use {len(cores)} ({', '.join(map(str, cores))}); drop --parallel to train them one after the other")
        status = train_conditions(plans, sweep_dir, parallel, progress)
        if status != 0:
            print(f"{PROG}: training stopped with status {status}; the comparison is not written", file=sys.stderr)
            return status
    conditions = list(cfgs)
    res = compare(sweep_dir, conditions, title=run_title(os.path.join(sweep_dir, conditions[0]), ignore=(varied,) if varied else ()),
                  sustain=sustain, baseline=conditions[0] if varied else "reset")
    print(f"\nwrote {os.path.join(sweep_dir, 'comparison.png')}, comparison.md, comparison.json")
    base = condition_label(res["baseline"]) if res["baseline"] else ""
    paper = " (paper: 4 of 5 in the maze)" if "paper" in res else ""
    for c, p in res["before_baseline"].items():
        print(f"{condition_label(c)} reached 95% before {base} in {p['condition_first']} of {p['pairs']} seed pairs{paper}")
    for c, p in res["mean_success_above_baseline"].items():
        print(f"{condition_label(c)} had a higher mean success (area under the curve) than {base} in "
              f"{p['condition_higher']} of {p['pairs']} seed pairs")
    return 0
