"""Benchmarks: `python -m experiments.bench SUBCOMMAND [SUBCOMMAND ...] [--json OUT] [--repeats N] ...`

Subcommands:
  env      steps/s of the JAX mazes (vmapped, auto-reset, in one lax.scan) vs raw MiniHack
  model    one acting step (all segments, no gradient, num_envs envs) and one 1-step-gradient update
           (batch_size) per preset: time, achieved FLOP/s (analytic, cross-checked with XLA's cost
           analysis) vs a plain GEMM in the same run, and vs the authors' code at the paper config
  compile  compile time of the training chunk, for two run lengths (the same program)
  train    transitions/s and gradient steps/s of the jitted training chunk, the share of acting /
           learning / env stepping, vs the authors' code
  seeds    the training chunk for 1, 2, 4, 8 vmapped seeds
  xla-flags  `train` under several XLA_FLAGS values, one fresh process each, side by side
  learn    time to reach 95% greedy success with the real training loop (long; not part of `all`)
  all      env, model, compile, train, seeds (and learn with --with-learn)
Several subcommands can run in one process (`train seeds --json OUT`): each option goes to every
subcommand that has it, and each keeps its own defaults; the JSON then holds one entry per subcommand.

Every timing excludes compilation (reported separately), runs a warm-up call, then reports the
median of `--repeats` calls, each ended by `block_until_ready` (the paper preset allows fewer:
`--paper-repeats`, since one call takes tens of seconds on a CPU). The machine (CPU model, cores,
load average at start and end), the JAX version and the backend are printed and written to JSON;
every timing also records the load average right after it.

Subcommands live in the `SUBCOMMANDS` registry. To add one:

    def add_foo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--batch", type=int_list, default=[64])

    @subcommand("foo", "what foo measures", add_foo_args)
    def run_foo(args) -> dict:
        t = time_fn(jax.jit(f), x, repeats=args.repeats)          # compile_s, median_s, ...
        print_table(["batch", "median s"], [[64, f"{t['median_s']:.4f}"]])
        return {"rows": [...]}                                   # lands under "results" in the JSON

Shared options of every subcommand: --json, --repeats, --warmup, --seed.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hrm_jax.cli import OneLineParser, non_negative_int, positive_float, positive_int
from hrm_jax.config import SEED_LOOPS

# ---- shared helpers ----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict:
    """CPU model, core counts, load average, Python/JAX versions, backend and devices."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import jaxlib
    devices = jax.devices()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "loadavg": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in devices],
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def machine_text(info: dict) -> str:
    load = info.get("loadavg")
    load_s = " ".join(f"{x:.2f}" for x in load) if load else "n/a"
    return (f"machine: {info['cpu_model']}, {info['cpus_usable']} usable of {info['cpu_count']} cores, "
            f"load average {load_s}\n"
            f"jax {info['jax']} (jaxlib {info['jaxlib']}), backend {info['backend']}, "
            f"devices {', '.join(info['devices'])}, python {info['python']}")


def _block(x):
    return jax.block_until_ready(x)


def compile_fn(fn: Callable, *args) -> tuple[Callable, dict]:
    """(callable, {compile_s, compile_cpu_s}): a jitted `fn` compiled ahead of time
    (`fn.lower(*args).compile()`, so the seconds are tracing + compilation alone); any other
    callable is called once (the seconds are that first call) and returned as is. compile_cpu_s is
    the process CPU time it took (XLA compiles on one thread: about the wall time on an idle machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if hasattr(fn, "lower"):
        call = fn.lower(*args).compile()
    else:
        _block(fn(*args))
        call = fn
    return call, {"compile_s": time.perf_counter() - t0, "compile_cpu_s": time.process_time() - c0}


def time_call(call: Callable, *args, repeats: int = 5, warmup: int = 1, compile_info: dict | None = None) -> dict:
    """`warmup` untimed calls, then `repeats` timed calls of an already compiled `call`, each ended
    by `block_until_ready`. Returns {compile_s, compile_cpu_s (from compile_info), median_s, min_s,
    all_s, median_cpu_s, repeats, warmup, loadavg} (loadavg: the 1/5/15-minute load average right
    after the timed calls)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        _block(call(*args))
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        _block(call(*args))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    info = compile_info or {}
    return {"compile_s": info.get("compile_s"), "compile_cpu_s": info.get("compile_cpu_s"),
            "median_s": statistics.median(times), "min_s": min(times), "all_s": times,
            "median_cpu_s": statistics.median(cpu), "repeats": repeats, "warmup": warmup, "loadavg": load_average()}


def time_fn(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """Time `fn(*args)`: compile (excluded, reported as compile_s), `warmup` untimed calls, then
    `repeats` timed calls, each ended by `block_until_ready`.

    A jitted function is compiled ahead of time (`fn.lower(*args).compile()`), so compile_s is
    the compilation alone; for any other callable compile_s is the first call (trace + compile +
    one run). Returns {compile_s, median_s, min_s, all_s, median_cpu_s, ...}; median_cpu_s is the
    process CPU time (all threads) per call, a cross-check when the machine is loaded.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    call, info = compile_fn(fn, *args)
    return time_call(call, *args, repeats=repeats, warmup=warmup, compile_info=info)


def time_round_robin(calls: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Time several functions in turn: compile each (excluded), `warmup` untimed rounds, then
    `repeats` rounds that call each once (block_until_ready after each). On a shared machine a
    change of load then hits all of them alike, so their ratios stay meaningful.

    calls: name -> (fn, args) or (already compiled fn, args, compile_info). Returns name -> the
    dict `time_call` returns."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    compiled = {}
    for name, spec in calls.items():
        if len(spec) > 2:
            compiled[name] = spec
        else:
            fn, a = spec
            call, info = compile_fn(fn, *a)
            compiled[name] = (call, a, info)
    for _ in range(warmup):
        for fn, a, _info in compiled.values():
            _block(fn(*a))
    times = {n: [] for n in compiled}
    cpu = {n: [] for n in compiled}
    loads = {}
    for _ in range(repeats):
        for n, (fn, a, _info) in compiled.items():
            t, c = time.perf_counter(), time.process_time()
            _block(fn(*a))
            times[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
            loads[n] = load_average()
    return {n: {"compile_s": info.get("compile_s"), "compile_cpu_s": info.get("compile_cpu_s"),
                "median_s": statistics.median(times[n]), "min_s": min(times[n]), "all_s": times[n],
                "median_cpu_s": statistics.median(cpu[n]), "repeats": repeats, "warmup": warmup,
                "loadavg": loads[n], "round_robin": list(compiled)}
            for n, (_fn, _a, info) in compiled.items()}


def int_list(text: str) -> list[int]:
    """argparse type: "1,64,1024" -> [1, 64, 1024] (positive integers)."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: need one or more integers >= 1")
    return vals








def fmt_rate(x: float | None) -> str:
    """12345678 -> '12.35M'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.1f}"


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def is_num(s):  # "12.3", "-0.5", ".5", "1.04x", "1,186x"; not "-", "--flag" or "(none)"
        return re.match(r"[-+]?(\d|\.\d)", s) is not None

    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(s.rjust(w) if (k and is_num(s)) else s.ljust(w) for s, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(format_table(headers, rows), flush=True)


def _jsonable(x):
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic, jax.Array, np.ndarray)):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str, obj: dict) -> None:
    """Write obj (numpy/JAX values converted, NaN -> null) as indented JSON; creates parent dirs."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)
        f.write("\n")


