"""Benchmarks: `python -m experiments.bench <subcommand> [--json OUT] [--repeats N] ...`

Every timing excludes compilation (reported separately), runs a warm-up call, then reports the
median of `--repeats` calls, each ended by `block_until_ready`. The machine (CPU model, cores,
load average at start and end), the JAX version and the backend are printed and written to JSON.

Subcommands live in the `SUBCOMMANDS` registry. To add one:

    def add_model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--batch", type=int_list, default=[64])

    @subcommand("model", "forward/backward time of the Q-network", add_model_args)
    def run_model(args) -> dict:
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
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

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


def time_fn(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """Time `fn(*args)`: compile (excluded, reported as compile_s), `warmup` untimed calls, then
    `repeats` timed calls, each ended by `block_until_ready`.

    A jitted function is compiled ahead of time (`fn.lower(*args).compile()`), so compile_s is
    the compilation alone; for any other callable compile_s is the first call (trace + compile +
    one run). Returns {compile_s, median_s, min_s, all_s, median_cpu_s}; median_cpu_s is the
    process CPU time (all threads) per call, a cross-check when the machine is loaded.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    t0 = time.perf_counter()
    if hasattr(fn, "lower"):
        call = fn.lower(*args).compile()
    else:
        _block(fn(*args))
        call = fn
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        _block(call(*args))
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        _block(call(*args))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"compile_s": compile_s, "median_s": statistics.median(times), "min_s": min(times), "all_s": times,
            "median_cpu_s": statistics.median(cpu)}


def int_list(text: str) -> list[int]:
    """argparse type: "1,64,1024" -> [1, 64, 1024] (positive integers)."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: need one or more integers >= 1")
    return vals


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return v


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


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

    def is_num(s):
        return bool(s) and (s[0].isdigit() or s[0] in "-+.") and s not in ("-",) and not s[0].isalpha()

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench",
                                     description="hrm-jax benchmarks (compile excluded, median of repeats)")
    subs = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for sub in SUBCOMMANDS.values():
        sp = subs.add_parser(sub.name, help=sub.help, description=sub.help)
        add_common_arguments(sp)
        sub.add_arguments(sp)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 5:
        print(f"note: --repeats {args.repeats} < 5: a quick run, not a measurement", flush=True)
    info = machine_info()
    print(machine_text(info), flush=True)
    sub = SUBCOMMANDS[args.subcommand]
    args.parser = parser
    results = sub.run(args)
    end_load = load_average()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in end_load) if end_load else 'n/a'}", flush=True)
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("parser",)}
        write_json(args.json, {"subcommand": sub.name, "argv": sys.argv[1:] if argv is None else list(argv),
                               "config": config, "machine": info, "loadavg_end": end_load, "results": results})
        print(f"wrote {args.json}", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
