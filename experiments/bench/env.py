"""`env`: steps/s of the JAX mazes (vmapped gymnax steps with auto-reset, in one jitted
lax.scan) vs raw MiniHack stepping on the same map, and the targets (>= 2M steps/s and >= 1000x
MiniHack at 8192 envs)."""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from experiments.bench.registry import int_list, subcommand
from experiments.bench.report import fmt_rate, pass_miss, print_table
from experiments.bench.timing import time_fn
from hrm_jax.cli import positive_float, positive_int

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


def reset_envs(env, params, n_envs: int, key):
    """(obs, state) of `n_envs` freshly reset envs, one key each."""
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
            obs, state = reset_envs(env, params, n, k_reset)
            fn = env_rollout_fn(env, params, n, args.steps)
            t = time_fn(fn, obs, state, k_run, repeats=args.repeats, warmup=args.warmup)
            _, _, ret, episodes = fn(obs, state, k_run)
            steps = n * args.steps
            row = {"env": name, "n_envs": n, "steps": args.steps, "compile_s": t["compile_s"],
                   "first_call_s": t["first_call_s"], "median_s": t["median_s"], "min_s": t["min_s"],
                   "all_s": t["all_s"],
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
        table.append([r["env"], r["n_envs"], r["steps"], f"{r['compile_s']:.2f}", f"{r['first_call_s'] * 1e3:.2f}",
                      f"{r['median_s'] * 1e3:.2f}",
                      f"{r['median_cpu_s'] * 1e3:.2f}",
                      fmt_rate(r["steps_per_s"]), f"{r['ns_per_env_step']:.0f}",
                      f"{ratio:,.0f}x" if ratio is not None else "-"])
    for name in names:
        mh = minihack.get(name) if minihack.get("available") else None
        if mh:
            table.append([f"MiniHack ({name} map)", 1, mh["steps"], "-", "-", "-", "-", fmt_rate(mh["steps_per_s"]),
                          f"{1e9 / mh['steps_per_s']:.0f}", "1x"])
        else:
            table.append([f"MiniHack ({name} map)", 1, "-", "-", "-", "-", "-", "unavailable", "-", "-"])
    print_table(["env", "envs", "steps", "compile s", "first call ms", "median ms", "cpu ms", "steps/s", "ns/step",
                 "vs MiniHack"],
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