def pass_miss(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


# ---- the subcommand registry --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(name: str, help: str, add_arguments: Callable, run: Callable) -> Subcommand:
    if name in SUBCOMMANDS:
        raise ValueError(f"bench subcommand {name!r} is already registered")
    SUBCOMMANDS[name] = sub = Subcommand(name, help, add_arguments, run)
    return sub


def subcommand(name: str, help: str, add_arguments: Callable = lambda p: None):
    """Decorator form of `register` for a `run(args) -> dict` function."""
    def deco(run):
        register(name, help, add_arguments, run)
        return run
    return deco


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="OUT", default=None, help="also write the results as JSON to OUT")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed calls per measurement (median; default 5)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed calls after compiling (default 1)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="root of every random key (default 0)")


# `all` runs these, in this order (and `learn` too with --with-learn)
ALL_ORDER = ("env", "model", "compile", "train", "seeds")


def _sub_parser(sub: Subcommand, parser=None) -> argparse.ArgumentParser:
    sp = parser or OneLineParser(prog=f"python -m experiments.bench {sub.name}", description=sub.help)
    add_common_arguments(sp)
    sub.add_arguments(sp)
    return sp


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m experiments.bench",
        description="hrm-jax benchmarks (compile excluded, median of repeats). Several subcommands may be given "
                    "at once (`train seeds --json OUT`); every option then goes to each subcommand that has it.")
    subs = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for sub in SUBCOMMANDS.values():
        # argparse %-formats a subparser's help (not its description): "95%" would crash --help
        _sub_parser(sub, subs.add_parser(sub.name, help=sub.help.replace("%", "%%"), description=sub.help))
    pa = subs.add_parser("all", help=f"run {', '.join(ALL_ORDER)} (and learn with --with-learn); "
                                     "the other options go to each subcommand that has them")
    pa.add_argument("--with-learn", action="store_true", help="also run the (long) learn benchmark")
    return parser


