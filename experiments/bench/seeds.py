"""`seeds`: the wall time of the training chunk for 1, 2, 4, 8 seeds in one program, vmapped and
looped (lax.map), timed round robin, and the target (8 seeds in <= 4x one seed's time)."""
from __future__ import annotations

import argparse

import jax

from experiments.bench.presets import bench_presets, chunk_config, preset_list, repeats_for
from experiments.bench.registry import int_list, subcommand
from experiments.bench.report import fmt_load1, pass_miss, print_table
from experiments.bench.timing import time_round_robin
from hrm_jax.algos import make_train, seed_keys
from hrm_jax.cli import positive_int
from hrm_jax.config import SEED_LOOPS
from hrm_jax.sharding import over_seeds

TARGET_SEEDS = (8, 4.0)        # 8 seeds in <= 4x one seed's wall time


def seed_loop_list(text: str) -> list[str]:
    """argparse type: "vmap,map" -> ["vmap", "map"] (TrainConfig.seed_loop's choices)."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names or any(n not in SEED_LOOPS for n in names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: choose seed loops from {', '.join(SEED_LOOPS)} (each once)")
    return names


def add_seeds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--seed-counts", type=int_list, default=[1, 2, 4, 8], help="seeds in one program (default 1,2,4,8)")
    p.add_argument("--seed-loops", type=seed_loop_list, default=list(SEED_LOOPS),
                   help="how the program runs its seeds (--seed-loop of experiments.run), timed side by side: "
                        "vmap (batched), map (lax.map, one after another) (default vmap,map)")
    p.add_argument("--iterations", type=positive_int, default=20, help="iterations per chunk (default 20)")
    p.add_argument("--eval-envs", type=positive_int, default=16, help="evaluation envs per seed in the chunk (default 16)")


@subcommand("seeds", "wall time of the training chunk for 1, 2, 4, 8 seeds in one program, vmapped and looped with "
                     "lax.map (jit(over_seeds(tr.chunk, loop)), as experiments.run), timed round robin", add_seeds_args)
def run_seeds(args) -> dict:
    presets = bench_presets()
    rows, targets = [], []
    n_t, limit = TARGET_SEEDS
    for name in args.presets:
        cfg = chunk_config(presets[name], args.iterations, args.eval_envs)
        tr = make_train(cfg)
        init = jax.jit(jax.vmap(tr.init))
        chunks = {loop: jax.jit(over_seeds(tr.chunk, loop)) for loop in args.seed_loops}
        reps, warm = repeats_for(name, args)
        per = []
        # agent i's key is fold_in(key(seed), i) whatever the count: initialise the most seeds once, slice the rest
        all_states = jax.block_until_ready(init(seed_keys(args.seed, max(args.seed_counts))))
        for n in args.seed_counts:
            states = jax.block_until_ready(jax.tree.map(lambda x: x[:n], all_states))
            # the loops in turn, so that a change of load hits them alike
            timed = time_round_robin({loop: (fn, (states,)) for loop, fn in chunks.items()}, repeats=reps, warmup=warm)
            for loop, tt in timed.items():
                per.append({"preset": name, "seed_loop": loop, "seeds": n, "iterations": tr.iters_per_chunk,
                            "eval_envs": cfg.train.eval_envs, **tt, "per_seed_s": tt["median_s"] / n,
                            "grad_steps_per_s": n * cfg.train.eval_every / tt["median_s"]})
                print(f"  {name} {loop} {n} seed(s): {tt['median_s']:.3f} s (compile {tt['compile_s']:.1f} s, "
                      f"load {fmt_load1(tt)})", flush=True)
        row = {(r["seed_loop"], r["seeds"]): r for r in per}
        for r in per:
            base = row.get((r["seed_loop"], 1))
            r["vs_one_seed"] = r["median_s"] / base["median_s"] if base else None
            vm = row.get(("vmap", r["seeds"]))
            r["vs_vmap"] = r["median_s"] / vm["median_s"] if vm else None
        rows += per
        own = cfg.train.seed_loop  # what experiments.run does with this preset
        r8 = row.get((own, n_t))
        ok = None if r8 is None or r8["vs_one_seed"] is None else r8["vs_one_seed"] <= limit
        targets.append({"preset": name, "seed_loop": own,
                        "target": f"{n_t} seeds <= {limit:g}x one seed's wall time (seed_loop={own}, the preset's)",
                        "value": r8["vs_one_seed"] if r8 else None, "pass": ok})
    print_table(["preset", "loop", "seeds", "iters", "compile s", "first call s", "median s", "per seed s", "vs 1 seed",
                 "vs vmap", "grad steps/s (all)", "cpu s", "load"],
                [[r["preset"], r["seed_loop"], r["seeds"], r["iterations"], f"{r['compile_s']:.1f}",
                  f"{r['first_call_s']:.2f}", f"{r['median_s']:.3f}", f"{r['per_seed_s']:.3f}", f"{r['vs_one_seed']:.2f}x" if r["vs_one_seed"] else "-",
                  f"{r['vs_vmap']:.2f}x" if r["vs_vmap"] else "-",
                  f"{r['grad_steps_per_s']:.1f}", f"{r['median_cpu_s']:.2f}", fmt_load1(r)] for r in rows],
                title="Seeds: one jit(over_seeds(tr.chunk, loop)) call (iterations + greedy eval of eval_envs per "
                      "seed); vs vmap < 1 = faster than vmapping the same seeds")
    print_table(["preset", "target", "measured", "result"],
                [[x["preset"], x["target"], f"{x['value']:.2f}x" if x["value"] is not None else f"not measured "
                  f"(needs 1 and {n_t} in --seed-counts, and --seed-loops {x['seed_loop']})", pass_miss(x["pass"])]
                 for x in targets], title="Targets")
    return {"rows": rows, "targets": targets}
