"""Analysis of the recurrent state of trained runs (paper §3.2, figures 5-7; docs/reference.md §4).

    python -m experiments.analyze runs/sweep-four_rooms-cpu/last_token runs/sweep-four_rooms-cpu/reset
    python -m experiments.analyze RUN_DIR [RUN_DIR ...] --envs 1024 --p-change 0.05 --out DIR

For every run directory: greedy rollouts of its newest checkpoint (agent `--seed-index`, default
the run's first) on `--envs` fresh environments with door-change probability `--p-change`, recording z_H and
z_L of the last token after each segment of every step (`acting.greedy_rollout(with_trace=True)`,
the same forward pass as acting). Every run sees the same environments at reset (same
`--eval-seed`). Runs trained with carry Z (config.json `model.z_carry` last_token or full) are also
evaluated with z reset at every step (an intervention: same weights, no carried z).

Steps are split into "changed" / "unchanged" (hrm_jax.analysis.env_changed: a cell on a
shortest path from the agent to the goal at the previous step changed, or the goal became
reachable); the first step of each episode and steps after termination are excluded.

Writes to --out: convergence.png (median MSE between z after segment k and after the last
segment), divergence.png (same against the first segment), intervention.png (carry-Z checkpoints
evaluated with reset z), report.md (figures, tables, one verdict per paper claim) and
analysis.json (every number in the report).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from hrm_jax.cli import number

PROG = "python -m experiments.analyze"
ZS = ("z_L", "z_H")
CONDS = ("changed", "unchanged")
MIN_SAMPLES = 20  # a verdict resting on fewer samples per condition is flagged
# argparse type of --segments here and in the commands that pass it on (analyze_agents, reproduce)
analysis_segments = number(int, 2, why="the analysis compares z after each segment with the last")


def build_parser():
    from hrm_jax.cli import OneLineParser, non_negative_int, positive_int, probability, seed_int

    p = OneLineParser(prog=PROG, description="Convergence / divergence of the HRM's recurrent state in greedy "
                      "rollouts of trained runs (carry Z vs reset Z; environment changed vs not).",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by experiments.run / experiments.sweep")
    p.add_argument("--envs", type=positive_int, default=1024, help="greedy episodes (fresh environments) per run")
    p.add_argument("--p-change", type=probability, default=0.05, help="door-change probability during the analysis (the authors: 0.05)")
    p.add_argument("--seed-index", type=int, default=None, help="which agent of each run to analyse: its index, the `seed` "
                   "column of metrics.jsonl (default: the run's first agent, 0 unless the run was added to a sweep)")
    p.add_argument("--eval-seed", type=seed_int, default=12345, help="seed of the evaluation environments (shared by all runs)")
    p.add_argument("--batch", type=positive_int, default=256, help="environments per rollout program (bounds memory: the trace "
                   "is 2 x max_steps x segments x batch x hidden floats)")
    p.add_argument("--segments", type=analysis_segments, default=None,
                   help="segments per environment step in the rollouts (default: each run's segments_per_step). More than "
                   "the run was trained with gives longer convergence curves (HRM run deeper at inference); the action "
                   "is then taken after the last of them, so success may differ from training")
    p.add_argument("--bootstrap", type=non_negative_int, default=200, help="episode-bootstrap resamples behind each verdict (0: point estimates only)")
    p.add_argument("--out", default=None, help="output directory (default: <common parent of the runs>/analysis)")
    return p


# ---- rollouts -----------------------------------------------------------------------------------

def rollout_program(tr, z_mode: str, batch: int, segments: int):
    """The jitted rollout of `rollout_records`: (params, constants, env_params, key) -> records of
    `batch` environments. Its arguments are everything that varies between agents of one run, so
    one program serves every agent pair of a sweep (experiments.analyze_agents: compiled once)."""
    import jax

    from hrm_jax import acting, analysis

    def one(p, c, env_params, key):
        ev = acting.greedy_rollout(tr.model, {"params": p, "constants": c}, tr.env, env_params, key, batch,
                                  segments, z_mode, tr.config.env.max_steps, with_trace=True)
        recs = ev["records"]
        out = analysis.convergence_and_divergence(recs["trace"])
        out["changed"] = analysis.changed_steps(tr.env, recs["state"])
        out["mask"] = analysis.step_mask(recs["active"])
        out.update(success=ev["success"], length=ev["length"], optimal=ev["optimal"])
        return out

    return jax.jit(one)


def rollout_records(tr, params, constants, env_params, z_mode: str, n_envs: int, batch: int, eval_seed: int,
                    segments: int, program=None) -> dict:
    """Greedy rollouts with the trace, reduced on device to per-sample curves and step flags.
    `program`: a `rollout_program(tr, z_mode, min(batch, n_envs), segments)` to reuse (None: built here).

    Returns numpy arrays: conv_z_H/conv_z_L f32[T, N, S-1], div_z_H/div_z_L f32[T, N, S-1],
    changed/mask bool[T, N], success bool[N], length/optimal int32[N]."""
    import jax

    batch = min(batch, n_envs)
    f = program or rollout_program(tr, z_mode, batch, segments)
    base = jax.random.key(eval_seed)
    parts = [jax.device_get(f(params, constants, env_params, jax.random.fold_in(base, b)))
             for b in range(math.ceil(n_envs / batch))]
    out = {}
    for k in parts[0]:
        axis = 0 if parts[0][k].ndim == 1 else 1
        out[k] = np.concatenate([np.asarray(p[k]) for p in parts], axis=axis)
        out[k] = out[k][:n_envs] if axis == 0 else out[k][:, :n_envs]
    return out


def summarize(rec: dict) -> dict:
    """Counts and medians of one evaluation (host side)."""
    from hrm_jax.analysis import masked_median

    mask, changed = rec["mask"], rec["changed"]
    sel = {"changed": mask & changed, "unchanged": mask & ~changed}
    T, N = mask.shape
    reachable = rec["optimal"] >= 0
    res = dict(
        counts=dict(changed=int(sel["changed"].sum()), unchanged=int(sel["unchanged"].sum()),
                    first_steps=int(N), after_termination=int(T * N - rec["length"].sum()),
                    total_steps=int(T * N), episode_steps=int(rec["length"].sum())),
        success=float(rec["success"].mean()), mean_length=float(rec["length"].mean()),
        bfs_optimal=float(rec["optimal"][reachable].mean()) if reachable.any() else float("nan"),
        medians={})
    for kind in ("conv", "div"):
        for z in ZS:
            for c in CONDS:
                res["medians"][f"{kind}_{z}_{c}"] = [float(v) for v in masked_median(rec[f"{kind}_{z}"], sel[c])]
    return res


def pooled_samples(recs: list[dict], key: str, cond: str) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, K], episode index [n]) of one curve over several evaluations, for one change
    condition. Episode index = the environment's index in the rollout (the same environments at
    reset in every evaluation, so the bootstrap resamples environments jointly)."""
    vals, eps = [], []
    for r in recs:
        m = r["mask"] & (r["changed"] if cond == "changed" else ~r["changed"])
        vals.append(r[key][m])
        eps.append(np.nonzero(m)[1])
    if not vals:
        return np.zeros((0, 0)), np.zeros((0,), int)
    return np.concatenate(vals, axis=0), np.concatenate(eps)