def _split_names(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading subcommand names (and `all`), then the rest."""
    names = []
    i = 0
    while i < len(argv) and (argv[i] in SUBCOMMANDS or argv[i] == "all"):
        names.append(argv[i])
        i += 1
    return names, argv[i:]


def _parse_multi(parser: argparse.ArgumentParser, names: list[str], rest: list[str]) -> list[argparse.Namespace]:
    """One namespace per subcommand: each subcommand's parser reads the options it knows (with its
    own defaults); a token that none of them knows is an error (exit 2)."""
    rest = list(rest)
    with_learn = "--with-learn" in rest
    rest = [x for x in rest if x != "--with-learn"]
    order: list[str] = []
    for n in names:
        for m in (list(ALL_ORDER) + (["learn"] if with_learn else [])) if n == "all" else [n]:
            if m not in order:
                order.append(m)
    if with_learn and "all" not in names:
        parser.error("--with-learn goes with `all`")
    spaces, unknown = [], None
    for n in order:
        ns, extra = _sub_parser(SUBCOMMANDS[n]).parse_known_args(rest)
        ns.subcommand = n
        spaces.append(ns)
        unknown = set(extra) if unknown is None else unknown & set(extra)
    if unknown:
        bad = [x for x in rest if x in unknown]
        parser.error(f"unrecognized arguments for {' '.join(order)}: {' '.join(bad)}")
    return spaces


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    names, rest = _split_names(argv)
    if len(names) == 1 and names[0] != "all" or not names:
        spaces = [parser.parse_args(argv)]  # the single-subcommand form (and its errors / --help)
    else:
        if "-h" in rest or "--help" in rest:
            parser.parse_args([names[0] if names[0] != "all" else "all", "--help"])
        spaces = _parse_multi(parser, names, rest)
    if spaces[0].repeats < 5:
        print(f"note: --repeats {spaces[0].repeats} < 5: a quick run, not a measurement", flush=True)
    info = machine_info()
    print(machine_text(info), flush=True)
    all_results, configs = {}, {}
    for args in spaces:
        sub = SUBCOMMANDS[args.subcommand]
        args.parser = parser
        if len(spaces) > 1:
            print(f"\n===== {sub.name} =====", flush=True)
        start_load, t0, c0 = load_average(), time.perf_counter(), time.process_time()
        results = sub.run(args)
        results["loadavg_start"], results["loadavg_end"] = start_load, load_average()
        results["bench_wall_s"], results["bench_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        if len(spaces) > 1:
            print(f"({sub.name}: {results['bench_wall_s']:.0f} s wall, {results['bench_cpu_s']:.0f} s CPU)", flush=True)
        all_results[sub.name] = results
        configs[sub.name] = {k: v for k, v in vars(args).items() if k not in ("parser",)}
    end_load = load_average()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in end_load) if end_load else 'n/a'}", flush=True)
    out = spaces[0].json
    if out:
        if len(spaces) == 1:
            name = spaces[0].subcommand
            doc = {"subcommand": name, "argv": argv, "config": configs[name], "machine": info,
                   "loadavg_end": end_load, "results": all_results[name]}
        else:
            doc = {"subcommand": "+".join(all_results), "subcommands": list(all_results), "argv": argv,
                   "config": configs, "machine": info, "loadavg_end": end_load, "results": all_results}
        write_json(out, doc)
        print(f"wrote {out}", flush=True)
    return 0


# ---- env: steps/s of the JAX mazes vs raw MiniHack ----------------------------------------------

TARGET_STEPS_PER_S = 2_000_000
TARGET_RATIO = 1000
TARGET_ENVS = 8192


def env_rollout_fn(env, params, n_envs: int, n_steps: int):
    """jit((obs, state, key) -> (obs, state, reward_sum, episodes)): `n_steps` vmapped gymnax
    steps (auto-reset included) of `n_envs` envs with uniformly random actions, all in one
    `lax.scan`. Keys: one key per step, split into the action key and `n_envs` step keys. The
    observation is carried through the scan so it is computed every step."""
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(obs, state, key):
        def body(carry, k):
            obs, state, ret, episodes = carry
            k_act, k_step = jax.random.split(k)
            actions = jax.random.randint(k_act, (n_envs,), 0, 4, dtype=jnp.int32)
            obs, state, reward, terminated, truncated, _ = step(jax.random.split(k_step, n_envs), state, actions,
                                                                params)
            done = terminated | truncated
            return (obs, state, ret + reward.sum(), episodes + done.sum(dtype=jnp.int32)), None

        init = (obs, state, jnp.float32(0.0), jnp.int32(0))
        (obs, state, ret, episodes), _ = jax.lax.scan(body, init, jax.random.split(key, n_steps))
        return obs, state, ret, episodes

    return jax.jit(rollout)


def env_reset_batch(env, params, n_envs: int, key):
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, n_envs), params)


def minihack_des(name: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """A MiniHack des-file of our map (every door candidate open) with a fixed start and goal in
    opposite corners: (des, start (row, col), goal (row, col))."""
    from minihack import LevelGenerator

    from envs.maps import CORRIDOR_MAZE_LAYOUT, FOUR_ROOMS_LAYOUT
    layout = {"four_rooms": FOUR_ROOMS_LAYOUT, "corridor_maze": CORRIDOR_MAZE_LAYOUT}[name]
    rows = layout.replace("d", ".").splitlines()
    start, goal = (1, 1), (len(rows) - 2, len(rows[0]) - 2)
    lg = LevelGenerator(map="\n".join(rows), lit=True, flags=("premapped",))
    lg.set_start_pos((start[1], start[0]))  # LevelGenerator takes (x=col, y=row)
    lg.add_goal_pos((goal[1], goal[0]))
    return lg.get_des(), start, goal


def minihack_rate(name: str, seed: int, seconds: float, repeats: int, max_steps: int = 80) -> dict:
    """Raw MiniHack stepping on our map: random cardinal moves, reset when done (so resets are
    included, as our auto-reset is), observation_keys ("chars", "blstats"). The run is cut into
    `repeats` windows of seconds/repeats each; the rate is the median window. Actions and NetHack
    seeds come from jax.random keys derived from `seed`. Raises ImportError without minihack."""
    import gymnasium as gym
    import minihack  # noqa: F401  (registers the MiniHack envs)
    from nle import nethack

    des, start, goal = minihack_des(name)
    t0 = time.perf_counter()
    env = gym.make("MiniHack-Navigation-Custom-v0", des_file=des, observation_keys=("chars", "blstats"),
                   actions=tuple(nethack.CompassCardinalDirection), max_episode_steps=max_steps)
    make_s = time.perf_counter() - t0
    k_act, k_seed = jax.random.split(jax.random.key(seed))
    n_act = 1 << 16
    actions = np.asarray(jax.random.randint(k_act, (n_act,), 0, 4)).tolist()
    seeds = np.asarray(jax.random.bits(k_seed, (4096, 2), jnp.uint32)).astype(np.int64).tolist()
    n_resets = 0

    def reset():
        nonlocal n_resets
        core, disp = seeds[n_resets % len(seeds)]
        env.unwrapped.seed(core, disp, reseed=False)
        n_resets += 1
        return env.reset()

    try:
        t = time.perf_counter()
        reset()
        first_reset_s = time.perf_counter() - t
        for i in range(20):  # warm-up
            _, _, term, trunc, _ = env.step(actions[i])
            if term or trunc:
                reset()
        window = seconds / repeats
        rates, total_steps, total_resets, reset_time = [], 0, 0, 0.0
        i = 0
        for _ in range(repeats):
            steps = resets = 0
            t_start = time.perf_counter()
            end = t_start + window
            while True:
                _, _, term, trunc, _ = env.step(actions[i % n_act])
                i += 1
                steps += 1
                if term or trunc:
                    tr = time.perf_counter()
                    reset()
                    reset_time += time.perf_counter() - tr
                    resets += 1
                if (steps & 15) == 0 and time.perf_counter() >= end:
                    break
            rates.append(steps / (time.perf_counter() - t_start))
            total_steps += steps
            total_resets += resets
    finally:
        env.close()
    return {"env_id": "MiniHack-Navigation-Custom-v0", "map": name, "start": start, "goal": goal,
            "max_episode_steps": max_steps, "observation_keys": ["chars", "blstats"],
            "steps_per_s": statistics.median(rates), "all_steps_per_s": rates, "steps": total_steps,
            "episodes": total_resets, "mean_reset_ms": 1e3 * reset_time / max(total_resets, 1),
            "make_s": make_s, "first_reset_s": first_reset_s}


def add_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int_list, default=[1, 64, 1024, 8192],
                   help="numbers of vmapped envs (default 1,64,1024,8192)")
    p.add_argument("--steps", type=positive_int, default=100, help="steps per rollout (one lax.scan; default 100)")
    p.add_argument("--envs", default="four_rooms,corridor_maze", help="which mazes (comma-separated)")
    p.add_argument("--minihack-seconds", type=positive_float, default=2.5,
                   help="seconds of raw MiniHack stepping per maze (default 2.5)")
    p.add_argument("--no-minihack", action="store_true", help="skip the MiniHack measurement")


@subcommand("env", "steps/s of the JAX mazes (vmapped, auto-reset, one lax.scan) vs raw MiniHack", add_env_args)
def run_env(args) -> dict:
    import envs

    names = [n.strip() for n in args.envs.split(",") if n.strip()]
    for n in names:
        if n not in envs.ENV_NAMES:
            args.parser.error(f"--envs: unknown env {n!r}; choose from {', '.join(envs.ENV_NAMES)}")
    key = jax.random.key(args.seed)
    rows = []
    print(f"\nJAX mazes: random actions, gymnax step with auto-reset, {args.steps} steps per rollout in one "
          f"jitted lax.scan; median of {args.repeats} (compile excluded)", flush=True)
    for name in names:
        env, params = envs.make(name)
        for n in args.sizes:
            k_case = jax.random.fold_in(jax.random.fold_in(key, envs.ENV_NAMES.index(name)), n)
            k_reset, k_run = jax.random.split(k_case)
            obs, state = env_reset_batch(env, params, n, k_reset)
            fn = env_rollout_fn(env, params, n, args.steps)
            t = time_fn(fn, obs, state, k_run, repeats=args.repeats, warmup=args.warmup)
            _, _, ret, episodes = fn(obs, state, k_run)
            steps = n * args.steps
            row = {"env": name, "n_envs": n, "steps": args.steps, "compile_s": t["compile_s"],
                   "median_s": t["median_s"], "min_s": t["min_s"], "all_s": t["all_s"],
                   "median_cpu_s": t["median_cpu_s"],
                   "steps_per_s": steps / t["median_s"], "best_steps_per_s": steps / t["min_s"],
                   "ns_per_env_step": 1e9 * t["median_s"] / steps,
                   "episodes_per_rollout": int(episodes), "mean_reward": float(ret) / steps}
            rows.append(row)
            print(f"  {name:14s} {n:6d} envs: {fmt_rate(row['steps_per_s'])} steps/s "
                  f"(compile {t['compile_s']:.1f} s)", flush=True)

    minihack: dict[str, Any] = {}
    if args.no_minihack:
        minihack = {"available": False, "error": "skipped (--no-minihack)"}
    else:
        try:
            import minihack as _mh  # noqa: F401
            for name in names:
                minihack[name] = minihack_rate(name, args.seed, args.minihack_seconds, args.repeats)
            minihack["available"] = True
        except Exception as e:  # minihack missing or broken: say so, don't crash
            minihack = {"available": False, "error": f"{type(e).__name__}: {e}"}

    target_n = TARGET_ENVS if TARGET_ENVS in args.sizes else max(args.sizes)
    table, targets = [], []
    for r in rows:
        mh = minihack.get(r["env"]) if minihack.get("available") else None
        ratio = r["steps_per_s"] / mh["steps_per_s"] if mh else None
        r["ratio_vs_minihack"] = ratio
        table.append([r["env"], r["n_envs"], r["steps"], f"{r['compile_s']:.2f}", f"{r['median_s'] * 1e3:.2f}",
                      f"{r['median_cpu_s'] * 1e3:.2f}",
                      fmt_rate(r["steps_per_s"]), f"{r['ns_per_env_step']:.0f}",
                      f"{ratio:,.0f}x" if ratio is not None else "-"])
    for name in names:
        mh = minihack.get(name) if minihack.get("available") else None
        if mh:
            table.append([f"MiniHack ({name} map)", 1, mh["steps"], "-", "-", "-", fmt_rate(mh["steps_per_s"]),
                          f"{1e9 / mh['steps_per_s']:.0f}", "1x"])
        else:
            table.append([f"MiniHack ({name} map)", 1, "-", "-", "-", "-", "unavailable", "-", "-"])
    print_table(["env", "envs", "steps", "compile s", "median ms", "cpu ms", "steps/s", "ns/step", "vs MiniHack"],
                table,
                title="Environment throughput (steps/s = envs x steps / median time; MiniHack: one env, "
                      "resets included)")
    if not minihack.get("available"):
        print(f"MiniHack unavailable: {minihack.get('error', '?')}", flush=True)

    note = "" if target_n == TARGET_ENVS else f" (target defined at {TARGET_ENVS}; measured at {target_n})"
    for name in names:
        r = next((x for x in rows if x["env"] == name and x["n_envs"] == target_n), None)
        if r is None:
            continue
        rate_ok = r["steps_per_s"] >= TARGET_STEPS_PER_S
        ratio = r["ratio_vs_minihack"]
        targets.append({"env": name, "n_envs": target_n, "target": f">= {TARGET_STEPS_PER_S:,} steps/s",
                        "value": r["steps_per_s"], "pass": rate_ok})
        targets.append({"env": name, "n_envs": target_n, "target": f">= {TARGET_RATIO}x MiniHack",
                        "value": ratio, "pass": None if ratio is None else ratio >= TARGET_RATIO})
    print_table(["env", "envs", "target", "measured", "result"],
                [[t["env"], t["n_envs"], t["target"],
                  (fmt_rate(t["value"]) + " steps/s") if "steps/s" in t["target"]
                  else (f"{t['value']:,.0f}x" if t["value"] is not None else "MiniHack unavailable"),
                  pass_miss(t["pass"])] for t in targets],
                title=f"Targets at {target_n} envs{note}")
    return {"rows": rows, "minihack": minihack, "targets": targets, "target_n_envs": target_n,
            "env_params": {n: dataclasses.asdict(envs.make(n)[1]) for n in names}}



# ---- shared pieces of the HRM benchmarks (model, compile, train, seeds, learn) -------------------

# The authors' PyTorch code on this CPU (docs/reference.md §6), 2 threads, idle machine.
PEER = {
    "act_step_s": {"bfloat16": 15.3, "float32": 44.9},      # 256 envs, 8 segments no-grad + env step, per collection
    "act_forward_s": {"bfloat16": 15.0},                    # the model forward alone of that collection
    "update_s": {"bfloat16": 4.2, "float32": 8.8},          # one 1-step-gradient update, batch 256
    # end to end, real training loop (one collection of N envs per 8 gradient steps), bf16 (fp32)
    "train": {
        "paper": {"grad_steps_per_s": {"bfloat16": 0.107}, "transitions_per_s": {"bfloat16": 3.4},
                  "config": "paper config, 256 envs, batch 256"},
        "S1": {"grad_steps_per_s": {"bfloat16": 2.78, "float32": 1.78},
               "transitions_per_s": {"bfloat16": 22.2, "float32": 14.2}, "learning_share": 0.91,
               "config": "hidden 64, 1+1 layers, H1 L2, 2 segments, 64 envs, batch 64, 8 grad steps per collection"},
        "S2": {"grad_steps_per_s": {"bfloat16": 3.87, "float32": 2.32},
               "transitions_per_s": {"bfloat16": 30.9, "float32": 18.6}, "learning_share": 0.93,
               "config": "hidden 32, 1+1 layers, H1 L1, 1 segment, 64 envs, batch 64"},
        "S3": {"grad_steps_per_s": {"bfloat16": 0.51, "float32": 0.28},
               "transitions_per_s": {"bfloat16": 8.1, "float32": 4.5}, "learning_share": 0.86,
               "config": "hidden 64, 2+2 layers, H2 L2, 4 segments, 128 envs, batch 128"},
    },
}
TARGET_GEMM_FRACTION = 0.5     # model: acting FLOP/s >= 50% of a plain GEMM's
TARGET_SEEDS = (8, 4.0)        # seeds: 8 seeds in <= 4x one seed's wall time
TARGET_COMPILE_S = 60.0        # compile: the cpu preset's chunk


def bench_presets() -> dict:
    """The config presets plus `s1` and `s2`: the authors' small configurations S1 and S2 of
    docs/reference.md §6 (their model, and their loop shape: one collection per 8 gradient steps of
    one minibatch), for a like-for-like comparison with the authors' code."""
    from hrm_jax import config as C
    loop = dict(grad_steps_per_collect=8, supervision_segments=8, eval_every=8 * 125, buffer_capacity=65_536)
    base = C.preset("paper")
    s1 = C.override(C.override(base, "model", hidden=64, H_layers=1, L_layers=1, H_cycles=1, L_cycles=2,
                               segments_per_step=2), "train", num_envs=64, batch_size=64, **loop)
    s2 = C.override(C.override(base, "model", hidden=32, H_layers=1, L_layers=1, H_cycles=1, L_cycles=1,
                               segments_per_step=1), "train", num_envs=64, batch_size=64, **loop)
    return {**C.PRESETS, "s1": s1, "s2": s2}


