"""The analysis of z for every agent of a sweep, and a tally of the paper's claims over agents.

For every agent index held by both the carry-Z condition and the reset-Z condition of a sweep (in
any of a condition's run directories, hrm_jax.sweep.condition_runs), hrm_jax.analysis.report
analyses that pair of agents (same environments, same options) into OUT/agent-<i>/. Then
OUT/summary.md and summary.json: per agent pair the greedy success of both agents (and of the
carry agent with z reset), per paper claim its verdict and which of its comparisons held
robustly, split by module (z_H, z_L), and per claim in how many pairs it is supported. One agent
pair can be an accident of its seed (docs/results/random_goal.md: which module shows the paper's effect
flipped between two agents); the tally says how often it is.
"""
from __future__ import annotations

import json
import os
import sys

from hrm_jax.analysis.report import PROG as ANALYZE_PROG
from hrm_jax.analysis.report import AnalysisError, analyze_runs

# the command that analyses sweeps: its messages name it
PROG = "python -m experiments.analyze_agents"
ZS = ("z_H", "z_L")
# short names of claims.judge_claims' first four claims, in its order (the fifth is an observation)
CLAIMS = ("carry Z: smaller first-to-final distance", "carry Z: a change raises the first-to-final distance",
          "carry Z: converges faster (curve below)", "divergence: set more by carrying z than by the change")


def agents_of(sweep_dir: str, condition: str) -> dict[int, str]:
    """{agent index: the run directory holding it} over every run directory of a sweep condition."""
    from hrm_jax.sweep import condition_runs

    held = {}
    for run_dir in condition_runs(sweep_dir, condition):
        with open(os.path.join(run_dir, "config.json")) as fh:
            t = json.load(fh)["train"]
        for i in range(t.get("first_agent", 0), t.get("first_agent", 0) + t["seeds"]):
            held[i] = run_dir
    return held


def module_marks(checks: list[dict]) -> str:
    """'z_H yes, z_L no': per module, whether all / some / none of its comparisons held robustly."""
    marks = []
    for z in ZS:
        mine = [c["robust"] for c in checks if c["what"].startswith(z)]
        if mine:
            marks.append(f"{z} {'yes' if all(mine) else 'partly' if any(mine) else 'no'}")
    return ", ".join(marks)


def verdict_word(verdict: str) -> str:
    return "supported" if verdict == "supported" else "partly" if verdict.startswith("partly") else \
        "cannot be tested" if verdict.startswith("cannot") else "not supported"


def pair_summary(agent: int, analysis: dict) -> dict:
    """The success rates and per-claim verdicts of one agent pair, from its analysis.json."""
    success = {}
    for e in analysis["evaluations"]:
        key = "carry_with_z_reset" if e["z_mode_kind"] == "intervention" else e["variant"]
        success[key] = e["summary"]["success"]
    claims = [dict(claim=name, verdict=verdict_word(c["verdict"]), modules=module_marks(c.get("checks", [])))
              for name, c in zip(CLAIMS, analysis["claims"])]
    return dict(agent=agent, success=success, claims=claims)


def tally(pairs: list[dict]) -> list[dict]:
    """Per claim: in how many pairs it is supported / partly / not, and holds fully for z_H / z_L."""
    out = []
    for k, name in enumerate(CLAIMS):
        words = [p["claims"][k]["verdict"] for p in pairs]
        row = dict(claim=name, pairs=len(pairs), supported=words.count("supported"), partly=words.count("partly"),
                   not_supported=words.count("not supported"))
        for z in ZS:
            row[f"{z}_holds"] = sum(f"{z} yes" in p["claims"][k]["modules"] for p in pairs)
        out.append(row)
    return out


