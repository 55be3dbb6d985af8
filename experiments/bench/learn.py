"""`learn`: time to reach a greedy success rate (default 95%) with the real training loop, chunk
by chunk, compile included in the wall time (long; not part of `all`)."""
from __future__ import annotations

import argparse
import time

import jax

from experiments.bench.presets import bench_presets, preset_list
from experiments.bench.registry import subcommand
from experiments.bench.report import format_table
from experiments.bench.timing import compile_fn
from hrm_jax.algos import make_train
from hrm_jax.cli import positive_float, positive_int
from hrm_jax.config import override, validate
from hrm_jax.machine import load_average


def add_learn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--threshold", type=float, default=0.95, help="greedy success to reach (default 0.95)")
    p.add_argument("--max-minutes", type=positive_float, default=15.0,
                   help="give up after this much wall time, compile included (default 15)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="gradient steps per chunk / between evaluations (default: the preset's)")
    p.add_argument("--eval-envs", type=positive_int, default=None, help="evaluation envs (default: the preset's)")


@subcommand("learn", "time to reach a greedy success rate (default 95%) with the real training loop, chunk by "
                     "chunk (long)", add_learn_args)
def run_learn(args) -> dict:
    if not 0.0 <= args.threshold <= 1.0:
        args.parser.error(f"--threshold {args.threshold} must be in [0, 1]")
    presets = bench_presets()
    runs = []
    for name in args.presets:
        cfg = presets[name]
        kw = {}
        if args.eval_every:
            kw.update(eval_every=args.eval_every, checkpoint_every=args.eval_every)
        if args.eval_envs:
            kw["eval_envs"] = args.eval_envs
        try:
            cfg = validate(override(cfg, "train", **kw))
        except ValueError as e:
            args.parser.error(str(e))
        t = cfg.train
        print(f"\n{name}: training until greedy success >= {args.threshold:.0%} on {cfg.env.name} or "
              f"{args.max_minutes:g} min (chunks of {t.eval_every} grad steps, eval on {t.eval_envs} envs)", flush=True)
        t_start = time.perf_counter()
        tr = make_train(cfg)
        state = jax.block_until_ready(jax.jit(tr.init)(jax.random.key(args.seed)))
        init_s = time.perf_counter() - t_start
        chunk, cinfo = compile_fn(jax.jit(tr.chunk), state)
        compile_s = cinfo["compile_s"]
        curve, train_s, reached = [], 0.0, None
        print(format_table(["chunk", "grad steps", "env steps", "train s", "wall s", "success", "length", "loss",
                            "epsilon", "load"], []), flush=True)
        while True:
            t0 = time.perf_counter()
            state, mt = chunk(state)
            mt = {k: float(v) for k, v in jax.device_get(mt).items()}
            dt = time.perf_counter() - t0
            train_s += dt
            wall = time.perf_counter() - t_start
            la = load_average()
            pt = {"chunk": len(curve) + 1, "grad_steps": int(mt["grad_steps"]), "env_steps": int(mt["env_steps"]),
                  "chunk_s": dt, "train_s": train_s, "wall_s": wall, "eval_success": mt["eval_success"],
                  "eval_length": mt["eval_length"], "eval_optimal": mt["eval_optimal"], "loss": mt["loss"],
                  "epsilon": mt["epsilon"], "loadavg": la}
            curve.append(pt)
            print(f"{pt['chunk']:5d}  {pt['grad_steps']:10d}  {pt['env_steps']:9d}  {train_s:7.1f}  {wall:6.1f}  "
                  f"{pt['eval_success']:7.3f}  {pt['eval_length']:6.1f}  {pt['loss']:.4f}  {pt['epsilon']:.3f}  "
                  f"{la[0] if la else '-'}", flush=True)
            if pt["eval_success"] >= args.threshold:
                reached = pt
                break
            if wall >= args.max_minutes * 60:
                break
        best = max(curve, key=lambda p: p["eval_success"])
        run = {"preset": name, "threshold": args.threshold, "max_minutes": args.max_minutes,
               "eval_every": t.eval_every, "eval_envs": t.eval_envs, "init_s": init_s, "compile_s": compile_s,
               "reached": reached is not None, "grad_steps": reached["grad_steps"] if reached else None,
               "env_steps": reached["env_steps"] if reached else None,
               "wall_s": reached["wall_s"] if reached else None, "train_s": reached["train_s"] if reached else None,
               "best_success": best["eval_success"], "best_at_grad_steps": best["grad_steps"],
               "total_wall_s": curve[-1]["wall_s"], "curve": curve}
        runs.append(run)
        if reached:
            print(f"{name}: reached {reached['eval_success']:.1%} >= {args.threshold:.0%} after {reached['grad_steps']:,} "
                  f"gradient steps, {reached['env_steps']:,} env steps, {reached['wall_s']:.0f} s wall "
                  f"(compile {compile_s:.0f} s + init {init_s:.0f} s + training {reached['train_s']:.0f} s, "
                  f"evaluations included)", flush=True)
        else:
            print(f"{name}: not reached in {curve[-1]['wall_s'] / 60:.1f} min: best success {best['eval_success']:.1%} "
                  f"at {best['grad_steps']:,} gradient steps", flush=True)
    return {"runs": runs}
