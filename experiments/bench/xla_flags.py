"""`xla-flags`: gradient steps/s of the training chunk (`train`) under several XLA_FLAGS values,
one fresh process each (XLA reads its flags once, at start), side by side with the first."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from experiments.bench.presets import preset_list
from experiments.bench.registry import subcommand
from experiments.bench.report import print_table
from hrm_jax.cli import positive_int

DEFAULT_XLA_FLAGS = ["", "--xla_cpu_use_xnnpack=true", "--xla_cpu_use_onednn=true", "--xla_cpu_prefer_vector_width=256"]


def add_xla_flags_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--xla-flags", action="append", default=None, metavar="FLAGS",
                   help="an XLA_FLAGS value to time; repeat for each (write --xla-flags=--xla_cpu_...=true; "
                        "--xla-flags= is the default compiler; default: "
                        + " | ".join(f or "(none)" for f in DEFAULT_XLA_FLAGS) + "); the first is the baseline")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="measure the flag sets round robin this many times, median per set (default 1)")
    p.add_argument("--iterations", type=positive_int, default=25, help="iterations per timed chunk (default 25)")
    p.add_argument("--eval-envs", type=positive_int, default=16, help="evaluation envs in the chunk (subtracted; default 16)")


@subcommand("xla-flags", "gradient steps/s of the training chunk (`train`) under each XLA_FLAGS value, one process "
                         "per value (XLA reads its flags once, at start), side by side with the first", add_xla_flags_args)
def run_xla_flags(args) -> dict:
    flag_sets = args.xla_flags if args.xla_flags is not None else list(DEFAULT_XLA_FLAGS)
    if len(set(flag_sets)) < len(flag_sets):
        args.parser.error(f"--xla-flags: a value is repeated ({' | '.join(flag_sets)})")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    runs: dict[str, list[dict]] = {f: [] for f in flag_sets}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, flags in enumerate(flag_sets):
                out = os.path.join(tmp, f"{r}-{i}.json")
                cmd = [sys.executable, "-m", "experiments.bench", "train", "--presets", ",".join(args.presets),
                       "--iterations", str(args.iterations), "--eval-envs", str(args.eval_envs),
                       "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--seed", str(args.seed),
                       "--json", out]
                print(f"round {r + 1}/{args.rounds}: XLA_FLAGS={flags!r} ...", flush=True)
                proc = subprocess.run(cmd, env={**env, "XLA_FLAGS": flags}, capture_output=True, text=True)
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                    args.parser.error(f"XLA_FLAGS={flags!r}: the training run failed: {last}")
                with open(out) as fh:
                    runs[flags].append(json.load(fh)["results"]["cases"])
    rows = []
    for name in args.presets:
        base = None
        for flags in flag_sets:
            cases = [next(c for c in round_cases if c["preset"] == name) for round_cases in runs[flags]]
            rate = statistics.median(c["grad_steps_per_s"] for c in cases)
            base = rate if base is None else base
            rows.append({"preset": name, "xla_flags": flags, "grad_steps_per_s": rate, "vs_first": rate / base,
                         "all_grad_steps_per_s": [c["grad_steps_per_s"] for c in cases],
                         "compile_s": statistics.median(c["chunk"]["compile_s"] for c in cases),
                         "loadavg": [c["chunk"]["loadavg"] for c in cases]})
    print_table(["preset", "XLA_FLAGS", "grad steps/s", "vs first", "each round", "compile s", "load"],
                [[r["preset"], r["xla_flags"] or "(none)", f"{r['grad_steps_per_s']:.2f}", f"{r['vs_first']:.3f}x",
                  " ".join(f"{x:.2f}" for x in r["all_grad_steps_per_s"]), f"{r['compile_s']:.1f}",
                  " ".join(f"{l[0]:.1f}" if l else "n/a" for l in r["loadavg"])] for r in rows],
                title="Training chunk per XLA_FLAGS (python -m experiments.bench train in a fresh process for each; "
                      "grad steps/s exclude the evaluation)")
    return {"rows": rows}