def tally_lines(rows: list[dict]) -> list[str]:
    """The tally (rows of `tally`) as a markdown table."""
    out = ["| claim | supported | partly | not supported | holds for z_H | holds for z_L |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = r["pairs"]
        out.append(f"| {r['claim']} | {r['supported']} of {n} | {r['partly']} of {n} | {r['not_supported']} of {n} | "
                   f"{r['z_H_holds']} of {n} | {r['z_L_holds']} of {n} |")
    return out


def summary_markdown(meta: dict, pairs: list[dict], rows: list[dict]) -> str:
    out = ["# The paper's claims over every agent pair of a sweep", "", f"Command: `{meta['command']}`", "",
           f"Sweep `{meta['sweep_dir']}`: carry Z (`{meta['carry']}`) agent i against reset Z agent i, each pair analysed "
           f"by `experiments.analyze` on the same {meta['envs']} environments (eval seed {meta['eval_seed']}, p_change "
           f"{meta['p_change']}, segments {meta['segments'] or 'as trained'}); reports in `agent-<i>/`. A module's "
           "comparisons hold robustly when they hold in >= 95% of the episode-bootstrap resamples.", "",
           "## Tally over agent pairs", ""] + tally_lines(rows)
    out += ["", "## Per agent pair", "",
            "| agent | success carry / reset / carry with z reset | " + " | ".join(CLAIMS) + " |",
            "|---:|---|" + "---|" * len(CLAIMS)]
    for p in pairs:
        s = p["success"]
        cells = [f"{c['verdict']} ({c['modules']})" if c["modules"] else c["verdict"] for c in p["claims"]]
        out.append(f"| [{p['agent']}](agent-{p['agent']}/report.md) | {s.get('carry', float('nan')):.3f} / "
                   f"{s.get('reset', float('nan')):.3f} / {s.get('carry_with_z_reset', float('nan')):.3f} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def analyse_pairs(jobs: list[tuple[int, dict]]) -> int:
    """analyze_runs on each (agent, its arguments) in turn, in this process. The runs' checkpoints
    are restored once and the rollout programs compiled once for all the pairs (analyze_runs'
    cache). Returns the first non-zero status (2: input the analysis cannot use)."""
    cache: dict = {}
    for i, job in jobs:
        carry_dir, reset_dir = job["run_dirs"]
        print(f"== agent {i}: {carry_dir} vs {reset_dir} -> {job['out']}", file=sys.stderr, flush=True)
        try:
            analyze_runs(**job, cache=cache)
        except AnalysisError as exc:
            print(f"{ANALYZE_PROG}: error: {exc}", file=sys.stderr)
            return 2
    return 0


def analyse_side_by_side(jobs: list[tuple[int, dict]], out: str) -> int:
    """The agent pairs dealt round-robin to one process per CPU core (at most one per pair), each
    pinned to its core (hrm_jax.parallel: as with training, programs this small use a second core
    poorly). Each process writes OUT/analysis-<k>.log. Returns the first non-zero status."""
    from hrm_jax import parallel

    cores = sorted(os.sched_getaffinity(0))
    n = min(len(cores), len(jobs))
    os.makedirs(out, exist_ok=True)
    procs = []
    for k, group in enumerate(parallel.core_groups(cores, n)):
        mine = jobs[k::n]
        log_path = os.path.join(out, f"analysis-{k}.log")
        procs.append((parallel.start(analyse_pairs, (mine,), group, log_path, name=f"analysis-{k}"), log_path))
        print(f"== agents {', '.join(str(i) for i, _ in mine)}: cores {','.join(map(str, group))}, log {log_path}",
              file=sys.stderr, flush=True)
    status = 0
    for proc, log_path in procs:
        code = parallel.wait(proc, f"{PROG}: interrupt: waiting for the analyses to stop")
        if code != 0:
            print(f"{PROG}: {proc.name} stopped with status {code} (log {log_path})", file=sys.stderr)
        status = status or code
    return status


def analyze_agents(sweep_dir: str, out: str, carry_condition: str, *, envs: int, p_change: float, eval_seed: int,
                   batch: int, segments: int | None, bootstrap: int, parallel: bool, command: str) -> int:
    """Analyse every carry/reset agent pair of a sweep into OUT/agent-<i>/ (side by side with
    `parallel`) and write the tally, OUT/summary.md and summary.json. Returns the exit status;
    raises AnalysisError if the sweep has no agent pair."""
    carry, reset = agents_of(sweep_dir, carry_condition), agents_of(sweep_dir, "reset")
    if not carry or not reset:
        missing = carry_condition if not carry else "reset"
        raise AnalysisError(f"{sweep_dir}: no run of condition {missing} (a directory written by experiments.sweep "
                            f"with --z-carry {carry_condition} reset)")
    common = sorted(set(carry) & set(reset))
    if not common:
        raise AnalysisError(f"{sweep_dir}: the carry agents {sorted(carry)} and reset agents {sorted(reset)} share no index")
    options = dict(envs=envs, p_change=p_change, eval_seed=eval_seed, batch=batch, segments=segments, bootstrap=bootstrap)
    # each pair's report names the `experiments.analyze` command that writes the same report
    forward = ["--envs", str(envs), "--p-change", str(p_change), "--eval-seed", str(eval_seed),
               "--batch", str(batch), "--bootstrap", str(bootstrap)] + (["--segments", str(segments)] if segments is not None else [])
    jobs = []
    for i in common:
        pair_out = os.path.join(out, f"agent-{i}")
        argv = [carry[i], reset[i], "--seed-index", str(i), "--out", pair_out] + forward
        jobs.append((i, dict(run_dirs=[carry[i], reset[i]], out=pair_out, seed_index=i,
                             command=" ".join([ANALYZE_PROG] + argv), **options)))
    status = analyse_side_by_side(jobs, out) if parallel and len(jobs) > 1 else analyse_pairs(jobs)
    if status != 0:
        return status
    pairs = []
    for i in common:
        with open(os.path.join(out, f"agent-{i}", "analysis.json")) as fh:
            pairs.append(pair_summary(i, json.load(fh)))
    rows = tally(pairs)
    meta = dict(command=command, sweep_dir=sweep_dir, carry=carry_condition, envs=envs, eval_seed=eval_seed,
                p_change=p_change, segments=segments)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(dict(meta=meta, tally=rows, pairs=pairs), fh, indent=2)
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write(summary_markdown(meta, pairs, rows))
    print(f"\nwrote {out}/summary.md, summary.json")
    for r in rows:
        print(f"- {r['claim']}: supported in {r['supported']} of {r['pairs']} pairs, partly in {r['partly']} "
              f"(z_H holds in {r['z_H_holds']}, z_L in {r['z_L_holds']})")
    return 0
