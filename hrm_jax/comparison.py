"""Comparing the conditions of a sweep (hrm_jax.sweep): per seed, when greedy success first
reached 90 / 95 / 99 % and its mean over all evaluation points; per seed pair, which condition got
there first. Writes comparison.png / .md / .json in the sweep directory."""
from __future__ import annotations

import json
import os
import textwrap

from hrm_jax.runlog import METRICS, read_rows
from hrm_jax.sweep import Z_CHOICES, condition_label, condition_runs

THRESHOLDS = (0.90, 0.95, 0.99)
PAIR_THRESHOLD = 0.95
CROSS_KEYS = ("grad_steps", "env_steps", "wall_time_s")


# ---- threshold crossings (pure; no JAX) -----------------------------------------------------

def first_crossing(points: list[dict], threshold: float, key: str = "eval_success", sustain: int = 1) -> dict | None:
    """The first evaluation point (in gradient-step order) whose `key` is >= threshold and stays
    so for `sustain` consecutive points (that point and the next sustain-1), as {grad_steps,
    env_steps, wall_time_s}; None if no point does. sustain=1: the first point at or above it.
    A larger `sustain` discounts a single lucky evaluation (256 episodes swing by 0.2-0.3 between
    points on the CPU presets); a run's last sustain-1 points cannot start a crossing."""
    pts = sorted(points, key=lambda r: r["grad_steps"])
    above = [p[key] >= threshold - 1e-9 for p in pts]
    for i in range(len(pts) - sustain + 1):
        if all(above[i:i + sustain]):
            return {k: pts[i][k] for k in CROSS_KEYS if k in pts[i]}
    return None


def crossings_by_seed(rows: list[dict], thresholds=THRESHOLDS, sustain: int = 1) -> dict[int, dict[str, dict | None]]:
    """metrics.jsonl rows (one per seed per eval point) -> {seed: {"0.95": crossing or None}}."""
    seeds = sorted({r["seed"] for r in rows})
    return {s: {f"{th:.2f}": first_crossing([r for r in rows if r["seed"] == s], th, sustain=sustain)
                for th in thresholds} for s in seeds}


def before_baseline(cond: dict[int, dict], base: dict[int, dict], threshold: float = PAIR_THRESHOLD) -> dict:
    """Pair seeds by index: a condition (e.g. carry Z) is "first" if it reached the threshold at
    fewer gradient steps than the baseline (e.g. reset Z), or reached it while the baseline never
    did. Returns counts and the per-pair verdicts."""
    th = f"{threshold:.2f}"
    pairs = []
    for s in sorted(set(cond) & set(base)):
        c, b = cond[s][th], base[s][th]
        cg = c["grad_steps"] if c else None
        bg = b["grad_steps"] if b else None
        if cg is None and bg is None:
            verdict = "neither reached"
        elif bg is None or (cg is not None and cg < bg):
            verdict = "condition first"
        elif cg is None or bg < cg:
            verdict = "baseline first"
        else:
            verdict = "tie"
        pairs.append(dict(seed=s, condition_grad_steps=cg, baseline_grad_steps=bg, verdict=verdict))
    return dict(threshold=threshold, condition_first=sum(p["verdict"] == "condition first" for p in pairs),
                baseline_first=sum(p["verdict"] == "baseline first" for p in pairs),
                ties=sum(p["verdict"] == "tie" for p in pairs),
                neither=sum(p["verdict"] == "neither reached" for p in pairs), pairs=len(pairs), per_seed=pairs)


def mean_success_by_seed(rows: list[dict], key: str = "eval_success") -> dict[int, float]:
    """{seed: mean greedy success over all its evaluation points} -- the normalised area under
    the success curve (points are equally spaced). Unlike the threshold crossings it ranks runs
    that never reach 95%, and a single-evaluation dip moves it by 1/points only."""
    seeds = sorted({r["seed"] for r in rows})
    return {s: sum(r[key] for r in rows if r["seed"] == s) / sum(1 for r in rows if r["seed"] == s) for s in seeds}


def above_baseline(cond: dict[int, float], base: dict[int, float]) -> dict:
    """Pair seeds by index: in how many pairs a condition's mean success (area under the curve)
    is higher than the baseline's."""
    pairs = [dict(seed=s, condition=cond[s], baseline=base[s],
                  verdict="condition higher" if cond[s] > base[s] else "baseline higher" if base[s] > cond[s] else "tie")
             for s in sorted(set(cond) & set(base))]
    return dict(condition_higher=sum(p["verdict"] == "condition higher" for p in pairs),
                baseline_higher=sum(p["verdict"] == "baseline higher" for p in pairs),
                ties=sum(p["verdict"] == "tie" for p in pairs), pairs=len(pairs), per_seed=pairs)