def preset_list(text: str) -> list[str]:
    """argparse type: "paper,cpu" -> ["paper", "cpu"] (names checked against bench_presets())."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    known = bench_presets()
    bad = [n for n in names if n not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: choose presets from {', '.join(known)}")
    return names


def _validated(cfg):
    from hrm_jax.config import validate
    return validate(cfg)


def with_dtype(cfg, dtype: str | None):
    from hrm_jax.config import override
    return cfg if not dtype else override(cfg, "model", dtype=dtype)


def xla_flops(compiled) -> float | None:
    """XLA's HLO cost analysis of a compiled program (loop bodies are counted ONCE, whatever the
    trip count: see `model` for the loop-free programs used for the cross-check)."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 (backend without cost analysis)
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    v = (ca or {}).get("flops")
    return float(v) if v is not None else None


def _gf(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x / 1e9:.{nd}f}"


def _load1(t: dict) -> str:
    la = t.get("loadavg")
    return f"{la[0]:.1f}" if la else "-"


def _repeats_for(name: str, args) -> tuple[int, int]:
    """(repeats, warmup) for a preset: the paper preset may use fewer repeats (one call takes many seconds)."""
    if name == "paper":
        return getattr(args, "paper_repeats", args.repeats), getattr(args, "paper_warmup", args.warmup)
    return args.repeats, args.warmup


def _reset_obs(env, env_params, n: int, key) -> jax.Array:
    obs, _ = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(key, n), env_params)
    return obs


# ---- model: one acting step and one 1-step-gradient update vs a plain GEMM -----------------------

