"""Carry-Z vs reset-Z sweep (paper §3.1, figures 3-4; docs/reference.md §3 "Seeds").

    python -m experiments.sweep --env four_rooms --z-carry last_token reset --seeds 5
    python -m experiments.sweep --preset paper --env corridor_maze --seeds 5 --out runs/sweep-maze
    python -m experiments.sweep --compare-only --out runs/sweep-maze      # redo the comparison only
    python -m experiments.sweep --resume --seeds 4 --out runs/sweep-maze  # add agents 2-3 to a 2-seed sweep
    python -m experiments.sweep --first-agent 2 --seeds 1 --out runs/maze-agent2  # agent 2 alone, in its own sweep
    python -m experiments.sweep --parallel --preset random_goal --seeds 5  # both conditions at once, a core each
    python -m experiments.sweep --vary q-init-scale=1,0.1 --seeds 5 --out runs/q-init  # any flag's values instead

Every `--z-carry` value is one *condition*; its `--seeds` agents train in one program, vmapped or
looped (`--seed-loop`; `experiments.run.train_run`), one run directory per condition: OUT/<z_carry>/. Conditions run one
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
import json
import math
import os
import sys
import textwrap

PROG = "python -m experiments.sweep"
THRESHOLDS = (0.90, 0.95, 0.99)
PAIR_THRESHOLD = 0.95
Z_CHOICES = ("last_token", "full", "reset")
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


def condition_label(condition: str) -> str:
    """"Reset Z" / "Carry Z (last_token)" for a --z-carry condition; a --vary condition is
    named by its field and value already ("q_init_scale=0.1")."""
    if condition not in Z_CHOICES:
        return condition
    return "Reset Z" if condition == "reset" else f"Carry Z ({condition})"


def vary_condition(field: str, value) -> str:
    """The condition (and run directory) name of one value of a --vary field: "q_init_scale=0.1"."""
    return f"{field}={str(value).lower() if isinstance(value, bool) else value}"


# ---- outputs ------------------------------------------------------------------------------------

def read_rows(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        return [json.loads(l) for l in fh if l.strip()]


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
    rows = {c: [r for d in condition_runs(sweep_dir, c) for r in read_rows(d)] for c in conditions}
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


# ---- CLI ----------------------------------------------------------------------------------------

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
    from hrm_jax.config import ConfigError, validate

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
        variants = {c: ("model", "z_carry", c) for c in args.conditions or ["last_token", "reset"]}
    else:
        if args.conditions:
            base = replace(base, model=replace(base.model, z_carry=args.conditions[0]))
        variants = {vary_condition(name, v): (section, name, v) for v in values}
    args.conditions = list(variants)
    cfgs = {}
    for c, (section, name, v) in variants.items():
        try:
            cfgs[c] = validate(replace(base, **{section: replace(getattr(base, section), **{name: v})}))
        except ConfigError as exc:
            fail(f"--vary {args.vary}: {exc}" if args.vary else str(exc), PROG)
    suffix = f"-{args.varied[1]}" if args.varied else ""
    out = args.out or os.path.join("runs", f"sweep-{base.env.name}-{args.preset}{suffix}")
    if args.compare_only:
        for c in args.conditions:
            if not os.path.isfile(os.path.join(out, c, "metrics.jsonl")):
                fail(f"--compare-only: {os.path.join(out, c)} has no metrics.jsonl (train it first)", PROG)
    elif not args.resume and os.path.isdir(out) and any(os.listdir(os.path.join(out, c)) for c in args.conditions
                                                        if os.path.isdir(os.path.join(out, c))):
        fail(f"--out {out} already holds runs of these conditions (use --resume to continue them, or another --out)", PROG)
    return args, cfgs, out


def seed_loop_given(args) -> bool:
    """Whether the command line sets the seed loop (--seed-loop, or --vary seed-loop=...)."""
    return args.train__seed_loop is not None or (args.varied is not None and args.varied[1] == "seed_loop")


def _finished(run_dir: str, cfg) -> bool:
    p = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(p):
        return False
    rows = read_rows(run_dir)
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

    from experiments.run import extended, with_seed_loop
    from hrm_jax.config import Config, ConfigError

    start = cfg.train.first_agent
    end = start + cfg.train.seeds  # one past the last agent
    plan, covered = [], start
    for run_dir in condition_runs(sweep_dir, condition):
        with open(os.path.join(run_dir, "config.json")) as fh:
            saved = Config.from_dict(json.load(fh))
        try:  # a larger --total-grad-steps extends the run (experiments.run.extended)
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
    from experiments.run import train_run

    for run_dir, cfg, resume in plan:
        if resume and _finished(run_dir, cfg):
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
    """--parallel: one process per condition, each pinned to its own share of the cores, all at
    once (experiments.side_by_side). On this CPU two programs on one core each finish both
    conditions sooner than one after the other on both cores (the `cpu` preset: 0.089 s per
    iteration on 2 cores vs 0.109 s on one; measured 1.6x, docs/scaling.md).
    Returns the first non-zero status."""
    from experiments import side_by_side
    from hrm_jax.cli import fail

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < len(plans):
        fail(f"--parallel: {len(plans)} conditions need at least {len(plans)} CPU cores; this process may use "
             f"{len(cores)} ({', '.join(map(str, cores))}); drop --parallel to train them one after the other", PROG)
    procs = {}
    for (c, plan), group in zip(plans.items(), side_by_side.core_groups(cores, len(plans))):
        log_path = os.path.join(sweep_dir, f"{c}.log")
        procs[c] = side_by_side.start(train_plan, (c, plan, False), group, log_path, name=f"sweep-{c}")
        print(f"== {condition_label(c)}: cores {','.join(map(str, group))}, log {log_path}", file=sys.stderr, flush=True)
    status = 0
    for c, proc in procs.items():
        code = side_by_side.wait(proc, f"{PROG}: interrupt: waiting for the conditions to save their checkpoints")
        print(f"{condition_label(c)}: exit status {code} (log {os.path.join(sweep_dir, c + '.log')})", file=sys.stderr)
        status = status or code
    return status


def main(argv: list[str] | None = None) -> int:
    args, cfgs, out = resolve(argv)
    from experiments.run import cap_full_z_capacity
    from hrm_jax.cli import fail
    from hrm_jax.config import ConfigError

    if not args.compare_only:
        os.makedirs(out, exist_ok=True)
        plans = {}
        for c, cfg in cfgs.items():  # check every condition before training any
            try:
                plans[c] = plan_runs(out, c, cap_full_z_capacity(cfg), keep_seed_loop=not seed_loop_given(args))
            except ConfigError as exc:
                fail(str(exc), PROG)
        if args.parallel:
            status = train_side_by_side(plans, out)
        else:
            status = 0
            for c, plan in plans.items():
                status = train_plan(c, plan, progress=not args.no_progress)
                if status != 0:
                    break
        if status != 0:
            print(f"{PROG}: training stopped with status {status}; the comparison is not written", file=sys.stderr)
            return status
    conditions = list(cfgs)
    varied = (f"{args.varied[0]}.{args.varied[1]}",) if args.varied else ()
    res = compare(out, conditions, title=run_title(os.path.join(out, conditions[0]), ignore=varied),
                  sustain=args.sustain, baseline=conditions[0] if args.varied else "reset")
    print(f"\nwrote {os.path.join(out, 'comparison.png')}, comparison.md, comparison.json")
    base = condition_label(res["baseline"]) if res["baseline"] else ""
    paper = " (paper: 4 of 5 in the maze)" if "paper" in res else ""
    for c, p in res["before_baseline"].items():
        print(f"{condition_label(c)} reached 95% before {base} in {p['condition_first']} of {p['pairs']} seed pairs{paper}")
    for c, p in res["mean_success_above_baseline"].items():
        print(f"{condition_label(c)} had a higher mean success (area under the curve) than {base} in "
              f"{p['condition_higher']} of {p['pairs']} seed pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
