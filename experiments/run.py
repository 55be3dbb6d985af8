"""The main job: train HRM-Agent with DQN.

    python -m experiments.run                      # cpu preset, four-rooms, carry z, 1 seed
    python -m experiments.run --preset paper --env corridor_maze --seeds 5
    python -m experiments.run --dry-run --preset paper
    python -m experiments.run --resume runs/four_rooms-last_token-cpu-s0

Writes a run directory: config.json, metrics.jsonl, tb/ (TensorBoard), checkpoints/ (orbax),
summary.json and curves.png; the driver is hrm_jax.runner. See docs/usage.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from hrm_jax.runner import PROG


def build_parser() -> argparse.ArgumentParser:
    from hrm_jax.cli import OneLineParser, add_config_flags

    p = OneLineParser(prog=PROG, description="Train HRM-Agent (HRM + DQN) on a dynamic maze. Every config "
                      "field is a flag; unset flags take the preset's value.",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=None, help="run directory (default: runs/<env>-<z_carry>-<preset>-s<seed>)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its last checkpoint (its config.json is used; other config flags must not contradict it, except a larger --total-grad-steps, which trains it longer)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, parameter count and FLOPs of one acting / gradient step, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    d = p.add_argument_group("multi-host (docs/scaling.md)")
    d.add_argument("--distributed", action="store_true",
                   help="join a multi-process run with jax.distributed.initialize(); process 0 writes logs and checkpoint metadata")
    d.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                   help="process 0's address; unset: $JAX_COORDINATOR_ADDRESS, else JAX's cluster auto-detection (SLURM, Open MPI, ...)")
    d.add_argument("--num-processes", type=int, default=None, help="number of processes; unset: $JAX_NUM_PROCESSES, else auto-detected")
    d.add_argument("--process-id", type=int, default=None, help="this process's id, 0..N-1; unset: $JAX_PROCESS_ID, else auto-detected")
    add_config_flags(p)
    return p


def resolve(argv: list[str] | None = None):
    """Parse and validate everything that can be checked before compiling. Exits 2 on bad input."""
    from hrm_jax.cli import config_from_args, fail
    from hrm_jax.config import Config, ConfigError, validate
    from hrm_jax.runner import cap_full_z_capacity, extended, with_seed_loop

    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args, PROG)
    if args.resume:
        path = os.path.join(args.resume, "config.json")
        if not os.path.isfile(path):
            fail(f"--resume {args.resume}: no config.json there (not a run directory)", PROG)
        try:
            with open(path) as fh:
                saved = Config.from_dict(json.load(fh))
            validate(saved)
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            fail(f"--resume {args.resume}: config.json is unreadable or incompatible ({str(exc).splitlines()[0]})", PROG)
        given = {k: v for k, v in vars(args).items() if "__" in k and v is not None}
        for k, v in given.items():
            section, name = k.split("__", 1)
            if name not in RESUME_MAY_CHANGE and getattr(getattr(saved, section), name) != v:
                fail(f"--resume {args.resume}: {name}={v!r} contradicts the run's config ({name}="
                     f"{getattr(getattr(saved, section), name)!r})", PROG)
        try:
            cfg = extended(saved, given.get("train__total_grad_steps", saved.train.total_grad_steps))
        except ConfigError as exc:
            fail(f"--resume {args.resume}: {exc}", PROG)
        cfg = with_seed_loop(cfg, given.get("train__seed_loop", saved.train.seed_loop))
    from hrm_jax import sharding
    if args.distributed:  # must come before anything touches JAX (make_env below builds arrays)
        sharding.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    try:
        sharding.make_mesh(cfg)
    except ValueError as exc:
        fail(str(exc), PROG)
    # env-level checks (counts against the map's candidates) happen here, before compiling
    from hrm_jax.acting import make_env
    try:
        make_env(cfg.env)
    except ValueError as exc:
        fail(str(exc), PROG)
    cfg = cap_full_z_capacity(cfg)
    out = args.resume or args.out or os.path.join(
        "runs", f"{cfg.env.name}-{cfg.model.z_carry if cfg.model.arch == 'hrm' else cfg.model.arch}-{args.preset}"
        f"-s{cfg.train.seed}")
    if not args.resume and not args.dry_run and sharding.is_main():  # other processes: process 0 creates it
        if os.path.exists(out) and not os.path.isdir(out):
            fail(f"--out {out} exists and is not a directory", PROG)
        if os.path.exists(out) and os.listdir(out):
            fail(f"--out {out} already exists and is not empty (use --resume {out} to continue it, or another --out)", PROG)
        check_writable(out, "--out", PROG)
    elif args.resume and not args.dry_run:
        check_writable(out, "--resume", PROG)
    return args, cfg, out


# flags a resumed run may set to other values than its config.json: how long it trains
# (hrm_jax.runner.extended) and how each device loops over its seeds (the same state layout;
# results change by float rounding)
RESUME_MAY_CHANGE = ("total_grad_steps", "seed_loop")


def check_writable(out: str, flag: str, prog: str) -> None:
    """The run directory (or, if it does not exist yet, its nearest existing ancestor) must be a
    writable directory. Root ignores permission bits, so a read-only file system or an ancestor
    that is a regular file are checked for explicitly."""
    from hrm_jax.cli import fail

    probe = os.path.abspath(out)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        fail(f"{flag} {out}: cannot create a directory there ({probe} is not a directory)", prog)
    if not os.access(probe, os.W_OK | os.X_OK):
        fail(f"{flag} {out}: {probe} is not writable", prog)


def dry_run(cfg, out: str) -> None:
    from hrm_jax.models import flops
    from hrm_jax.algos import make_train

    tr = make_train(cfg)
    S = tr.obs_len  # observation tokens (hrm_jax.models.flops adds the puzzle token)
    t = cfg.train
    print(json.dumps(cfg.to_dict(), indent=2))
    print(f"run directory: {out}")
    puzzle = f" (+{cfg.model.hidden} puzzle embedding, trained by sign-SGD)" if cfg.model.arch == "hrm" else ""
    print(f"trainable parameters: {tr.param_count:,}{puzzle}")
    if cfg.model.arch != "hrm":
        print(f"FLOP counts: HRM only (this run's Q-network is the {cfg.model.arch} baseline)")
        print(f"iterations: {tr.prefill_iters} prefill + {tr.num_chunks} chunks x {tr.iters_per_chunk} ({iteration_text(t)})")
        return
    act = flops.act_flops(cfg.model, S, t.num_envs)
    grad = flops.grad_step_flops(cfg.model, S, t.minibatch_rows)
    print(f"FLOPs of one acting step ({t.num_envs} envs x {cfg.model.segments_per_step} segments): {act:.3e}")
    print(f"FLOPs of one gradient step (minibatch {t.minibatch_rows}, 1-step gradient): {grad:.3e}")
    if t.algo == "dqn":
        nets = "target + online net, double DQN" if t.double_dqn else "target net"
        target = (2 if t.double_dqn else 1) * flops.act_flops(cfg.model, S, t.batch_size, keep="none")
        print(f"FLOPs of one minibatch's TD target ({nets} on s', {cfg.model.segments_per_step} segments; "
              f"one per {t.supervision_segments} gradient steps): {target:.3e}")
    print(f"iterations: {tr.prefill_iters} prefill + {tr.num_chunks} chunks x {tr.iters_per_chunk} ({iteration_text(t)})")


def iteration_text(t) -> str:
    """What one iteration of the learner does."""
    if t.algo == "pqn":
        return (f"1 rollout of {t.pqn_rollout_steps} steps x {t.num_envs} envs + {t.pqn_epochs} epochs x "
                f"{t.pqn_minibatches} minibatches x {t.supervision_segments} gradient steps each")
    return f"1 collection of {t.num_envs} envs + {t.grad_steps_per_collect} gradient steps each"


def main(argv: list[str] | None = None) -> int:
    from hrm_jax.runner import train_run

    args, cfg, out = resolve(argv)
    if args.dry_run:
        dry_run(cfg, out)
        return 0
    return train_run(cfg, out, resume=bool(args.resume), progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