def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["paper", "cpu", "tiny"],
                   help="config presets to measure (default paper,cpu,tiny)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="compute dtype (default: the preset's)")
    p.add_argument("--paper-repeats", type=positive_int, default=3,
                   help="timed calls at the paper preset (one acting step takes tens of seconds on a CPU; default 3)")
    p.add_argument("--paper-warmup", type=non_negative_int, default=1, help="warm-up calls at the paper preset (default 1)")
    p.add_argument("--gemm-size", type=positive_int, default=2048, help="the square GEMM's size (default 2048)")


def model_case(name: str, cfg, args, key) -> dict:
    """Acting step (acting.act: all segments, no gradient, num_envs envs) and 1-step-gradient update
    (value_and_grad of a segment's TD loss + the trainer's optax update, batch_size) of one preset."""
    import optax

    from hrm_jax import acting
    from hrm_jax.models.flops import act_flops, grad_step_flops, reads_out
    from hrm_jax.models.hrm import HRM, Carry, init_variables, make_model, readout_tokens, seed_carry, segment
    from hrm_jax.algos.dqn import make_optimizer, td_loss

    m, t = cfg.model, cfg.train
    env, env_params = acting.make_env(cfg.env)
    model = make_model(m, env.maze.obs_shape[1])
    T = env.obs_len
    N, B = t.num_envs, t.batch_size
    k_init, k_obs, k_obs_b, k_act, k_y = jax.random.split(key, 5)
    variables = init_variables(model, k_init, T)
    params, consts = variables["params"], variables["constants"]
    reps, warm = _repeats_for(name, args)

    # -- acting: all segments, no gradient, on N real observations from H_init/L_init
    obs = _reset_obs(env, env_params, N, k_obs)
    z = acting.initial_z(model, variables, N, T)
    act = jax.jit(lambda v, o, zz: acting.act(model, v, o, zz, m.segments_per_step)[:2])
    act_c, c_s = compile_fn(act, variables, obs, z)
    t_act = time_call(act_c, variables, obs, z, repeats=reps, warmup=warm, compile_info=c_s)
    act_analytic = act_flops(m, T, N)
    xla_act_as_compiled = xla_flops(act_c)

    # loop-free cross-check: one segment (no batch chunking) x segments_per_step + embedding + Q head
    dt = jnp.bfloat16 if m.dtype == "bfloat16" else jnp.float32
    x_s = jax.ShapeDtypeStruct((N, T + 1, m.hidden), dt)
    z_s = jax.ShapeDtypeStruct((N, T + 1, m.hidden), jnp.float32)
    # (acting.act computes the last segment's final H update at the read-out tokens only, hrm_jax.models.hrm)
    f_reason = jax.jit(lambda v, x, zh, zl: model.apply(v, x, Carry(zh, zl), method=HRM.reason))
    f_embed = jax.jit(lambda v, o: model.apply(v, o, method=HRM.embed))
    if reads_out(m, "stored"):
        f_last = jax.jit(lambda v, x, zh, zl, o: model.apply(v, x, Carry(zh, zl), readout_tokens(m, o), False,
                                                            method=HRM.reason)[1])
        f_q = jax.jit(lambda v, zq: model.apply(v, zq[:, 0], method=HRM.q_from_token))
        last, q_part = f_last.lower(variables, x_s, z_s, z_s, obs).compile(), f_q.lower(variables, jax.eval_shape(
            f_last, variables, x_s, z_s, z_s, obs)).compile()
    else:
        last = f_reason.lower(variables, x_s, z_s, z_s).compile()
        q_part = jax.jit(lambda v, zh, o: model.apply(v, zh, o, method=HRM.q_values)).lower(variables, z_s, obs).compile()
    parts = [xla_flops(f_reason.lower(variables, x_s, z_s, z_s).compile()), xla_flops(last),
             xla_flops(f_embed.lower(variables, obs).compile()), xla_flops(q_part)]
    xla_act = None if None in parts else (m.segments_per_step - 1) * parts[0] + sum(parts[1:])

    # -- one 1-step-gradient update: value_and_grad of the TD loss of one segment + the optimizer
    tx = make_optimizer(cfg)
    opt_state = tx.init(params)
    obs_b = _reset_obs(env, env_params, B, k_obs_b)
    carry_b = seed_carry(model, variables, acting.initial_z(model, variables, B, T), B, T)
    action = jax.random.randint(k_act, (B,), 0, m.num_actions, dtype=jnp.int32)
    y = jax.random.normal(k_y, (B,), jnp.float32)

    def update(p, o_state, carry, tokens, a, yy, chunk=None):
        def loss_fn(pp):
            new, q = segment(model, {"params": pp, "constants": consts}, tokens, carry, chunk=chunk)
            q_sa = jnp.take_along_axis(q, a[:, None], -1)[:, 0]
            return td_loss(q_sa, yy, t.loss), new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, o_state = tx.update(grads, o_state, p)
        return optax.apply_updates(p, updates), o_state, loss, new

    upd = jax.jit(update)
    u_args = (params, opt_state, carry_b, obs_b, action, y)
    upd_c, c_s = compile_fn(upd, *u_args)
    t_upd = time_call(upd_c, *u_args, repeats=reps, warmup=warm, compile_info=c_s)
    upd_analytic = grad_step_flops(m, T, B)
    xla_upd_as_compiled = xla_flops(upd_c)
    xla_upd = xla_flops(jax.jit(lambda *a: update(*a, chunk=0)).lower(*u_args).compile())

    # -- a plain GEMM of the model's shape: [N*(T+1), D] x [D, 4D], same dtype
    M_, K_, N_ = N * (T + 1), m.hidden, 4 * m.hidden
    ka, kb = jax.random.split(jax.random.fold_in(key, 7))
    a_ = jax.random.normal(ka, (M_, K_), jnp.float32).astype(dt)
    b_ = jax.random.normal(kb, (K_, N_), jnp.float32).astype(dt)
    t_gemm = time_fn(jax.jit(jnp.dot), a_, b_, repeats=args.repeats, warmup=args.warmup)
    gemm_flops = 2 * M_ * K_ * N_

    def rate(fl, tt):
        return fl / tt["median_s"]

    return {
        "preset": name, "dtype": m.dtype, "num_envs": N, "batch_size": B, "obs_len": T,
        "segments_per_step": m.segments_per_step,
        "act": {**t_act, "flops_analytic": act_analytic, "flops_xla_loop_free": xla_act,
                "flops_xla_as_compiled": xla_act_as_compiled, "flops_per_s": rate(act_analytic, t_act)},
        "update": {**t_upd, "flops_analytic": upd_analytic, "flops_xla_loop_free": xla_upd,
                   "flops_xla_as_compiled": xla_upd_as_compiled, "flops_per_s": rate(upd_analytic, t_upd)},
        "gemm": {**t_gemm, "shape": [M_, K_, N_], "label": f"(B*S) x D x 4D = {M_} x {K_} x {N_}",
                 "flops": gemm_flops, "flops_per_s": rate(gemm_flops, t_gemm)},
        "act_vs_gemm": rate(act_analytic, t_act) / rate(gemm_flops, t_gemm),
    }


@subcommand("model", "one acting step and one 1-step-gradient update per preset: time, FLOP/s vs a plain GEMM, "
                     "vs the authors' code", add_model_args)
def run_model(args) -> dict:
    key = jax.random.key(args.seed)
    presets = bench_presets()
    cases = []
    for i, name in enumerate(args.presets):
        cfg = _validated(with_dtype(presets[name], args.dtype))
        reps, warm = _repeats_for(name, args)
        note = f" ({reps} timed calls, {warm} warm-up: one call takes many seconds)" if name == "paper" else ""
        print(f"\n{name}: measuring{note} ...", flush=True)
        cases.append(model_case(name, cfg, args, jax.random.fold_in(key, i)))
        c = cases[-1]
        print(f"  act {c['act']['median_s']:.4f} s, update {c['update']['median_s']:.4f} s "
              f"(load {_load1(c['update'])})", flush=True)

    # the square GEMM, once
    G = args.gemm_size
    ka, kb = jax.random.split(jax.random.fold_in(key, 1000))
    sq = {}
    for dt_name in sorted({c["dtype"] for c in cases}):
        dt = jnp.bfloat16 if dt_name == "bfloat16" else jnp.float32
        a_, b_ = (jax.random.normal(k, (G, G), jnp.float32).astype(dt) for k in (ka, kb))
        tg = time_fn(jax.jit(jnp.dot), a_, b_, repeats=args.repeats, warmup=args.warmup)
        sq[dt_name] = {**tg, "shape": [G, G, G], "flops": 2 * G ** 3, "flops_per_s": 2 * G ** 3 / tg["median_s"]}
    for c in cases:
        c["act_vs_square_gemm"] = c["act"]["flops_per_s"] / sq[c["dtype"]]["flops_per_s"]

    rows = []
    for c in cases:
        for what, label, n in (("act", "acting step (all segments, no grad)", c["num_envs"]),
                               ("update", "update: 1-step grad + optimizer", c["batch_size"])):
            r = c[what]
            ratio = (r["flops_xla_loop_free"] / r["flops_analytic"]) if r["flops_xla_loop_free"] else None
            rows.append([c["preset"], label, n, f"{r['compile_s']:.2f}", f"{r['median_s']:.4f}",
                         f"{r['median_cpu_s']:.3f}", _gf(r["flops_analytic"], 3), _gf(r["flops_xla_loop_free"], 3),
                         f"{ratio:.3f}" if ratio else "-", _gf(r["flops_per_s"]), r["repeats"], _load1(r)])
    print_table(["preset", "what", "batch", "compile s", "median s", "cpu s", "GFLOP analytic", "GFLOP XLA",
                 "XLA/analytic", "GFLOP/s", "repeats", "load"], rows,
                title="Model (dtype per preset; GFLOP/s = analytic FLOPs / median; XLA = compiled.cost_analysis() of "
                      "the same computation without loops (one segment x segments + embed + Q head; the update "
                      "without batch chunking), since XLA counts a loop body once; XLA also counts elementwise ops)")
    print("XLA cost analysis of the programs as timed (loop bodies counted once): " + ", ".join(
        f"{c['preset']} act {_gf(c['act']['flops_xla_as_compiled'], 3)} / update "
        f"{_gf(c['update']['flops_xla_as_compiled'], 3)} GFLOP" for c in cases), flush=True)

    gemm_rows = [[c["preset"], c["gemm"]["label"], c["dtype"], f"{c['gemm']['median_s'] * 1e3:.3f}",
                  _gf(c["gemm"]["flops_per_s"]), _load1(c["gemm"])] for c in cases]
    gemm_rows += [["-", f"square {G} x {G} x {G}", d, f"{v['median_s'] * 1e3:.3f}", _gf(v["flops_per_s"]),
                   _load1(v)] for d, v in sq.items()]
    print_table(["preset", "GEMM (jnp.dot, M x K x N)", "dtype", "median ms", "GFLOP/s", "load"], gemm_rows,
                title="Plain GEMMs in the same run")

    targets = []
    for c in cases:
        ok = c["act_vs_gemm"] >= TARGET_GEMM_FRACTION
        targets.append({"preset": c["preset"], "target": f"acting FLOP/s >= {TARGET_GEMM_FRACTION:.0%} of the "
                        f"model-shaped GEMM's", "value": c["act_vs_gemm"], "pass": ok,
                        "vs_square_gemm": c["act_vs_square_gemm"]})
    print_table(["preset", "acting GFLOP/s", "GEMM (B*S)xDx4D GFLOP/s", "ratio", "result",
                 f"ratio vs {G}^3 GEMM"],
                [[c["preset"], _gf(c["act"]["flops_per_s"]), _gf(c["gemm"]["flops_per_s"]), f"{c['act_vs_gemm']:.0%}",
                  pass_miss(c["act_vs_gemm"] >= TARGET_GEMM_FRACTION), f"{c['act_vs_square_gemm']:.0%}"]
                 for c in cases],
                title=f"Target: acting FLOP/s / GEMM FLOP/s >= {TARGET_GEMM_FRACTION:.0%} (GEMM of the model's "
                      f"shape, (B*S) x D x 4D; the {G}^3 ratio for reference)")

    peer = None
    paper = next((c for c in cases if c["preset"] == "paper"), None)
    if paper is None:
        print("\nPeer (authors' code) figures are at the paper preset, which was not measured (--presets).")
    else:
        ours_a, ours_u = paper["act"]["median_s"], paper["update"]["median_s"]
        peer = {"dtype_ours": paper["dtype"], "act_s": ours_a, "update_s": ours_u,
                "act_speedup": {d: v / ours_a for d, v in PEER["act_step_s"].items()},
                "update_speedup": {d: v / ours_u for d, v in PEER["update_s"].items()}}
        print_table(["what (paper config)", "authors' bf16 s", "authors' fp32 s", f"ours ({paper['dtype']}) s",
                     "speed-up vs bf16", "vs fp32"],
                    [["acting step, 256 envs, 8 segments", "15.3 (forward 15.0 + env 0.41)", "44.9",
                      f"{ours_a:.2f} (model only; {paper['act']['median_cpu_s']:.2f} CPU s)", f"{15.3 / ours_a:.1f}x",
                      f"{44.9 / ours_a:.1f}x"],
                     ["1-step-gradient update, batch 256", "4.2", "8.8",
                      f"{ours_u:.2f} ({paper['update']['median_cpu_s']:.2f} CPU s)", f"{4.2 / ours_u:.1f}x",
                      f"{8.8 / ours_u:.1f}x"]],
                    title="vs the authors' PyTorch code on this CPU (their figures: idle machine, "
                          "docs/reference.md §6; ours: this run)")
    return {"cases": cases, "square_gemm": sq, "targets": targets, "peer": peer,
            "note": "flops_xla_as_compiled counts loop bodies (lax.map batch chunks, lax.scan over segments) once"}


# ---- compile: the training chunk's compile time, and that it does not depend on the run length ---

def add_compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu"], help="presets (default cpu)")
    p.add_argument("--total-grad-steps", type=int_list, default=None,
                   help="run lengths to compile the chunk for (default: the preset's and 10x it)")


def lower_chunk(cfg, key, vmapped: bool = False):
    """(trainer, lowered jit(chunk), lower seconds) from the abstract state (nothing is run)."""
    from hrm_jax.algos import make_train
    tr = make_train(cfg)
    init, chunk = (jax.vmap(tr.init), jax.vmap(tr.chunk)) if vmapped else (tr.init, tr.chunk)
    abstract = jax.eval_shape(init, key)
    t0 = time.perf_counter()
    lowered = jax.jit(chunk).lower(abstract)
    return tr, lowered, time.perf_counter() - t0


@subcommand("compile", "compile time of the training chunk (jit(tr.chunk)) for two run lengths", add_compile_args)
def run_compile(args) -> dict:
    import hashlib

    from hrm_jax.config import override
    presets = bench_presets()
    rows, targets = [], []
    for name in args.presets:
        base = presets[name]
        totals = args.total_grad_steps or [base.train.total_grad_steps, 10 * base.train.total_grad_steps]
        per = []
        for total in totals:
            cfg = _validated(override(base, "train", total_grad_steps=total))
            tr, lowered, lower_s = lower_chunk(cfg, jax.random.key(args.seed))
            t0, c0 = time.perf_counter(), time.process_time()
            lowered.compile()
            compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
            per.append({"preset": name, "total_grad_steps": total, "eval_every": cfg.train.eval_every,
                        "iters_per_chunk": tr.iters_per_chunk, "num_chunks": tr.num_chunks, "lower_s": lower_s,
                        "compile_s": compile_s, "compile_cpu_s": compile_cpu_s, "hlo_sha256": hashlib.sha256(lowered.as_text().encode()).hexdigest(),
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
                  _load1(r)] for r in rows],
                title="Compile time of jit(tr.chunk) (one chunk = eval_every gradient steps + an evaluation; the "
                      "host loop calls it num_chunks times)")
    print_table(["preset", "target", "worst s", "result", "worst compile CPU s", "identical program for all run lengths",
                 "max/min compile"],
                [[x["preset"], x["target"], f"{x['value']:.1f}", pass_miss(x["pass"]), f"{x['worst_compile_cpu_s']:.1f}",
                  "yes" if x["same_program"] else "NO", f"{x['compile_ratio']:.2f}"] for x in targets],
                title="Targets")
    return {"rows": rows, "targets": targets}


