"""Benchmarks: `python -m experiments.bench SUBCOMMAND [SUBCOMMAND ...] [--json OUT] [--repeats N] ...`

Subcommands, one module each:
  env        (env.py) steps/s of the JAX mazes (vmapped, auto-reset, in one lax.scan) vs raw MiniHack
  model      (model.py) one acting step (all segments, no gradient, num_envs envs) and one
             1-step-gradient update (batch_size) per preset: time, achieved FLOP/s (analytic,
             cross-checked with XLA's cost analysis) vs a plain GEMM in the same run, and vs the
             authors' code at the paper config
  compile    (compile_time.py) compile time of the training chunk, for two run lengths (the same program)
  train      (train.py) transitions/s and gradient steps/s of the jitted training chunk, the share of
             acting / learning / env stepping (the learner's own functions, timed alone), vs the authors' code
  seeds      (seeds.py) the training chunk for 1, 2, 4, 8 seeds, vmapped and looped
  xla-flags  (xla_flags.py) `train` under several XLA_FLAGS values, one fresh process each, side by side
  learn      (learn.py) time to reach 95% greedy success with the real training loop (long; not in `all`)
  all        env, model, compile, train, seeds (and learn with --with-learn)
Several subcommands can run in one process (`train seeds --json OUT`): each option goes to every
subcommand that has it, and each keeps its own defaults; the JSON then holds one entry per subcommand.

Shared pieces: timing.py (compile, first call, timed calls), report.py (tables, JSON),
presets.py (the presets the HRM benchmarks measure and the authors' figures there), registry.py
(the subcommand interface), cli.py (the command line); hrm_jax.machine describes the machine.

Every timing excludes compilation and the first call of the compiled program (both reported
apart: compile_s, first_call_s), runs `--warmup` more untimed calls, then reports the median of
`--repeats` calls, each ended by `block_until_ready` (the paper preset allows fewer:
`--paper-repeats`, since one call takes tens of seconds on a CPU). The machine (CPU model, cores,
load average at start and end), the JAX version and the backend are printed and written to JSON;
every timing also records the load average right after it.

To add a subcommand, a module `foo.py` here, imported in cli.py:

    def add_foo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--batch", type=int_list, default=[64])

    @subcommand("foo", "what foo measures", add_foo_args)
    def run_foo(args) -> dict:
        t = time_fn(jax.jit(f), x, repeats=args.repeats)          # compile_s, first_call_s, median_s, ...
        print_table(["batch", "median s"], [[64, f"{t['median_s']:.4f}"]])
        return {"rows": [...]}                                   # lands under "results" in the JSON

Shared options of every subcommand: --json, --repeats, --warmup, --seed.
"""
from experiments.bench.cli import build_parser, main
from experiments.bench.registry import SUBCOMMANDS

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