def band(rows: list[dict], key: str):
    """(x, mean, min, max) over seeds at every evaluation point (gradient steps)."""
    xs = sorted({r["grad_steps"] for r in rows})
    mean, lo, hi = [], [], []
    for x in xs:
        v = [r[key] for r in rows if r["grad_steps"] == x]
        mean.append(sum(v) / len(v))
        lo.append(min(v))
        hi.append(max(v))
    return xs, mean, lo, hi


TITLE_FIELDS = 12  # changed fields named in a run title; more are counted ("and N more"), not named


def run_title(run_dir: str, ignore: tuple[str, ...] = ()) -> str:
    """"<env> (<preset> preset[, field=value, ...])" from the config a run was trained with: the
    preset it is closest to and the fields it changed (not the ones every condition or agent
    range changes), whatever flags the command that draws the figure was given."""
    from hrm_jax.config import Config, closest_preset

    with open(os.path.join(run_dir, "config.json")) as fh:
        cfg = Config.from_dict(json.load(fh))
    name, changed = closest_preset(cfg, ignore=("env.name", "model.z_carry", "train.seeds", "train.first_agent") + ignore)
    # Every changed field, up to TITLE_FIELDS: the figure wraps the title (figure_title). It used to
    # stop at 4, which hid the 5th field of a run that changed five (eps_end on top of the options).
    shown, rest = changed[:TITLE_FIELDS], len(changed) - TITLE_FIELDS
    more = f" + {', '.join(shown)}{f' and {rest} more' if rest > 0 else ''}" if changed else ""
    return f"{cfg.env.name} ({name} preset{more})"


