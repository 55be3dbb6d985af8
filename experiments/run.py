"""The main job: train HRM-Agent with DQN.

    python -m experiments.run                      # cpu preset, four-rooms, carry z, 1 seed
    python -m experiments.run --preset paper --env corridor_maze --seeds 5
    python -m experiments.run --dry-run --preset paper
    python -m experiments.run --resume runs/four_rooms-last_token-cpu-s0

Writes a run directory: config.json, metrics.jsonl, tb/ (TensorBoard), checkpoints/ (orbax),
summary.json and curves.png. See docs/usage.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any

PROG = "python -m experiments.run"


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
    d = p.add_argument_group("multi-host (README \"Scaling\")")
    d.add_argument("--distributed", action="store_true",
                   help="join a multi-process run with jax.distributed.initialize(); process 0 writes logs and checkpoint metadata")
    d.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                   help="process 0's address; unset: $JAX_COORDINATOR_ADDRESS, else JAX's cluster auto-detection (SLURM, Open MPI, ...)")
    d.add_argument("--num-processes", type=int, default=None, help="number of processes; unset: $JAX_NUM_PROCESSES, else auto-detected")
    d.add_argument("--process-id", type=int, default=None, help="this process's id, 0..N-1; unset: $JAX_PROCESS_ID, else auto-detected")
    add_config_flags(p)
    return p


# ---------------------------------------------------------------------------------------------

def resolve(argv: list[str] | None = None):
    """Parse and validate everything that can be checked before compiling. Exits 2 on bad input."""
    from hrm_jax.cli import config_from_args, fail
    from hrm_jax.config import Config, ConfigError, validate

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


# flags a resumed run may set to other values than its config.json: how long it trains (`extended`)
# and how each device loops over its seeds (the same state layout; results change by float rounding)
RESUME_MAY_CHANGE = ("total_grad_steps", "seed_loop")


def with_seed_loop(cfg, seed_loop: str):
    """cfg running its seeds with `seed_loop` (TrainConfig.seed_loop)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed_loop=seed_loop))


def extended(saved, total_grad_steps: int):
    """The config a resumed run continues with: its saved one, with `total_grad_steps` raised when
    asked (train longer). Nothing in training depends on the total except how many chunks run
    (epsilon decay and the learning-rate warm-up count gradient steps, and every chunk is the same
    program), so an extended run equals one started with the larger total. Lowering it is refused:
    the steps are done and their checkpoints and metrics would no longer match the config."""
    from hrm_jax.config import ConfigError

    if total_grad_steps < saved.train.total_grad_steps:
        raise ConfigError(f"total_grad_steps={total_grad_steps} is below the run's {saved.train.total_grad_steps}; "
                          "a resumed run can only be extended")
    return dataclasses.replace(saved, train=dataclasses.replace(saved.train, total_grad_steps=total_grad_steps))


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


