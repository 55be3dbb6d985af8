"""Seed-sweep scaling on forced CPU devices (docs/scaling.md).

    python -m experiments.scale                          # 1, 2, 4, 8 devices, seeds = devices, tiny preset
    python -m experiments.scale --devices 1 8 --preset cpu --chunks 1 --json out.json

For every device count D one subprocess runs with XLA_FLAGS=--xla_force_host_platform_device_count=D
and --seeds D (seeds x devices as in `experiments.run`): it compiles, runs one warm-up chunk, then
times `--chunks` chunks (eval_every gradient steps each, with their evaluations). Reported per D:
seconds per chunk, seed-gradient-steps per second (seeds x gradient steps / s), the scaling
against D=1, and the process's CPU seconds. `--baseline` adds, per D, a run with all D seeds in
one program on ONE device (what the forced devices have to beat on the same cores), vmapped or
looped as `--seed-loop` says (default: the preset's; on D devices each device loops over its own). Forced CPU
devices share the machine's cores, so this measures the sharding's overhead and the cores'
parallelism, not what real accelerators would give.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from hrm_jax.cli import OneLineParser, positive_int
from hrm_jax.config import PRESETS, SEED_LOOPS

CHILD = r"""
import json, os, resource, sys, time
import jax
from hrm_jax import sharding
from hrm_jax.config import override, preset
from hrm_jax.algos import seed_keys

name, seeds, chunks, loop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = override(preset(name), "train", seeds=seeds, total_grad_steps=10**9, seed_loop=loop or preset(name).train.seed_loop)
tr, sh = sharding.make_sharded_train(cfg)
state = sh.init(seed_keys(0, seeds))
state, m = sh.chunk(state)           # compile + warm-up
jax.block_until_ready(m)
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
for _ in range(chunks):
    state, m = sh.chunk(state)
jax.block_until_ready(m)
wall = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
print(json.dumps(dict(devices=len(jax.devices()), mesh=dict(sh.mesh.shape), seeds=seeds, seed_loop=cfg.train.seed_loop,
                      s_per_chunk=wall / chunks, cpu_s_per_chunk=cpu / chunks,
                      seed_grad_steps_per_s=seeds * cfg.train.eval_every * chunks / wall)))
"""


def measure(devices: int, seeds: int, preset: str, chunks: int, seed_loop: str = "") -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    r = subprocess.run([sys.executable, "-c", CHILD, preset, str(seeds), str(chunks), seed_loop], env=env,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"devices={devices}: failed\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=positive_int, nargs="+", default=[1, 2, 4, 8],
                   help="forced CPU device counts to measure, one fresh process each (default 1 2 4 8)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="configuration of every run (default tiny)")
    p.add_argument("--chunks", type=positive_int, default=2, help="timed chunks per device count (after one warm-up chunk)")
    p.add_argument("--baseline", action="store_true", help="also run the same seeds in one program on one device")
    p.add_argument("--seed-loop", default="", choices=SEED_LOOPS,
                   help="how a device runs its seeds (experiments.run --seed-loop; default: the preset's)")
    p.add_argument("--json", default=None, help="write the rows here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    print(f"{'devices':>7} {'seeds':>5} {'loop':>4} {'s/chunk':>8} {'seed-steps/s':>12} {'scaling':>7} {'CPU s/chunk':>11}")
    base = None
    for d in args.devices:
        runs = [(d, d)] + ([(1, d)] if args.baseline and d > 1 else [])
        for devices, seeds in runs:
            r = measure(devices, seeds, args.preset, args.chunks, args.seed_loop)
            if devices == 1 and seeds == 1:
                base = r["seed_grad_steps_per_s"]
            r["scaling"] = r["seed_grad_steps_per_s"] / base if base else None
            rows.append(r)
            print(f"{devices:>7} {seeds:>5} {r['seed_loop']:>4} {r['s_per_chunk']:>8.2f} {r['seed_grad_steps_per_s']:>12.1f} "
                  f"{(r['scaling'] or float('nan')):>7.2f} {r['cpu_s_per_chunk']:>11.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(preset=args.preset, load=os.getloadavg(), rows=rows), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