def bootstrap_counts(seed: int, n_boot: int, n_env: int) -> np.ndarray:
    """int[n_boot, n_env]: how often each environment (episode) is drawn in each of n_boot
    resamples of n_env draws with replacement (each row sums to n_env), from jax.random.key(seed)."""
    import jax
    import jax.numpy as jnp

    if not n_env or not n_boot:
        return np.zeros((n_boot, n_env), np.int64)
    draws = jax.random.randint(jax.random.key(seed), (n_boot, n_env), 0, n_env)
    return np.asarray(jax.vmap(lambda d: jnp.bincount(d, length=n_env))(draws))


def bootstrap_medians(values: np.ndarray, episodes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted (lower) medians of values [n, K] for every row of counts [B, n_episodes]: sample i
    has weight counts[b, episodes[i]] (an episode bootstrap). Returns [B, K]."""
    n, K = values.shape
    order = np.argsort(values, axis=0, kind="stable")                   # [n, K]
    sorted_vals = np.take_along_axis(values, order, 0)
    out = np.empty((counts.shape[0], K))
    for b, c in enumerate(counts):
        w = c[episodes]                                                   # [n]
        cs = np.cumsum(w[order], axis=0)                                  # [n, K]
        idx = np.argmax(cs >= cs[-1] / 2.0, axis=0)
        out[b] = sorted_vals[idx, np.arange(K)]
    return out


# ---- claims -------------------------------------------------------------------------------------

def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _verdict(ok: list[bool], holds: list[bool] | None = None) -> str:
    """ok: the comparisons that hold robustly (bootstrap); holds: at the point estimate."""
    if not ok:
        return "cannot be tested"
    if all(ok):
        return "supported"
    if any(ok):
        return f"partly supported ({sum(ok)} of {len(ok)} comparisons)"
    if holds and any(holds):
        return (f"not established (the direction holds at the point estimate in {sum(holds)} of {len(holds)} "
                "comparisons, but not robustly over the bootstrap)")
    return "not supported"


def judge_claims(carry: list[dict], reset: list[dict], carry_reset_eval: list[dict], env_name: str,
                 n_boot: int = 200, seed: int = 0, level: float = 0.95) -> list[dict]:
    """One verdict per paper claim, from the pooled per-sample curves of the carry-Z and reset-Z
    evaluations (as trained). A comparison counts as holding when it holds in at least `level` of
    `n_boot` bootstrap resamples of the environments (episodes; the steps of one episode are not
    independent); the point estimate (plain median) and that fraction are both reported.
    Returns dicts: claim, verdict, evidence (a sentence with the numbers)."""
    groups = {}
    n_env = 0
    for label, recs in (("carry", carry), ("reset", reset), ("carry_as_reset", carry_reset_eval)):
        for r in recs:
            n_env = max(n_env, r["mask"].shape[1])
        for kind in ("conv", "div"):
            for z in ZS:
                for c in CONDS:
                    if recs:
                        v, e = pooled_samples(recs, f"{kind}_{z}", c)
                        if len(v):
                            groups[label, kind, z, c] = (v, e)
    counts = bootstrap_counts(seed, n_boot, n_env)
    point = {k: np.median(v, axis=0) for k, (v, e) in groups.items()}
    boot = {k: bootstrap_medians(v, e, counts) for k, (v, e) in groups.items()}
    n = {(lab, c): len(groups[lab, "conv", ZS[0], c][0]) if (lab, "conv", ZS[0], c) in groups else 0
         for lab in ("carry", "reset") for c in CONDS}
    few = [f"{lab} {c}: n={n[lab, c]}" for lab in ("carry", "reset") for c in CONDS
           if n[lab, c] < MIN_SAMPLES and (carry if lab == "carry" else reset)]
    caveat = f" Caveat: few samples ({'; '.join(few)})." if few else ""

    def have(*keys):
        return all(k in groups for k in keys)

    def test(pred):
        """(holds at the point estimate, fraction of bootstrap resamples where it holds)."""
        frac = float(np.mean([pred(lambda k: boot[k][b]) for b in range(n_boot)])) if n_boot else float("nan")
        return bool(pred(lambda k: point[k])), frac

    def record(checks, ev, what, holds, frac, detail):
        """One comparison of a claim: `checks` gets what was compared ("z_H changed"), whether it holds at
        the point estimate and whether robustly (in >= level of the resamples); `ev` its sentence."""
        checks.append(dict(what=what, holds=bool(holds), robust=bool(frac >= level) if n_boot else bool(holds),
                           resamples_holding=frac if n_boot else None))
        ev.append(f"{what}: {detail} [{'holds' if holds else 'does not hold'}" + (f"; in {frac:.0%} of resamples]" if n_boot else "]"))

    def verdict(checks):
        return _verdict([c["robust"] for c in checks], [c["holds"] for c in checks])

    claims = []
    # 1. initial-to-final distance smaller with carry Z
    ok, ev = [], []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("reset", "conv", z, c)
            if have(a, b):
                h, f = test(lambda m: m(a)[0] < m(b)[0])
                record(ok, ev, f"{z} {c}", h, f, f"carry {_fmt(point[a][0])} vs reset {_fmt(point[b][0])}")
    claims.append(dict(claim="With Carry Z the distance from the first to the final z (median MSE(z_1, z_S)) is smaller than with Reset Z.",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run."))
    # 2. with carry Z, the initial distance is larger when the environment changed
    ok, ev = [], []
    for z in ZS:
        a, b = ("carry", "conv", z, "changed"), ("carry", "conv", z, "unchanged")
        if have(a, b):
            h, f = test(lambda m: m(a)[0] > m(b)[0])
            record(ok, ev, z, h, f, f"changed {_fmt(point[a][0])} vs unchanged {_fmt(point[b][0])}")
    claims.append(dict(claim="With Carry Z the initial distance MSE(z_1, z_S) is larger when the environment changed than when it did not.",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z run with changed and unchanged steps."))
    # 3. faster convergence with carry Z (paper: in the maze), changed and unchanged
    ok, ev = [], []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("reset", "conv", z, c)
            if have(a, b) and point[a].shape == point[b].shape:
                h, f = test(lambda m: bool(np.all(m(a) < m(b))))
                record(ok, ev, f"{z} {c}", h, f, f"carry/reset ratio per k = {', '.join(_fmt(x) for x in point[a] / point[b])}")
    where = "" if env_name == "corridor_maze" else f" (the paper makes this claim for the corridor maze; this is {env_name})"
    claims.append(dict(claim="The recurrent process converges faster with Carry Z, both when the environment changed and when not "
                             "(read here as: the carry-Z median curve MSE(z_k, z_S) lies below the reset-Z one at every k)" + where + ".",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run with equal segments."))
    # 4. divergence: carry Z reduces it, by more than the environment change does
    ok, ev = [], []
    for z in ZS:
        keys = {(v, c): (v, "div", z, c) for v in ("carry", "reset") for c in CONDS}
        if not have(*keys.values()):
            continue

        def effects(m):
            last = {vc: m(k)[-1] for vc, k in keys.items()}
            lower = all(last["carry", c] < last["reset", c] for c in CONDS)
            carry_eff = np.mean([abs(np.log10(last["reset", c] / last["carry", c])) for c in CONDS])
            change_eff = np.mean([abs(np.log10(last[v, "changed"] / last[v, "unchanged"])) for v in ("carry", "reset")])
            return last, lower, carry_eff, change_eff

        last, _, ce, che = effects(lambda k: point[k])
        h, f = test(lambda m: (lambda r: r[1] and r[2] > r[3])(effects(m)))
        record(ok, ev, z, h, f, f"MSE(z_S, z_1) carry {_fmt(last['carry', 'changed'])}/{_fmt(last['carry', 'unchanged'])} "
                             f"vs reset {_fmt(last['reset', 'changed'])}/{_fmt(last['reset', 'unchanged'])} (changed/unchanged); "
                             f"|log10| effect of carrying {ce:.2f} vs of the change {che:.2f}")
    claims.append(dict(claim="Divergence (figure 7): Carry Z has a smaller MSE(z_k, z_1) than Reset Z, and carrying z changes it by more "
                             "than whether the environment changed (compared at the last segment, in log10 ratio).",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run."))
    # intervention (not a paper claim): carry checkpoint evaluated with reset z
    ev = []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("carry_as_reset", "conv", z, c)
            if have(a, b):
                ev.append(f"{z} {c}: carried {_fmt(point[a][0])} vs reset {_fmt(point[b][0])}")
    if ev:
        claims.append(dict(claim="(Not a paper claim) Intervention: the carry-Z checkpoint evaluated with z reset at every step; "
                                 "median MSE(z_1, z_S) with the carried z vs with z reset.",
                           verdict="observation", evidence="; ".join(ev) + "."))
    return claims


# ---- figures ------------------------------------------------------------------------------------

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


# ---- report -------------------------------------------------------------------------------------

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
                    cells = [_fmt(v) for v in vals] + [""] * (len(ks) - len(vals))
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


# ---- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None, cache: dict | None = None) -> int:
    """`cache`: a dict kept by the caller across calls (experiments.analyze_agents) in which the
    loaded runs and the compiled rollouts are kept, so analysing another agent pair of the same runs
    neither restores their checkpoints nor compiles again. None: nothing kept."""
    args = build_parser().parse_args(argv)
    cache = {} if cache is None else cache
    from hrm_jax.cli import fail

    for d in args.run_dirs:
        if not os.path.isfile(os.path.join(d, "config.json")):
            fail(f"{d}: not a run directory (no config.json)", PROG)
    out = args.out
    if out is None:
        parents = {os.path.dirname(os.path.abspath(d.rstrip("/"))) for d in args.run_dirs}
        out = os.path.join(parents.pop() if len(parents) == 1 else "runs", "analysis")

    import jax

    from experiments.run import load_run
    from hrm_jax.checkpoint import CheckpointError

    evals, recs = [], {}
    names = [os.path.basename(os.path.abspath(d.rstrip("/"))) for d in args.run_dirs]
    env_names = set()
    is_carry, agents = [], []
    for d in args.run_dirs:
        with open(os.path.join(d, "config.json")) as fh:
            model_cfg = json.load(fh)["model"]
        if model_cfg.get("arch", "hrm") != "hrm":
            fail(f"{d}: the analysis of z applies to HRM agents only; this run's Q-network is the "
                 f"{model_cfg['arch']} baseline, which has no z", PROG)
        is_carry.append(model_cfg["z_carry"] != "reset")
    for d, name in zip(args.run_dirs, names):
        try:
            key = ("run", os.path.abspath(d))
            if key not in cache:
                cache[key] = load_run(d)
            cfg, tr, state, step = cache[key]
        except CheckpointError as exc:
            fail(f"{d}: {exc}", PROG)
        first = cfg.train.first_agent
        agent_index = first if args.seed_index is None else args.seed_index
        if not first <= agent_index < first + cfg.train.seeds:
            fail(f"--seed-index={agent_index}: {d} has agents {first}..{first + cfg.train.seeds - 1}", PROG)
        agents.append(agent_index)
        segments = args.segments or cfg.model.segments_per_step
        if segments < 2:
            fail(f"{d}: segments_per_step={cfg.model.segments_per_step}; the analysis needs at least 2 segments "
                 "(give --segments)", PROG)
        env_names.add(cfg.env.name)
        params = jax.tree.map(lambda x: x[agent_index - first], state.params)
        constants = jax.tree.map(lambda x: x[agent_index - first], state.constants)
        env_params = tr.env_params.replace(p_change=args.p_change)
        carry = cfg.model.z_carry != "reset"
        variant = "Carry Z" if carry else "Reset Z"
        tag = f" [{name}]" if sum(v == carry for v in is_carry) > 1 else ""
        modes = [(cfg.model.z_carry, "as trained", f"{variant}{tag}")]
        if carry:
            modes.append(("reset", "intervention", f"{variant}{tag} evaluated with reset z"))
        for z_mode, kind, label in modes:
            print(f"{label}: {d} step {step}, z {z_mode}, {segments} segments, {args.envs} envs ...", file=sys.stderr)
            batch = min(args.batch, args.envs)
            key = ("rollout", os.path.abspath(d), z_mode, batch, segments)
            if key not in cache:
                cache[key] = rollout_program(tr, z_mode, batch, segments)
            rec = rollout_records(tr, params, constants, env_params, z_mode, args.envs, args.batch, args.eval_seed,
                                  segments, program=cache[key])
            summary = summarize(rec)
            c = summary["counts"]
            print(f"  success {summary['success']:.3f}, mean length {summary['mean_length']:.2f}; "
                  f"steps changed {c['changed']}, unchanged {c['unchanged']}", file=sys.stderr)
            i = len(evals)
            evals.append(dict(label=label, run_dir=d, z_carry=cfg.model.z_carry, z_mode=z_mode, z_mode_kind=kind,
                              variant="carry" if carry else "reset", step=int(step), segments=segments,
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
    claims = judge_claims(carry_r, reset_r, inter_r, sorted(env_names)[0], n_boot=args.bootstrap)
    meta = dict(command=" ".join([PROG] + (argv if argv is not None else sys.argv[1:])), envs=args.envs, segments=args.segments,
                p_change=args.p_change, seed_index=", ".join(str(a) for a in sorted(set(agents))), eval_seed=args.eval_seed, bootstrap=args.bootstrap, out=out)
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(report_markdown(meta, evals, claims, figures))
    with open(os.path.join(out, "analysis.json"), "w") as fh:
        json.dump(_finite(dict(meta=meta, evaluations=evals, claims=claims)), fh, indent=2)
    print(f"wrote {out}/report.md, analysis.json, " + ", ".join(figures.values()))
    for c in claims:
        print(f"- {c['verdict']}: {c['claim']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
