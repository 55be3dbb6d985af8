"""Parity of our JAX mazes with MiniHack at scale (issue #3).

    python -m experiments.parity --episodes 1000 [--env four_rooms|corridor_maze|all]
                                 [--mode static|dynamic|all] [--seed S]

For every (env, door mode): roll out seeded episodes of our env (scripted driver: random moves,
wall and door bumps, shortest-path moves), replay each step in MiniHack and compare position,
reward, terminated, truncated and observation tokens (envs/minihack_ref.py; the reference's known
deviations are listed there). Prints one table row per (env, mode) with the two stepping speeds,
then the policy-transfer table (an observation-based shortest-path policy in both
implementations, dynamic doors). Exit status: 0 if there are no mismatches and the transfer rates
agree, 1 otherwise or when MiniHack is not installed, 2 on bad input.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hrm_jax.cli import OneLineParser, non_negative_int, number, positive_int, probability  # noqa: E402

ENV_CHOICES = ("four_rooms", "corridor_maze", "all")
MODE_CHOICES = ("static", "dynamic", "all")









def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m experiments.parity",
                description="Compare our JAX mazes step by step with MiniHack (NetHack), and check that a scripted "
                            "shortest-path policy transfers between them.")
    p.add_argument("--episodes", type=positive_int, default=200,
                   help="seeded episodes per (env, door mode) (default 200)")
    p.add_argument("--env", choices=ENV_CHOICES, default="all", help="which maze (default all)")
    p.add_argument("--mode", choices=MODE_CHOICES, default="all",
                   help="door mode: static = real NetHack locked doors with p_change=0; dynamic = the authors' "
                        "emulation with our door schedule (default all)")
    p.add_argument("--seed", type=number(int, 0, 2**31, hi_open=True), default=0, help="seed of the episode layouts and actions (default 0)")
    p.add_argument("--p-change", type=probability, default=None,
                   help="door change probability in dynamic mode (default: the env's, 0.05)")
    p.add_argument("--transfer-episodes", type=non_negative_int, default=200,
                   help="policy-transfer episodes per env, 0 to skip (default 200)")
    p.add_argument("--show", type=non_negative_int, default=3,
                   help="mismatch reports to print per (env, mode) (default 3)")
    return p


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) if i > 1 else c.ljust(w)
                                           for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from envs import minihack_ref as M

    missing = M.minihack_missing()
    if missing:
        sys.stderr.write(f"python -m experiments.parity: error: {missing}\n")
        return 1
    env_names = ["four_rooms", "corridor_maze"] if args.env == "all" else [args.env]
    modes = list(M.MODES) if args.mode == "all" else [args.mode]

    rows, failed, deviations = [], False, {}
    for env_name in env_names:
        for mode in modes:
            t0 = time.perf_counter()
            eps = M.run_episodes(env_name, mode, args.episodes, seed=args.seed, p_change=args.p_change)
            res = M.compare_episodes(eps, seed=args.seed)
            speed = M.jax_speed(eps, p_change=args.p_change)
            wall = time.perf_counter() - t0
            failed |= bool(res.mismatches)
            for m in res.mismatches[:args.show]:
                print(m.report() + "\n", flush=True)
            deviations[env_name, mode] = res.deviations
            cov = res.coverage
            rows.append([env_name, mode, str(res.episodes), str(res.steps), str(len(res.mismatches)),
                         str(cov["goals"]), str(cov["truncations"]), str(cov["wall_bumps"]), str(cov["door_bumps"]),
                         _fmt_rate(res.steps / max(res.minihack_step_seconds, 1e-9)),
                         f"{1000 * (res.minihack_seconds - res.minihack_step_seconds) / max(res.episodes, 1):.1f}",
                         _fmt_rate(speed["batched"]), _fmt_rate(speed["per_call"]), f"{wall:.0f}"])
            print(f"[{env_name}/{mode} done in {wall:.0f}s]", file=sys.stderr, flush=True)

    print(_table(["env", "door mode", "episodes", "steps compared", "mismatches", "goals", "truncated",
                  "wall bumps", "door bumps", "MiniHack steps/s", "MiniHack ms/reset", "JAX steps/s (vmap)",
                  "JAX steps/s (1 call/step)", "wall s"], rows))
    print("\nKnown deviations applied (envs/minihack_ref.py KNOWN_DEVIATIONS), steps per run:")
    for (env_name, mode), dev in deviations.items():
        print(f"  {env_name}/{mode}: " + (", ".join(f"{k} {v}" for k, v in sorted(dev.items())) or "none"))

    if args.transfer_episodes > 0:
        trows = []
        for env_name in env_names:
            for paint in (False, True):
                tr = M.policy_transfer(env_name, args.transfer_episodes, seed=args.seed, p_change=args.p_change,
                                       paint_reset=paint)
                ok = tr.agree()
                failed |= not ok or (paint and tr.same_outcome != tr.episodes)
                trows.append([env_name, "drawn" if paint else "not drawn (authors)", str(tr.episodes),
                              f"{tr.success_ours:.3f}", f"{tr.success_ref:.3f}",
                              f"{tr.length_ours:.2f} ± {tr.length_sd_ours / tr.episodes ** 0.5:.2f}",
                              f"{tr.length_ref:.2f} ± {tr.length_sd_ref / tr.episodes ** 0.5:.2f}",
                              f"{tr.same_outcome}/{tr.episodes}", "yes" if ok else "NO"])
        print("\nPolicy transfer (shortest-path policy on the observation tokens, dynamic doors):")
        print(_table(["env", "reset doors", "episodes", "success JAX", "success MiniHack", "mean length JAX",
                      "mean length MiniHack", "identical episodes", "agree (3 s.e.)"], trows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