# ---- train: transitions/s and gradient steps/s of the real jitted loop, and where the time goes ---

def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu", "s1", "paper"],
                   help="presets (default cpu,s1,paper; s1/s2 = the authors' small configs S1/S2 with their loop "
                        "shape, 8 gradient steps per collection)")
    p.add_argument("--iterations", type=positive_int, default=25,
                   help="iterations (collection + its gradient steps) per timed chunk (default 25)")
    p.add_argument("--eval-envs", type=positive_int, default=16,
                   help="greedy-evaluation envs inside the chunk (timed separately and subtracted; default 16)")
    p.add_argument("--paper-iterations", type=positive_int, default=1, help="iterations per chunk at paper (default 1)")
    p.add_argument("--paper-eval-envs", type=positive_int, default=2, help="evaluation envs at paper (default 2)")
    p.add_argument("--paper-repeats", type=positive_int, default=1,
                   help="timed calls at paper (one iteration takes minutes on a CPU; default 1)")
    p.add_argument("--paper-warmup", type=non_negative_int, default=0,
                   help="warm-up calls at paper (default 0: the chunk is compiled ahead of time)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="compute dtype (default: the preset's)")


def chunk_config(base, iterations: int, eval_envs: int):
    """The preset with a chunk (eval_every) of `iterations` iterations and `eval_envs` evaluation envs."""
    from hrm_jax.config import override
    G = base.train.grad_steps_per_collect
    return _validated(override(base, "train", eval_every=G * iterations, eval_envs=eval_envs,
                               checkpoint_every=G * iterations))


def piece_fns(tr, cfg) -> dict:
    """The three pieces of a training iteration as the trainer runs them, each repeated in a
    `lax.scan` over `keys` (one step per key), as inside the chunk: a standalone call pays per-call
    costs (fresh temporary buffers) that a loop body does not, up to ~30% of a minibatch at the cpu
    preset. Returns name -> fn, all (state, keys) -> something small:
      act              all segments on the envs' observations + epsilon-greedy (z carried along)
      env_step         the vmapped gymnax step (auto-reset) with uniformly random actions
      learn_minibatch  one replay minibatch: sample; target net over all segments; supervision_segments
                       1-step-gradient updates, each with the optimizer and the Polyak target update
                       (mirrors hrm_jax.algos.dqn's learn_minibatch, without its NaN bookkeeping)."""
    import optax

    from hrm_jax import acting
    from hrm_jax.models.hrm import seed_carry, segment
    from hrm_jax.algos.dqn import dqn_targets, make_optimizer, td_loss

    m, t = cfg.model, cfg.train
    model, env, env_params = tr.model, tr.env, tr.env_params
    N, B = t.num_envs, t.batch_size
    tx = make_optimizer(cfg)

    def act(state, keys):
        v = {"params": state.params, "constants": state.constants}

        def body(z, k):
            q, z2, _ = acting.act(model, v, state.obs, z, m.segments_per_step)
            return z2, acting.epsilon_greedy(k, q, jnp.float32(0.1))

        return jax.lax.scan(body, state.z, keys)[1]

    def env_step(state, keys):
        def body(es, k):
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (N,), 0, m.num_actions, dtype=jnp.int32)
            _, es2, reward, _, _, _ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k_s, N), es, a, env_params)
            return es2, jnp.sum(reward)

        return jax.lax.scan(body, state.env_state, keys)[1]

    def learn_one(state, key):
        batch, discount = tr.replay.sample(state.buffer, key)
        consts = state.constants
        y = dqn_targets(model, {"params": state.target_params, "constants": consts}, batch, discount,
                        m.segments_per_step)
        carry0 = seed_carry(model, {"params": state.params, "constants": consts}, batch.prev_z, B, tr.obs_len)

        def step(c, _):
            params, target, opt_state, carry = c

            def loss_fn(p):
                new, q = segment(model, {"params": p, "constants": consts}, batch.obs, carry)
                q_sa = jnp.take_along_axis(q, batch.action[:, None], -1)[:, 0]
                return td_loss(q_sa, y, t.loss), new

            (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            target = optax.incremental_update(params, target, 1.0 - t.polyak)
            return (params, target, opt_state, new), loss

        (params, target, opt_state, _), loss = jax.lax.scan(
            step, (state.params, state.target_params, state.opt_state, carry0), None, length=t.supervision_segments)
        return state.replace(params=params, target_params=target, opt_state=opt_state), jnp.mean(loss)

    def learn(state, keys):
        return jax.lax.scan(learn_one, state, keys)[1]

    return {"act": act, "env_step": env_step, "learn_minibatch": learn}


def train_case(name: str, cfg, args, key) -> dict:
    from hrm_jax.algos import make_train

    m, t = cfg.model, cfg.train
    reps, warm = _repeats_for(name, args)
    tr = make_train(cfg)
    N, G, S = t.num_envs, t.grad_steps_per_collect, t.supervision_segments
    iters = tr.iters_per_chunk
    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(tr.init)(key))
    init_s = time.perf_counter() - t0
    # the real chunk (`iters` iterations in one lax.scan + the greedy evaluation), and its pieces alone
    k_a, k_e, k_l = jax.random.split(jax.random.fold_in(key, 1), 3)
    chunk_c, chunk_info = compile_fn(jax.jit(tr.chunk), state)
    state1, metrics = chunk_c(state)
    # the evaluation inside the chunk (same state, same key: the same episodes)
    ev_key = jax.random.fold_in(state1.eval_key, state1.grad_step)

    # each piece `iters` times in a lax.scan, as in the chunk (see piece_fns); per-step times = / iters
    pieces = piece_fns(tr, cfg)
    keys = {n: jax.random.split(k, iters) for n, k in zip(pieces, (k_a, k_e, k_l))}
    calls = {"chunk": (chunk_c, (state,), chunk_info),
             "evaluate": (jax.jit(tr.evaluate), (state1, ev_key)),
             **{n: (jax.jit(f), (state, keys[n])) for n, f in pieces.items()}}
    tt = time_round_robin(calls, repeats=reps, warmup=warm)
    t_chunk, t_eval = tt["chunk"], tt["evaluate"]
    train_s = t_chunk["median_s"] - t_eval["median_s"]
    if train_s <= 0:
        print(f"  warning: {name}: the evaluation ({t_eval['median_s']:.3f} s) took longer than the whole chunk "
              f"({t_chunk['median_s']:.3f} s): noise; rates use the chunk time", flush=True)
        train_s = t_chunk["median_s"]
    iter_s = train_s / iters
    for n in pieces:  # per step
        tt[n] = {**tt[n], "loop_steps": iters, "loop_median_s": tt[n]["median_s"], "median_s": tt[n]["median_s"] / iters,
                 "min_s": tt[n]["min_s"] / iters, "median_cpu_s": tt[n]["median_cpu_s"] / iters,
                 "all_s": [x / iters for x in tt[n]["all_s"]]}
    mb = G // S
    act_s, env_s, learn_s = tt["act"]["median_s"], tt["env_step"]["median_s"], mb * tt["learn_minibatch"]["median_s"]
    pieces_s = act_s + env_s + learn_s
    out = {
        "preset": name, "dtype": m.dtype, "num_envs": N, "batch_size": t.batch_size, "grad_steps_per_collect": G,
        "supervision_segments": S, "iterations": iters, "eval_envs": t.eval_envs, "init_s": init_s,
        "chunk": t_chunk, "evaluate": t_eval, "train_s": train_s, "iteration_s": iter_s,
        "transitions_per_s": N * iters / train_s, "grad_steps_per_s": G * iters / train_s,
        "transitions_per_s_incl_eval": N * iters / t_chunk["median_s"],
        "grad_steps_per_s_incl_eval": G * iters / t_chunk["median_s"],
        "pieces": {"act": tt["act"], "env_step": tt["env_step"], "learn_minibatch": tt["learn_minibatch"],
                   "minibatches_per_iteration": mb, "sum_s": pieces_s, "sum_vs_iteration": pieces_s / iter_s},
        # shares of the pieces' sum (robust to load changes); sum_vs_iteration says how well the pieces add
        # up to the measured iteration (the rest: replay add, epsilon, bookkeeping, noise)
        "shares": {"acting": act_s / pieces_s, "learning": learn_s / pieces_s, "env_step": env_s / pieces_s},
        "final_metrics": {k: float(v) for k, v in metrics.items()},
    }
    return out


