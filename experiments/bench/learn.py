"""`learn`: how long the real training loop takes to learn, per preset, Q-network, learner and seed:
wall time (compile included) and env steps until greedy success first *held* the threshold
(default 0.95 at 2 consecutive evaluations, `hrm_jax.runlog.held_threshold`, the target runs are
judged by), and the greedy success at fixed wall times (default 15 and 60 minutes). Long; not
part of `all`. Agent i of a seed is the runner's agent i (same key)."""
from __future__ import annotations

import argparse
import time

import jax

from experiments.bench.presets import bench_presets, preset_list
from experiments.bench.registry import subcommand
from experiments.bench.report import format_table
from experiments.bench.timing import compile_fn
from hrm_jax.algos import make_train, seed_keys
from hrm_jax.cli import positive_float, positive_int
from hrm_jax.config import override, validate
from hrm_jax.machine import load_average
from hrm_jax.runlog import held_threshold


def name_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in choices]
        if not names or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return names
    return parse


def minutes_list(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: give minutes > 0, comma-separated (e.g. 15,60)")
    return vals


def add_learn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--models", type=name_list(("hrm", "mlp", "cnn")), default=None,
                   help="Q-networks, e.g. hrm,cnn (default: each preset's)")
    p.add_argument("--algos", type=name_list(("dqn", "pqn")), default=None, help="learners, e.g. dqn,pqn (default: each preset's)")
    p.add_argument("--seeds", type=positive_int, default=1, help="agents 0..N-1 per case, trained one after another (default 1)")
    p.add_argument("--threshold", type=float, default=0.95, help="greedy success to hold (default 0.95)")
    p.add_argument("--sustain", type=positive_int, default=2, help="consecutive evaluations it must hold for (default 2)")
    p.add_argument("--max-minutes", type=positive_float, default=15.0,
                   help="stop a run after this much wall time, compile included (default 15)")
    p.add_argument("--at-minutes", type=minutes_list, default=[15.0, 60.0],
                   help="report the greedy success at these wall times (default 15,60)")
    p.add_argument("--run-on", action="store_true", help="keep training after the threshold is held (to --max-minutes)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="gradient steps per chunk / between evaluations (default: the preset's)")
    p.add_argument("--eval-envs", type=positive_int, default=None, help="evaluation envs (default: the preset's)")


def success_at(curve: list[dict], minutes: float, max_minutes: float, held: dict | None) -> float | None:
    """Greedy success of the last evaluation at or before `minutes` of wall time; None when the run
    did not last that long (stopped once held, or at --max-minutes)."""
    ran_to = curve[-1]["wall_time_s"] / 60
    if minutes > ran_to and (minutes > max_minutes or held is not None):
        return None
    before = [p for p in curve if p["wall_time_s"] <= minutes * 60]
    return before[-1]["eval_success"] if before else 0.0


def train_one(cfg, agent: int, args) -> dict:
    """One agent until its success held the threshold (or --max-minutes): its curve and summary."""
    t_start = time.perf_counter()
    tr = make_train(cfg)
    key = seed_keys(cfg.train.seed, 1, agent)[0]
    state = jax.block_until_ready(jax.jit(tr.init)(key))
    init_s = time.perf_counter() - t_start
    chunk, cinfo = compile_fn(jax.jit(tr.chunk), state)
    curve, held = [], None
    while True:
        state, mt = chunk(state)
        mt = {k: float(v) for k, v in jax.device_get(mt).items()}
        la = load_average()
        pt = {"grad_steps": int(mt["grad_steps"]), "env_steps": int(mt["env_steps"]),
              "wall_time_s": time.perf_counter() - t_start, "eval_success": mt["eval_success"],
              "eval_length": mt["eval_length"], "loss": mt["loss"], "epsilon": mt["epsilon"], "loadavg": la}
        curve.append(pt)
        print(f"  agent {agent}  {pt['grad_steps']:8d}  {pt['env_steps']:9d}  {pt['wall_time_s']:7.1f}  "
              f"{pt['eval_success']:7.3f}  {pt['eval_length']:6.1f}  {pt['loss']:.4f}  {la[0] if la else '-'}", flush=True)
        held = held_threshold(curve, args.threshold, args.sustain)
        if (held is not None and not args.run_on) or pt["wall_time_s"] >= args.max_minutes * 60:
            break
    best = max(curve, key=lambda p: p["eval_success"])
    return {"agent": agent, "init_s": init_s, "compile_s": cinfo["compile_s"], "held": held,
            "success_at": {f"{m:g}": success_at(curve, m, args.max_minutes, held) for m in args.at_minutes},
            "best_success": best["eval_success"], "best_at_grad_steps": best["grad_steps"],
            "total_wall_s": curve[-1]["wall_time_s"], "curve": curve}


def cases(args):
    """(preset, model, algo, validated config) for every combination asked for."""
    presets = bench_presets()
    for name in args.presets:
        base = presets[name]
        for model in args.models or [base.model.arch]:
            for algo in args.algos or [base.train.algo]:
                kw = {"algo": algo}
                if args.eval_every:
                    kw.update(eval_every=args.eval_every, checkpoint_every=args.eval_every)
                if args.eval_envs:
                    kw["eval_envs"] = args.eval_envs
                try:
                    cfg = validate(override(override(base, "model", arch=model), "train", **kw))
                except ValueError as e:
                    args.parser.error(f"{name} --model {model} --algo {algo}: {e}")
                yield name, model, algo, cfg


@subcommand("learn", "time until greedy success holds 0.95 with the real training loop, per preset, model, "
                     "learner and seed, and the success at 15 / 60 min (long)", add_learn_args)
def run_learn(args) -> dict:
    if not 0.0 <= args.threshold <= 1.0:
        args.parser.error(f"--threshold {args.threshold} must be in [0, 1]")
    todo = list(cases(args))
    target = f"success >= {args.threshold:.2f} at {args.sustain} evaluations in a row"
    runs = []
    for name, model, algo, cfg in todo:
        t = cfg.train
        print(f"\n{name} --model {model} --algo {algo} on {cfg.env.name}: until {target} or {args.max_minutes:g} min "
              f"(evaluations every {t.eval_every} grad steps on {t.eval_envs} envs); agent, grad steps, env steps, "
              f"wall s, success, length, loss, load", flush=True)
        for agent in range(args.seeds):
            r = train_one(cfg, agent, args)
            runs.append({"preset": name, "model": model, "algo": algo, "env": cfg.env.name, "threshold": args.threshold,
                         "sustain": args.sustain, "max_minutes": args.max_minutes, "eval_every": t.eval_every,
                         "eval_envs": t.eval_envs, **r})
    at = [f"{m:g}" for m in args.at_minutes]
    rows = [[r["preset"], r["model"], r["algo"], r["agent"],
             "-" if r["held"] is None else f"{r['held']['wall_time_s']:.0f}",
             "-" if r["held"] is None else f"{r['held']['env_steps']:,}",
             "-" if r["held"] is None else f"{r['held']['grad_steps']:,}",
             *["-" if r["success_at"][m] is None else f"{r['success_at'][m]:.3f}" for m in at],
             f"{r['best_success']:.3f}", f"{r['total_wall_s']:.0f}"] for r in runs]
    print(f"\n{target} ('-': not held, or the run ended before that time)")
    print(format_table(["preset", "model", "algo", "agent", "held at wall s", "env steps", "grad steps",
                        *[f"success at {m} min" for m in at], "best", "ran s"], rows), flush=True)
    return {"runs": runs}
