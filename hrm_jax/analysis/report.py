"""The analysis of z of trained runs (paper §3.2, figures 5-7): greedy rollouts of each run's
newest checkpoint (hrm_jax.analysis.rollouts), carry-Z runs also with z reset at every step (an
intervention), the paper's claims judged (hrm_jax.analysis.claims), and the report: figures,
report.md and analysis.json in one directory."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from hrm_jax.analysis.claims import fmt, judge_claims
from hrm_jax.analysis.rollouts import CONDS, ZS, rollout_program, rollout_records, summarize

# the command that writes these reports: its warnings name it
PROG = "python -m experiments.analyze"
# the analysis options' defaults (experiments.analyze, analyze_agents and reproduce): episodes, the
# door-change probability (the authors': 0.05), evaluation seed, rollout batch, segments (None: as
# trained) and bootstrap resamples
OPTIONS = dict(envs=1024, p_change=0.05, eval_seed=12345, batch=256, segments=None, bootstrap=200)


class AnalysisError(ValueError):
    """Input the analysis cannot use (one line, naming the run directory or option)."""


def _plot_panels(lines: list[dict], path: str, ylabel: str, title: str) -> None:
    """lines: dicts with x, y_<z>, label, color, ls. One panel per z, log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, z in zip(axes, ZS):
        for ln in lines:
            y = np.asarray(ln[f"y_{z}"], float)
            y = np.where(y > 0, y, np.nan)
            if np.all(np.isnan(y)):
                continue
            ax.plot(ln["x"], y, color=ln["color"], ls=ln["ls"], marker="o", ms=3, label=ln["label"])
        ax.set_yscale("log", nonpositive="mask")
        xs = sorted({x for ln in lines for x in ln["x"]})
        if xs:
            ax.set_xticks(xs)
            ax.set_xlim(xs[0] - 0.5, xs[-1] + 0.5)
        ax.set(xlabel="segment k", ylabel=ylabel.format(z=z), title=f"{title}: {z}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_lines(evals: list[dict], kind: str, intervention: bool = False) -> list[dict]:
    lines = []
    for i, e in enumerate(evals):
        S = e["segments"]
        x = list(range(1, S)) if kind == "conv" else list(range(2, S + 1))
        for c in CONDS:
            lines.append(dict(
                x=x, **{f"y_{z}": e["summary"]["medians"][f"{kind}_{z}_{c}"] for z in ZS},
                label=f"{e['label']}, {c} (n={e['summary']['counts'][c]})",
                color=f"C{i}", ls="-" if c == "changed" else "--"))
    return lines


def report_markdown(meta: dict, evals: list[dict], claims: list[dict], figures: dict[str, str]) -> str:
    out = ["# Analysis of the recurrent state (paper §3.2, figures 5-7)", "",
           f"Command: `{meta['command']}`", "",
           f"Greedy rollouts: {meta['envs']} fresh environments per evaluation (same environments at reset for every run, "
           f"eval seed {meta['eval_seed']}), p_change {meta['p_change']}, agent (seed index) {meta['seed_index']} of each run. "
           "z_H and z_L of the last token after each segment of every step; steps split by whether the environment changed "
           "since the previous step (a cell on the previous shortest path from the agent to the goal changed its blocked "
           "status, or the goal became reachable; shortest path = the union of all shortest paths, where the authors used one "
           "A* path). Excluded: the first step of each episode and steps after termination. MSE is over the hidden dims; "
           "medians are over all selected steps of all episodes.", "",
           f"Verdicts: a comparison counts as holding when it holds in at least 95% of {meta['bootstrap']} bootstrap resamples "
           "of the environments (episodes are resampled, not steps: the steps of one episode are not independent; with 0 "
           "resamples the point estimate decides). Each comparison lists the point estimate (plain median over steps), whether "
           "it holds there, and the fraction of resamples where it holds. Pooled over the runs of each variant.", ""]
    if any(e["segments"] != e["trained_segments"] for e in evals):
        out += ["Segments per step at evaluation differ from training (`--segments`): the model is run for more (or "
                "fewer) recurrent segments than it was trained with and acts after the last; curve points beyond the "
                "trained count show where z goes when the recurrence runs on, off the training distribution.", ""]
    out += ["## Evaluations", "",
            "| evaluation | run | z_carry (trained) | z at eval | checkpoint step | segments (trained) | success | mean length | BFS optimum |",
            "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for e in evals:
        s = e["summary"]
        out.append(f"| {e['label']} | `{e['run_dir']}` | {e['z_carry']} | {e['z_mode']} | {e['step']:,} | "
                   f"{e['segments']} ({e['trained_segments']}) | "
                   f"{s['success']:.3f} | {s['mean_length']:.2f} | {s['bfs_optimal']:.2f} |")
    out += ["", "## Sample counts (environment steps)", "",
            "| evaluation | changed | unchanged | excluded: first step | excluded: after termination | total |",
            "|---|---:|---:|---:|---:|---:|"]
    for e in evals:
        c = e["summary"]["counts"]
        out.append(f"| {e['label']} | {c['changed']:,} | {c['unchanged']:,} | {c['first_steps']:,} | {c['after_termination']:,} | {c['total_steps']:,} |")
    out += ["", "## Claims of the paper", ""]
    for c in claims:
        out.append(f"- **{c['claim']}** Verdict: **{c['verdict']}**. {c['evidence']}")
    titles = {"convergence": "Convergence (figures 5-6): median MSE(z_k, z_S), k = 1..S-1",
              "divergence": "Divergence (figure 7): median MSE(z_k, z_1), k = 2..S",
              "intervention": "Intervention: carry-Z checkpoints evaluated with z reset at every step (convergence)"}
    for name, fig in figures.items():
        out += ["", f"## {titles[name]}", "", f"![{name}]({fig})", ""]
        kind = "div" if name == "divergence" else "conv"
        sel = [e for e in evals if name != "intervention" and e["z_mode_kind"] == "as trained"
               or name == "intervention" and e["z_carry"] != "reset"]
        out.append("Solid: environment changed; dashed: unchanged.")
        out.append("")
        for z in ZS:
            S = max(e["segments"] for e in sel)
            ks = list(range(1, S)) if kind == "conv" else list(range(2, S + 1))
            out += [f"Medians, {z}:", "", "| evaluation | condition | n | " + " | ".join(f"k={k}" for k in ks) + " |",
                    "|---|---|---:|" + "---:|" * len(ks)]
            for e in sel:
                for c in CONDS:
                    vals = e["summary"]["medians"][f"{kind}_{z}_{c}"]
                    cells = [fmt(v) for v in vals] + [""] * (len(ks) - len(vals))
                    out.append(f"| {e['label']} | {c} | {e['summary']['counts'][c]:,} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out) + "\n"


def _finite(x):
    """NaN -> None, so analysis.json is strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def analyze_runs(run_dirs: list[str], out: str, *, envs: int, p_change: float, seed_index: int | None, eval_seed: int,
                 batch: int, segments: int | None, bootstrap: int, command: str, cache: dict | None = None) -> list[dict]:
    """Analyse agent `seed_index` (None: each run's first) of every run directory into `out`
    (`python -m experiments.analyze` documents the options); returns the claims. Raises
    AnalysisError on input it cannot use. `cache`: a dict kept by the caller across calls
    (hrm_jax.analysis.agents) in which the loaded runs and the compiled rollouts are kept, so
    analysing another agent pair of the same runs neither restores their checkpoints nor compiles
    again. None: nothing kept."""
    cache = {} if cache is None else cache
    for d in run_dirs:
        if not os.path.isfile(os.path.join(d, "config.json")):
            raise AnalysisError(f"{d}: not a run directory (no config.json)")

    import jax

    from hrm_jax import acting
    from hrm_jax.checkpoint import CheckpointError
    from hrm_jax.runner import load_run

    evals, recs = [], {}
    names = [os.path.basename(os.path.abspath(d.rstrip("/"))) for d in run_dirs]
    env_names = set()
    is_carry, agents = [], []
    for d in run_dirs:
        with open(os.path.join(d, "config.json")) as fh:
            model_cfg = json.load(fh)["model"]
        if model_cfg.get("arch", "hrm") != "hrm":
            raise AnalysisError(f"{d}: the analysis of z applies to HRM agents only; this run's Q-network is the "
                                f"{model_cfg['arch']} baseline, which has no z")
        is_carry.append(model_cfg["z_carry"] != "reset")
    for d, name in zip(run_dirs, names):
        try:
            key = ("run", os.path.abspath(d))
            if key not in cache:
                cache[key] = load_run(d)
            cfg, tr, state, step = cache[key]
        except CheckpointError as exc:
            raise AnalysisError(f"{d}: {exc}") from None
        first = cfg.train.first_agent
        agent_index = first if seed_index is None else seed_index
        if not first <= agent_index < first + cfg.train.seeds:
            raise AnalysisError(f"--seed-index={agent_index}: {d} has agents {first}..{first + cfg.train.seeds - 1}")
        agents.append(agent_index)
        n_segments = segments or cfg.model.segments_per_step
        if n_segments < 2:
            raise AnalysisError(f"{d}: segments_per_step={cfg.model.segments_per_step}; the analysis needs at least 2 "
                                "segments (give --segments)")
        env_names.add(cfg.env.name)
        params = jax.tree.map(lambda x: x[agent_index - first], acting.policy_params(state, cfg.train.eval_net))
        constants = jax.tree.map(lambda x: x[agent_index - first], state.constants)
        env_params = tr.env_params.replace(p_change=p_change)
        carry = cfg.model.z_carry != "reset"
        variant = "Carry Z" if carry else "Reset Z"
        tag = f" [{name}]" if sum(v == carry for v in is_carry) > 1 else ""
        modes = [(cfg.model.z_carry, "as trained", f"{variant}{tag}")]
        if carry:
            modes.append(("reset", "intervention", f"{variant}{tag} evaluated with reset z"))
        for z_mode, kind, label in modes:
            print(f"{label}: {d} step {step}, z {z_mode}, {n_segments} segments, {envs} envs ...", file=sys.stderr)
            program_batch = min(batch, envs)
            key = ("rollout", os.path.abspath(d), z_mode, program_batch, n_segments)
            if key not in cache:
                cache[key] = rollout_program(tr, z_mode, program_batch, n_segments)
            rec = rollout_records(tr, params, constants, env_params, z_mode, envs, batch, eval_seed,
                                  n_segments, program=cache[key])
            summary = summarize(rec)
            c = summary["counts"]
            print(f"  success {summary['success']:.3f}, mean length {summary['mean_length']:.2f}; "
                  f"steps changed {c['changed']}, unchanged {c['unchanged']}", file=sys.stderr)
            i = len(evals)
            evals.append(dict(label=label, run_dir=d, z_carry=cfg.model.z_carry, z_mode=z_mode, z_mode_kind=kind,
                              variant="carry" if carry else "reset", step=int(step), segments=n_segments,
                              trained_segments=cfg.model.segments_per_step,
                              env=cfg.env.name, summary=summary))
            recs[i] = rec
    if len(env_names) > 1:
        print(f"{PROG}: warning: the runs are on different environments ({', '.join(sorted(env_names))})", file=sys.stderr)

    os.makedirs(out, exist_ok=True)
    trained = [e for e in evals if e["z_mode_kind"] == "as trained"]
    figures = {}
    _plot_panels(curve_lines(trained, "conv"), os.path.join(out, "convergence.png"),
                 "median MSE({z}[k], {z}[S])", "convergence")
    figures["convergence"] = "convergence.png"
    _plot_panels(curve_lines(trained, "div"), os.path.join(out, "divergence.png"),
                 "median MSE({z}[k], {z}[1])", "divergence")
    figures["divergence"] = "divergence.png"
    inter = [e for e in evals if e["z_carry"] != "reset"]
    if inter:
        _plot_panels(curve_lines(inter, "conv"), os.path.join(out, "intervention.png"),
                     "median MSE({z}[k], {z}[S])", "carry-Z checkpoint, carried vs reset z")
        figures["intervention"] = "intervention.png"

    def pick(variant, kind):
        return [recs[i] for i, e in enumerate(evals) if e["variant"] == variant and e["z_mode_kind"] == kind]

    carry_r, reset_r, inter_r = pick("carry", "as trained"), pick("reset", "as trained"), pick("carry", "intervention")
    Ks = {r["conv_z_H"].shape[-1] for r in carry_r + reset_r + inter_r}
    if len(Ks) > 1:
        print(f"{PROG}: warning: the runs have different segment counts; the claims use the first run of each variant",
              file=sys.stderr)
        carry_r, reset_r, inter_r = carry_r[:1], reset_r[:1], inter_r[:1]
    claims = judge_claims(carry_r, reset_r, inter_r, sorted(env_names)[0], n_boot=bootstrap)
    meta = dict(command=command, envs=envs, segments=segments,
                p_change=p_change, seed_index=", ".join(str(a) for a in sorted(set(agents))), eval_seed=eval_seed, bootstrap=bootstrap, out=out)
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(report_markdown(meta, evals, claims, figures))
    with open(os.path.join(out, "analysis.json"), "w") as fh:
        json.dump(_finite(dict(meta=meta, evaluations=evals, claims=claims)), fh, indent=2)
    print(f"wrote {out}/report.md, analysis.json, " + ", ".join(figures.values()))
    for c in claims:
        print(f"- {c['verdict']}: {c['claim']}")
    return claims