def _peer_train_key(name: str) -> str | None:
    return {"paper": "paper", "s1": "S1", "s2": "S2"}.get(name)


@subcommand("train", "env transitions/s and gradient steps/s of the jitted training chunk, and the share of "
                     "acting / learning / env stepping, vs the authors' code", add_train_args)
def run_train(args) -> dict:
    presets = bench_presets()
    key = jax.random.key(args.seed)
    cases = []
    for i, name in enumerate(args.presets):
        paper = name == "paper"
        cfg = chunk_config(with_dtype(presets[name], args.dtype),
                           args.paper_iterations if paper else args.iterations,
                           args.paper_eval_envs if paper else args.eval_envs)
        reps, warm = _repeats_for(name, args)
        note = f" ({reps} timed call(s), {warm} warm-up: one iteration takes minutes on a CPU)" if paper else ""
        print(f"\n{name}: chunk of {cfg.train.eval_every // cfg.train.grad_steps_per_collect} iterations{note} ...",
              flush=True)
        c = train_case(name, cfg, args, jax.random.fold_in(key, i))
        cases.append(c)
        print(f"  {fmt_rate(c['transitions_per_s'])} transitions/s, {c['grad_steps_per_s']:.2f} grad steps/s "
              f"(load {_load1(c['chunk'])})", flush=True)

    print_table(["preset", "envs", "batch", "G", "iters", "compile s", "chunk s", "chunk CPU s", "eval s", "train s/iter",
                 "transitions/s", "grad steps/s", "incl. eval", "repeats", "load"],
                [[c["preset"], c["num_envs"], c["batch_size"], c["grad_steps_per_collect"], c["iterations"],
                  f"{c['chunk']['compile_s']:.1f}", f"{c['chunk']['median_s']:.3f}", f"{c['chunk']['median_cpu_s']:.3f}",
                  f"{c['evaluate']['median_s']:.3f}",
                  f"{c['iteration_s']:.4f}", f"{c['transitions_per_s']:.1f}", f"{c['grad_steps_per_s']:.2f}",
                  f"{c['transitions_per_s_incl_eval']:.1f} / {c['grad_steps_per_s_incl_eval']:.2f}",
                  c["chunk"]["repeats"], _load1(c["chunk"])] for c in cases],
                title="Training loop: jit(tr.chunk) (iters x [act all segments -> env step -> replay add -> G grad "
                      "steps] + greedy eval); rates exclude the eval (timed alone with tr.evaluate and subtracted); "
                      "'incl. eval' = transitions/s / grad steps/s with it")
    print_table(["preset", "act s", "env step s", "learn s (x minibatches)", "sum s", "iteration s", "sum/iteration",
                 "acting", "learning", "env"],
                [[c["preset"], f"{c['pieces']['act']['median_s']:.4f}", f"{c['pieces']['env_step']['median_s']:.5f}",
                  f"{c['pieces']['learn_minibatch']['median_s']:.4f} x {c['pieces']['minibatches_per_iteration']}",
                  f"{c['pieces']['sum_s']:.4f}", f"{c['iteration_s']:.4f}", f"{c['pieces']['sum_vs_iteration']:.2f}",
                  f"{c['shares']['acting']:.1%}", f"{c['shares']['learning']:.1%}", f"{c['shares']['env_step']:.2%}"]
                 for c in cases],
                title="Where an iteration's time goes: each piece jitted alone (iters steps in a lax.scan, as in the "
                      "chunk; per step), timed in turn with the chunk (round-robin); shares of the pieces' sum; sum/iteration compares that sum with the chunk's "
                      "iteration (the rest is replay add, epsilon, bookkeeping, and noise)")
    peer_rows, peer = [], []
    for c in cases:
        pk = _peer_train_key(c["preset"])
        if pk is None:
            continue
        pf = PEER["train"][pk]
        g16, g32 = pf["grad_steps_per_s"].get("bfloat16"), pf["grad_steps_per_s"].get("float32")
        t16, t32 = pf["transitions_per_s"].get("bfloat16"), pf["transitions_per_s"].get("float32")
        entry = {"preset": c["preset"], "peer": pk, "peer_config": pf["config"],
                 "grad_steps_speedup_vs_bf16": c["grad_steps_per_s"] / g16,
                 "grad_steps_speedup_vs_fp32": c["grad_steps_per_s"] / g32 if g32 else None,
                 "transitions_speedup_vs_bf16": c["transitions_per_s"] / t16,
                 "transitions_speedup_vs_fp32": c["transitions_per_s"] / t32 if t32 else None,
                 "same_loop_shape": c["grad_steps_per_collect"] == 8}  # the peer's: 8 grad steps per collection
        peer.append(entry)
        peer_rows.append([c["preset"], pk + ("" if entry["same_loop_shape"] else " (peer: 8 grad steps/collection)"),
                          f"{c['grad_steps_per_s']:.2f}", f"{g16}" + (f" ({g32})" if g32 else ""),
                          f"{entry['grad_steps_speedup_vs_bf16']:.1f}x", f"{c['transitions_per_s']:.1f}",
                          f"{t16}" + (f" ({t32})" if t32 else ""), f"{entry['transitions_speedup_vs_bf16']:.1f}x",
                          f"{c['shares']['learning']:.0%}",
                          f"{pf['learning_share']:.0%}" if "learning_share" in pf else "-"])
    if peer_rows:
        print_table(["preset", "authors' config", "grad steps/s", "authors' bf16 (fp32)", "speed-up",
                     "transitions/s", "authors' bf16 (fp32)", "speed-up", "learning share", "authors'"],
                    peer_rows, title="vs the authors' PyTorch code end to end on this CPU (their figures: idle "
                                     "machine, docs/reference.md §6; same model and loop; speed-up vs their faster bf16)")
    elif cases:
        print("\nNo peer figure for these presets (the authors' code was measured at paper, S1, S2, S3: "
              "--presets paper,s1,s2)", flush=True)
    return {"cases": cases, "peer": peer}