def cap_full_z_capacity(cfg, budget_bytes: int = 8 << 30):
    """`full` z mode stores two [S, hidden] float32 z per transition (~125 KB at the paper size):
    cap the replay capacity to `budget_bytes` per seed and say so."""
    from hrm_jax.config import override
    from hrm_jax.replay import transition_bytes

    if cfg.model.z_carry != "full":
        return cfg
    obs_len = 121 if cfg.env.name == "four_rooms" else 143
    per = transition_bytes(obs_len, (obs_len + 1, cfg.model.hidden))
    cap = max(cfg.train.batch_size, budget_bytes // per)
    if cfg.train.buffer_capacity > cap:
        print(f"note: z_carry=full stores {per / 1024:.0f} KiB per transition; buffer_capacity capped "
              f"{cfg.train.buffer_capacity} -> {cap} ({budget_bytes >> 30} GiB per seed)", file=sys.stderr)
        cfg = override(cfg, "train", buffer_capacity=int(cap))
    return cfg


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
        print(f"iterations: {tr.prefill_iters} prefill + {tr.num_chunks} chunks x {tr.iters_per_chunk}")
        return
    act = flops.act_flops(cfg.model, S, t.num_envs)
    grad = flops.grad_step_flops(cfg.model, S, t.batch_size)
    print(f"FLOPs of one acting step ({t.num_envs} envs x {cfg.model.segments_per_step} segments): {act:.3e}")
    print(f"FLOPs of one gradient step (batch {t.batch_size}, 1-step gradient): {grad:.3e}")
    nets = "target + online net, double DQN" if t.double_dqn else "target net"
    target = (2 if t.double_dqn else 1) * flops.act_flops(cfg.model, S, t.batch_size, keep="none")
    print(f"FLOPs of one minibatch's TD target ({nets} on s', {cfg.model.segments_per_step} segments; "
          f"one per {t.supervision_segments} gradient steps): {target:.3e}")
    print(f"iterations: {tr.prefill_iters} prefill + {tr.num_chunks} chunks x {tr.iters_per_chunk} "
          f"(1 collection of {t.num_envs} envs + {t.grad_steps_per_collect} gradient steps each)")


# ---------------------------------------------------------------------------------------------

class RunLog:
    """metrics.jsonl + TensorBoard scalars, one line / scalar set per seed per log point."""

    TB_KEYS = ("loss", "epsilon", "train_return", "eval_success", "eval_length", "eval_optimal", "env_steps_per_s", "q_mean")

    def __init__(self, out: str, seeds: int, truncate_after: int | None, write: bool = True, first_agent: int = 0):
        from tensorboardX import SummaryWriter

        self.path = os.path.join(out, "metrics.jsonl")
        self.enabled = write  # False: a multi-host run's other processes keep the rows, write nothing
        if truncate_after is not None and os.path.exists(self.path) and write:
            # a resumed run recomputes everything after its checkpoint: drop those lines
            rows = [r for r in _read_rows(self.path) if r["grad_steps"] <= truncate_after]
            _write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self.rows = _read_rows(self.path) if os.path.exists(self.path) else []
        self.tb = SummaryWriter(os.path.join(out, "tb")) if write else None
        self.seeds = seeds
        self.first_agent = first_agent  # rows and TensorBoard tags name the agent index, not the position in the run

    def write(self, metrics: dict[str, Any], wall: float, sps: float) -> list[dict]:
        rows = []
        for i in range(self.seeds):
            row = {k: _py(v[i]) for k, v in metrics.items()}
            row.update(seed=self.first_agent + i, wall_time_s=round(wall, 3), env_steps_per_s=round(sps, 1))
            rows.append(row)
            for k in self.TB_KEYS if self.enabled else ():
                if k in row:
                    self.tb.add_scalar(f"seed{row['seed']}/{k}", row[k], row["grad_steps"])
        if self.enabled:
            with open(self.path, "a") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
            self.tb.flush()
        self.rows.extend(rows)
        return rows

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _read_rows(path: str) -> list[dict]:
    """metrics.jsonl rows; a line torn by a kill mid-write (only ever the last) is dropped."""
    rows = []
    with open(path) as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _write_atomic(path: str, text: str) -> None:
    """Write a file so that a kill at any moment leaves either the old or the new content."""
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def _py(v):
    import numpy as np

    v = np.asarray(v)
    if np.issubdtype(v.dtype, np.integer):
        iv = int(v)
        return -1 if iv == np.iinfo(np.int32).max else iv
    return round(float(v), 6)


def summarize(cfg, rows: list[dict], param_count: int, wall: float) -> dict:
    """summary.json: the last log point per seed, and their mean."""
    seeds = sorted({r["seed"] for r in rows})
    per_seed = []
    for s in seeds:
        last = [r for r in rows if r["seed"] == s][-1]
        per_seed.append(dict(seed=s, success=last["eval_success"], mean_episode_length=last["eval_length"],
                             optimal_episode_length=last["eval_optimal"], grad_steps=last["grad_steps"],
                             env_steps=last["env_steps"], wall_time_s=round(wall, 2),
                             env_steps_per_s=round(last["env_steps"] / max(wall, 1e-9), 1), params=param_count))
    keys = [k for k in per_seed[0] if k != "seed"]
    mean = {k: round(sum(p[k] for p in per_seed) / len(per_seed), 4) for k in keys}
    return dict(env=cfg.env.name, z_carry=cfg.model.z_carry, seeds=per_seed, mean=mean)


def plot_curves(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        x = [r["grad_steps"] for r in rs]
        ax1.plot(x, [r["eval_success"] for r in rs], label=f"seed {s}")
        ax2.plot(x, [r["eval_length"] for r in rs], label=f"seed {s}")
    opt = [r["eval_optimal"] for r in rows]
    ax2.axhline(sum(opt) / len(opt), ls="--", color="k", label="BFS optimum (mean)")
    ax1.set(xlabel="gradient steps", ylabel="greedy success", ylim=(0, 1.02), title=title)
    ax2.set(xlabel="gradient steps", ylabel="mean episode length", title=title)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

def quiet_dropped_interrupts(default):
    """An unraisable hook (`sys.unraisablehook`) that prints nothing for a KeyboardInterrupt.
    Python prints an exception it had to drop (one raised in a `__del__` or a garbage-collector
    callback, such as JAX's while compiling) with a traceback; train_run keeps such a Ctrl-C in a
    flag and ends with one line instead. Any other dropped exception goes to `default`."""
    def hook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)
    return hook


def train_run(cfg, out: str, resume: bool, progress: bool = True) -> int:
    """Run (or continue) training in `out`. Returns the process exit status.
    Ctrl-C during training saves a checkpoint after the current chunk (130); Ctrl-C before the
    loop (while compiling or restoring) or a second Ctrl-C ends at once, with one line (130)."""
    early = {"interrupted": False}

    def on_sigint_early(signum, frame):
        # Python drops an exception raised inside a garbage-collector callback ("Exception ignored
        # in _xla_gc_callback"), and JAX runs one while compiling: the flag keeps such a Ctrl-C, and
        # _train_run raises it again before the first chunk
        early["interrupted"] = True
        raise KeyboardInterrupt

    entry = signal.signal(signal.SIGINT, on_sigint_early)
    entry_hook = sys.unraisablehook
    sys.unraisablehook = quiet_dropped_interrupts(entry_hook)
    try:
        return _train_run(cfg, out, resume, progress, early)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; what {out} held before is kept (`--resume {out}` continues from its last "
              "checkpoint)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, entry)
        sys.unraisablehook = entry_hook


def _train_run(cfg, out: str, resume: bool, progress: bool, early: dict) -> int:
    import jax
    import numpy as np

    from hrm_jax import checkpoint as ckpt
    from hrm_jax import sharding
    from hrm_jax.algos import seed_keys

    t = cfg.train
    try:
        os.makedirs(out, exist_ok=True)
        if not resume and sharding.is_main():
            _write_atomic(os.path.join(out, "config.json"), json.dumps(cfg.to_dict(), indent=2))
    except OSError as exc:
        print(f"{PROG}: error: cannot write the run directory {out} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    # jax.jit(jax.vmap(tr.init / tr.chunk)) with the seed axis (or, data-parallel, the envs) split over devices
    tr, sh = sharding.make_sharded_train(cfg)
    init, chunk = sh.init, sh.chunk
    keys = seed_keys(t.seed, t.seeds, t.first_agent)
    ckpt_dir = os.path.join(out, "checkpoints")
    mngr = ckpt.manager(ckpt_dir, t.keep_checkpoints)
    wall_before = 0.0
    t0 = time.time()
    state, step = None, 0
    if resume:
        try:
            step, state = ckpt.restore_latest(mngr, abstract_state(init, keys), sh.state_sharding)
        except ckpt.NoCheckpointError:
            pass  # killed before its first checkpoint completed: start again from scratch (docs/reliability.md)
        except ckpt.CheckpointError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        notes = ckpt.discard_newer(ckpt_dir, step)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if notes:
            mngr = ckpt.manager(ckpt_dir, t.keep_checkpoints)
        if state is None:
            print(f"note: {out} has no complete checkpoint yet; starting it from scratch", file=sys.stderr)
        else:
            wall_before = _read_meta(out).get(str(step), 0.0)
            print(f"resumed {out} at gradient step {step}", file=sys.stderr)
    if state is None:
        state = strong_types(init(keys))
    if resume and sharding.is_main():  # an extended run (`extended`) records its new total
        try:
            with open(os.path.join(out, "config.json")) as fh:
                changed = json.load(fh) != cfg.to_dict()
            if changed:
                _write_atomic(os.path.join(out, "config.json"), json.dumps(cfg.to_dict(), indent=2))
        except (OSError, ValueError) as exc:
            print(f"{PROG}: error: cannot update {out}/config.json ({exc})", file=sys.stderr)
            return 2
    log = RunLog(out, t.seeds, truncate_after=step if resume else None, write=sharding.is_main(), first_agent=t.first_agent)
    done_chunks = step // t.eval_every
    chunks_per_ckpt = max(1, t.checkpoint_every // t.eval_every)
    bar = _progress(tr.num_chunks * t.eval_every, step, progress and sharding.is_main())
    env_prev = sharding.local_mean(state.env_steps)  # the same for every seed; no communication
    interrupted = {"flag": False}

    def on_sigint(signum, frame):
        interrupted["flag"] = True
        print(f"\n{PROG}: interrupt: saving a checkpoint after the current chunk (Ctrl-C again to abort)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    old = signal.signal(signal.SIGINT, on_sigint)
    status = 0
    good_step, saved_step = step, step  # last finite state / last checkpoint (0: none)
    try:
        if early["interrupted"]:  # a Ctrl-C before the loop that Python dropped (on_sigint_early)
            raise KeyboardInterrupt
        for c in range(done_chunks, tr.num_chunks):
            tc = time.time()
            new_state, metrics = chunk(state)
            metrics = jax.device_get(metrics)
            dt = time.time() - tc
            bad = int(np.min(metrics["first_bad_step"]))
            if bad != np.iinfo(np.int32).max:
                if good_step > saved_step:  # checkpoint the last finite state (its metrics are logged)
                    ckpt.save(mngr, good_step, state)
                    _write_meta(out, good_step, wall_before + time.time() - t0)
                    saved_step = good_step
                print(f"\n{PROG}: error: non-finite loss, Q value or parameters at gradient step {bad}; stopped. "
                      f"The last good checkpoint (step {saved_step}) and the metrics logged so far are kept in {out}",
                      file=sys.stderr)
                status = 3
                break
            state = new_state
            wall = wall_before + time.time() - t0
            env_now = float(np.mean(metrics["env_steps"]))
            sps = (env_now - env_prev) / dt  # includes compilation in the first chunk
            env_prev = env_now
            rows = log.write(metrics, wall, sps)
            gs = good_step = rows[0]["grad_steps"]
            bar.update(gs - bar.n)
            bar.set_postfix_str(f"env {sps:,.0f} steps/s | eps {rows[0]['epsilon']:.2f} | "
                                f"success {np.mean([r['eval_success'] for r in rows]):.2f} | "
                                f"len {np.mean([r['eval_length'] for r in rows]):.1f}/{np.mean([r['eval_optimal'] for r in rows]):.1f}")
            interrupted["flag"] = sharding.any_process(interrupted["flag"])  # multi-host: all stop together
            if (c + 1) % chunks_per_ckpt == 0 or c + 1 == tr.num_chunks or interrupted["flag"]:
                ckpt.save(mngr, gs, state)
                _write_meta(out, gs, wall)
                saved_step = gs
            if interrupted["flag"]:
                status = 130
                break
    finally:
        signal.signal(signal.SIGINT, old)
        bar.close()
        log.close()
    wall = wall_before + time.time() - t0
    if log.rows:
        summary = summarize(cfg, log.rows, tr.param_count, wall)
        summary["params_sha256"] = params_digest(state)  # every process (a collective when multi-host)
        if sharding.is_main():
            _write_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
            plot_curves(log.rows, os.path.join(out, "curves.png"), f"{cfg.env.name}, z {cfg.model.z_carry}")
            if status == 0:
                _print_summary(summary, out)
    return status


def strong_types(state):
    """The state with every leaf strongly typed. flashbax keeps a weakly typed index; a restored
    state has none, so without this a resumed run would compile (and cache) a second program."""
    import jax

    return jax.tree.map(lambda x: x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x.astype(x.dtype), state)


def abstract_state(init, keys):
    """Zero-filled arrays with the train state's structure (restore target)."""
    import jax
    import numpy as np

    shapes = jax.eval_shape(init, keys)
    def fill(s):
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(jax.random.key(0))
            return jax.random.wrap_key_data(np.zeros(s.shape + tuple(jax.random.key_data(jax.random.key(0)).shape), np.uint32), impl=impl)
        return np.zeros(s.shape, s.dtype)
    return jax.tree.map(fill, shapes)


def load_run(out: str):
    """(cfg, trainer, state, step) of the newest checkpoint in a run directory."""
    import jax

    from hrm_jax import checkpoint as ckpt
    from hrm_jax.config import Config, validate
    from hrm_jax.algos import make_train, seed_keys

    with open(os.path.join(out, "config.json")) as fh:
        cfg = validate(Config.from_dict(json.load(fh)))
    tr = make_train(cfg)
    keys = seed_keys(cfg.train.seed, cfg.train.seeds, cfg.train.first_agent)
    mngr = ckpt.manager(os.path.join(out, "checkpoints"), cfg.train.keep_checkpoints, read_only=True)
    step, state = ckpt.restore_latest(mngr, abstract_state(jax.vmap(tr.init), keys))
    return cfg, tr, state, step


def params_digest(state) -> str:
    """sha256 of every parameter byte (all seeds): equal digests = bit-identical parameters."""
    import hashlib

    import jax
    import numpy as np

    h = hashlib.sha256()
    from hrm_jax.sharding import gather

    for leaf in jax.tree.leaves(gather(state.params)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def _read_meta(out: str) -> dict:
    p = os.path.join(out, "checkpoints", "wall_time.json")
    if os.path.exists(p):
        with open(p) as fh:
            return json.load(fh)
    return {}


def _write_meta(out: str, step: int, wall: float) -> None:
    from hrm_jax.sharding import is_main

    if not is_main():  # multi-host: process 0 writes
        return
    meta = _read_meta(out)
    meta[str(step)] = wall
    p = os.path.join(out, "checkpoints", "wall_time.json")
    with open(p + ".tmp", "w") as fh:
        json.dump(meta, fh)
    os.replace(p + ".tmp", p)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="grad step", dynamic_ncols=True, disable=not enabled,
                file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


def _print_summary(summary: dict, out: str) -> None:
    m = summary["mean"]
    print(f"\n{summary['env']}, z {summary['z_carry']}, {len(summary['seeds'])} seed(s):")
    print(f"  greedy success       {m['success']:.3f}")
    print(f"  mean episode length  {m['mean_episode_length']:.2f}  (BFS optimum {m['optimal_episode_length']:.2f})")
    print(f"  gradient steps       {m['grad_steps']:.0f}   env steps {m['env_steps']:.0f}")
    print(f"  wall time            {m['wall_time_s']:.1f} s   ({m['env_steps_per_s']:.0f} env steps/s)")
    print(f"  run directory        {out}")


def main(argv: list[str] | None = None) -> int:
    args, cfg, out = resolve(argv)
    if args.dry_run:
        dry_run(cfg, out)
        return 0
    return train_run(cfg, out, resume=bool(args.resume), progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