def compare(sweep_dir: str, conditions: list[str], title: str = "", sustain: int = 1,
            baseline: str | None = "reset") -> dict:
    """Write comparison.png/.md/.json in sweep_dir from the run directories sweep_dir/<condition>/.
    `sustain`: a threshold counts as reached at the first of that many consecutive evaluation
    points at or above it (first_crossing). Every other condition is paired seed by seed with
    `baseline` (reset Z in a --z-carry sweep, the first value of a --vary sweep; no pairs if it
    is not among the conditions)."""
    rows = {c: [r for d in condition_runs(sweep_dir, c) for r in read_rows(os.path.join(d, METRICS))] for c in conditions}
    configs = {}
    for c in conditions:
        with open(os.path.join(sweep_dir, c, "config.json")) as fh:
            configs[c] = json.load(fh)
    cross = {c: crossings_by_seed(rows[c], sustain=sustain) for c in conditions}
    opt_all = [r["eval_optimal"] for c in conditions for r in rows[c]]
    optimal = sum(opt_all) / max(len(opt_all), 1)
    others = [c for c in conditions if c != baseline] if baseline in conditions else []
    pairs = {c: before_baseline(cross[c], cross[baseline]) for c in others}
    auc = {c: mean_success_by_seed(rows[c]) for c in conditions}
    auc_pairs = {c: above_baseline(auc[c], auc[baseline]) for c in others}
    final = {}
    for c in conditions:
        last = max(r["grad_steps"] for r in rows[c])
        fr = [r for r in rows[c] if r["grad_steps"] == last]
        final[c] = dict(grad_steps=last, success=[r["eval_success"] for r in fr],
                        mean_length=[r["eval_length"] for r in fr])
    result = dict(
        sweep_dir=sweep_dir, env=configs[conditions[0]]["env"]["name"], thresholds=list(THRESHOLDS), sustain=sustain,
        bfs_optimal_mean_length=round(optimal, 4),
        conditions={c: dict(label=condition_label(c), run_dir=os.path.join(sweep_dir, c), run_dirs=condition_runs(sweep_dir, c),
                            seeds=len(cross[c]), crossings={str(s): v for s, v in cross[c].items()},
                            mean_success={str(s): v for s, v in auc[c].items()},
                            final=final[c]) for c in conditions},
        baseline=baseline if others else None,
        before_baseline=pairs,
        mean_success_above_baseline=auc_pairs,
    )
    if set(conditions) <= set(Z_CHOICES):
        result["paper"] = "carry Z reached high success faster than reset Z in 4 of 5 maze runs"
    with open(os.path.join(sweep_dir, "comparison.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    plot_comparison(rows, optimal, os.path.join(sweep_dir, "comparison.png"), title or result["env"])
    with open(os.path.join(sweep_dir, "comparison.md"), "w") as fh:
        fh.write(comparison_markdown(result))
    return result


def _cell(v: dict | None, key: str) -> str:
    if v is None:
        return "not reached"
    x = v[key]
    return f"{x:,.1f}" if isinstance(x, float) else f"{x:,}"


def comparison_markdown(res: dict) -> str:
    names = [d["label"] for d in res["conditions"].values()]
    out = [f"# {' vs '.join(names)}: {res['env']}", "",
           "![comparison](comparison.png)", "",
           "Success and mean episode length vs gradient steps: mean over seeds (line), min..max over seeds (band); "
           f"dashed: BFS-optimal mean path length ({res['bfs_optimal_mean_length']:.2f}, over all evaluation episodes).", ""]
    out += ["## Final evaluation point", "", "| condition | grad steps | success per seed | mean length per seed |",
            "|---|---:|---|---|"]
    for c, d in res["conditions"].items():
        f = d["final"]
        out.append(f"| {d['label']} | {f['grad_steps']:,} | {', '.join(f'{v:.3f}' for v in f['success'])} | "
                   f"{', '.join(f'{v:.2f}' for v in f['mean_length'])} |")
    out.append("")
    out += ["## Mean greedy success over all evaluation points (area under the success curve)", "",
            "| condition | per seed | mean |", "|---|---|---:|"]
    for c, d in res["conditions"].items():
        v = list(d["mean_success"].values())
        out.append(f"| {d['label']} | {', '.join(f'{x:.3f}' for x in v)} | {sum(v) / len(v):.3f} |")
    out.append("")
    base = res["conditions"][res["baseline"]]["label"] if res["baseline"] else ""
    for c, p in res["mean_success_above_baseline"].items():
        out.append(f"{res['conditions'][c]['label']}: higher mean success than {base} in **{p['condition_higher']} of "
                   f"{p['pairs']}** seed pairs (lower in {p['baseline_higher']}, ties {p['ties']}).")
    out.append("")
    sustain = res.get("sustain", 1)
    first = ("First evaluation point" if sustain == 1 else
             f"First of {sustain} consecutive evaluation points (`--sustain {sustain}`)")
    for th in res["thresholds"]:
        key = f"{th:.2f}"
        out += [f"## {first} with greedy success >= {th:.0%}", "",
                "| condition | seed | gradient steps | env steps | wall time (s) |", "|---|---:|---:|---:|---:|"]
        for c, d in res["conditions"].items():
            for s, cr in d["crossings"].items():
                v = cr[key]
                out.append(f"| {d['label']} | {s} | {_cell(v, 'grad_steps')} | {_cell(v, 'env_steps')} | {_cell(v, 'wall_time_s')} |")
            reached = sum(cr[key] is not None for cr in d["crossings"].values())
            out.append(f"| {d['label']} | reached | {reached} of {len(d['crossings'])} | | |")
        out.append("")
    out += ["Wall time: the whole program that trained the seed (the seeds of one run directory train together, "
            "in one program), compilation included.", ""]
    if res["before_baseline"]:
        held = "" if sustain == 1 else f", held for {sustain} consecutive evaluations"
        out += [f"## Which reached 95% first ({base} as the baseline{held}, seeds paired by index)", ""]
        for c, p in res["before_baseline"].items():
            label = res["conditions"][c]["label"]
            paper = " Paper: 4 of 5 (corridor maze)." if "paper" in res else ""
            out.append(f"- {label} first in **{p['condition_first']} of {p['pairs']}** pairs ({base} first "
                       f"{p['baseline_first']}, ties {p['ties']}, neither reached {p['neither']}).{paper}")
            name = {"condition first": f"{label} first", "baseline first": f"{base} first"}
            for q in p["per_seed"]:
                steps = ["not reached" if q[k] is None else q[k] for k in ("condition_grad_steps", "baseline_grad_steps")]
                out.append(f"  - seed {q['seed']}: {label} {steps[0]}, {base} {steps[1]} -> {name.get(q['verdict'], q['verdict'])}")
        out.append("")
    return "\n".join(out)


def figure_title(title: str, width: int = 110) -> str:
    """The figure's title in lines of at most `width` characters: a run title that lists many
    changed fields is wider than the figure (it used to run over both panels' titles)."""
    return textwrap.fill(title, width, break_long_words=False, break_on_hyphens=False)


def plot_comparison(rows: dict[str, list[dict]], optimal: float, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (c, rs) in enumerate(rows.items()):
        color = f"C{i}"
        n = len({r["seed"] for r in rs})
        for ax, key in ((ax1, "eval_success"), (ax2, "eval_length")):
            x, mean, lo, hi = band(rs, key)
            ax.plot(x, mean, color=color, marker="." if len(x) < 30 else None, label=f"{condition_label(c)}, {n} seed(s)")
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
    for th in THRESHOLDS:
        ax1.axhline(th, color="0.7", lw=0.6, ls=":")
    ax2.axhline(optimal, color="k", ls="--", lw=1, label=f"BFS optimum (mean {optimal:.2f})")
    ax1.set(xlabel="gradient steps", ylabel="greedy success", ylim=(0, 1.02), title="success")
    ax2.set(xlabel="gradient steps", ylabel="mean episode length", title="episode length")
    fig.suptitle(figure_title(title))
    ax1.legend(fontsize=8, loc="lower right")
    ax2.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