# ---- seeds: the cpu chunk for 1, 2, 4, 8 seeds, vmapped and looped ----------------------------

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
    from hrm_jax.sharding import over_seeds
    from hrm_jax.algos import make_train, seed_keys
    presets = bench_presets()
    rows, targets = [], []
    n_t, limit = TARGET_SEEDS
    for name in args.presets:
        cfg = chunk_config(presets[name], args.iterations, args.eval_envs)
        tr = make_train(cfg)
        init = jax.jit(jax.vmap(tr.init))
        chunks = {loop: jax.jit(over_seeds(tr.chunk, loop)) for loop in args.seed_loops}
        reps, warm = _repeats_for(name, args)
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
                      f"load {_load1(tt)})", flush=True)
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
    print_table(["preset", "loop", "seeds", "iters", "compile s", "median s", "per seed s", "vs 1 seed", "vs vmap",
                 "grad steps/s (all)", "cpu s", "load"],
                [[r["preset"], r["seed_loop"], r["seeds"], r["iterations"], f"{r['compile_s']:.1f}", f"{r['median_s']:.3f}",
                  f"{r['per_seed_s']:.3f}", f"{r['vs_one_seed']:.2f}x" if r["vs_one_seed"] else "-",
                  f"{r['vs_vmap']:.2f}x" if r["vs_vmap"] else "-",
                  f"{r['grad_steps_per_s']:.1f}", f"{r['median_cpu_s']:.2f}", _load1(r)] for r in rows],
                title="Seeds: one jit(over_seeds(tr.chunk, loop)) call (iterations + greedy eval of eval_envs per "
                      "seed); vs vmap < 1 = faster than vmapping the same seeds")
    print_table(["preset", "target", "measured", "result"],
                [[x["preset"], x["target"], f"{x['value']:.2f}x" if x["value"] is not None else f"not measured "
                  f"(needs 1 and {n_t} in --seed-counts, and --seed-loops {x['seed_loop']})", pass_miss(x["pass"])]
                 for x in targets], title="Targets")
    return {"rows": rows, "targets": targets}


# ---- xla-flags: the training chunk under several XLA_FLAGS, each in its own process -------------

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


# ---- learn: time to 95% greedy success on four-rooms -------------------------------------------

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
    from hrm_jax.config import override
    from hrm_jax.algos import make_train
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
            cfg = _validated(override(cfg, "train", **kw))
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


if __name__ == "__main__":
    sys.exit(main())
