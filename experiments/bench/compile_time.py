"""`compile`: the compile time of the training chunk (jit(tr.chunk)), for two run lengths, and
that it is the same program whatever the run length (the host loop calls one chunk num_chunks times)."""
from __future__ import annotations

import argparse
import hashlib
import time

import jax

from experiments.bench.presets import bench_presets, preset_list
from experiments.bench.registry import int_list, subcommand
from experiments.bench.report import fmt_load1, pass_miss, print_table
from hrm_jax.algos import make_train
from hrm_jax.config import override, validate
from hrm_jax.machine import load_average

TARGET_COMPILE_S = 60.0        # the cpu preset's chunk, trace + compile


def add_compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--total-grad-steps", type=int_list, default=None,
                   help="run lengths to compile the chunk for (default: the preset's and 10x it)")


def lower_chunk(cfg, key):
    """(trainer, lowered jit(chunk), lower seconds) from the abstract state (nothing is run)."""
    tr = make_train(cfg)
    abstract = jax.eval_shape(tr.init, key)
    t0 = time.perf_counter()
    lowered = jax.jit(tr.chunk).lower(abstract)
    return tr, lowered, time.perf_counter() - t0


@subcommand("compile", "compile time of the training chunk (jit(tr.chunk)) for two run lengths", add_compile_args)
def run_compile(args) -> dict:
    presets = bench_presets()
    rows, targets = [], []
    for name in args.presets:
        base = presets[name]
        totals = args.total_grad_steps or [base.train.total_grad_steps, 10 * base.train.total_grad_steps]
        per = []
        for total in totals:
            cfg = validate(override(base, "train", total_grad_steps=total))
            tr, lowered, lower_s = lower_chunk(cfg, jax.random.key(args.seed))
            t0, c0 = time.perf_counter(), time.process_time()
            lowered.compile()
            compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
            per.append({"preset": name, "total_grad_steps": total, "eval_every": cfg.train.eval_every,
                        "iters_per_chunk": tr.iters_per_chunk, "num_chunks": tr.num_chunks, "lower_s": lower_s,
                        "compile_s": compile_s, "compile_cpu_s": compile_cpu_s,
                        "hlo_sha256": hashlib.sha256(lowered.as_text().encode()).hexdigest(),
                        "loadavg": load_average()})
            print(f"  {name} total_grad_steps={total}: trace+lower {lower_s:.1f} s, compile {compile_s:.1f} s "
                  f"({compile_cpu_s:.1f} s CPU)", flush=True)
        same = len({r["hlo_sha256"] for r in per}) == 1
        for r in per:
            r["same_program"] = same
        rows += per
        worst = max(r["lower_s"] + r["compile_s"] for r in per)
        targets.append({"preset": name, "target": f"chunk trace+compile <= {TARGET_COMPILE_S:.0f} s",
                        "value": worst, "pass": worst <= TARGET_COMPILE_S, "same_program": same,
                        "worst_compile_cpu_s": max(r["compile_cpu_s"] for r in per),
                        "compile_ratio": max(r["compile_s"] for r in per) / min(r["compile_s"] for r in per)})
    print_table(["preset", "total_grad_steps", "num_chunks", "chunk (eval_every)", "trace+lower s", "compile s",
                 "compile CPU s", "program sha256", "load"],
                [[r["preset"], r["total_grad_steps"], r["num_chunks"], f"{r['eval_every']} ({r['iters_per_chunk']} it)",
                  f"{r['lower_s']:.2f}", f"{r['compile_s']:.2f}", f"{r['compile_cpu_s']:.2f}", r["hlo_sha256"][:12],
                  fmt_load1(r)] for r in rows],
                title="Compile time of jit(tr.chunk) (one chunk = eval_every gradient steps + an evaluation; the "
                      "host loop calls it num_chunks times)")
    print_table(["preset", "target", "worst s", "result", "worst compile CPU s", "identical program for all run lengths",
                 "max/min compile"],
                [[x["preset"], x["target"], f"{x['value']:.1f}", pass_miss(x["pass"]), f"{x['worst_compile_cpu_s']:.1f}",
                  "yes" if x["same_program"] else "NO", f"{x['compile_ratio']:.2f}"] for x in targets],
                title="Targets")
    return {"rows": rows, "targets": targets}
