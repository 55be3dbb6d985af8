"""The run driver: train (or continue) one run directory chunk by chunk.

A run directory holds config.json, metrics.jsonl, tb/, checkpoints/ (orbax, with wall_time.json),
summary.json and curves.png (hrm_jax.runlog). Each chunk is `eval_every` gradient steps and one
greedy evaluation of every seed; after it the rows are logged and, every `checkpoint_every`
steps, the state is checkpointed. A chunk that reports a non-finite step stops the run with the
last good state checkpointed (exit 3); Ctrl-C checkpoints after the current chunk (130).

The trainer comes from `hrm_jax.algos.make_train` (through hrm_jax.sharding); the driver uses
only its init / chunk and its counts, so every learner runs the same way.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time

from hrm_jax.runlog import RunLog, plot_curves, summarize, write_atomic

# the command that trains and resumes run directories: messages tell the user to `--resume` with it
PROG = "python -m experiments.run"


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


def cap_full_z_capacity(cfg, budget_bytes: int = 8 << 30):
    """`full` z mode stores two [S, hidden] float32 z per transition (~125 KB at the paper size):
    cap the replay capacity to `budget_bytes` per seed and say so."""
    from hrm_jax.acting import make_env
    from hrm_jax.config import override
    from hrm_jax.models import stored_z_shape
    from hrm_jax.replay import transition_bytes

    if cfg.model.z_carry != "full":
        return cfg
    obs_len = make_env(cfg.env)[0].obs_len
    per = transition_bytes(obs_len, stored_z_shape(cfg.model, obs_len))
    cap = max(cfg.train.batch_size, budget_bytes // per)
    if cfg.train.buffer_capacity > cap:
        print(f"note: z_carry=full stores {per / 1024:.0f} KiB per transition; buffer_capacity capped "
              f"{cfg.train.buffer_capacity} -> {cap} ({budget_bytes >> 30} GiB per seed)", file=sys.stderr)
        cfg = override(cfg, "train", buffer_capacity=int(cap))
    return cfg


# ---- training ------------------------------------------------------------------------------------

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
            write_atomic(os.path.join(out, "config.json"), json.dumps(cfg.to_dict(), indent=2))
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
            wall_before = _read_wall_times(out).get(str(step), 0.0)
            print(f"resumed {out} at gradient step {step}", file=sys.stderr)
    if state is None:
        state = strong_types(init(keys))
    if resume and sharding.is_main():  # an extended run (`extended`) records its new total
        try:
            with open(os.path.join(out, "config.json")) as fh:
                changed = json.load(fh) != cfg.to_dict()
            if changed:
                write_atomic(os.path.join(out, "config.json"), json.dumps(cfg.to_dict(), indent=2))
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
                    _write_wall_time(out, good_step, wall_before + time.time() - t0)
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
                _write_wall_time(out, gs, wall)
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
            write_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
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
    from hrm_jax.algos import make_train, seed_keys
    from hrm_jax.config import Config, validate

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

    from hrm_jax.sharding import gather

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(gather(state.params)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def _read_wall_times(out: str) -> dict:
    """{step: wall time the run had trained when that checkpoint was saved} (checkpoints/wall_time.json):
    a resumed run's wall time goes on from its checkpoint's."""
    p = os.path.join(out, "checkpoints", "wall_time.json")
    if os.path.exists(p):
        with open(p) as fh:
            return json.load(fh)
    return {}


def _write_wall_time(out: str, step: int, wall: float) -> None:
    from hrm_jax.sharding import is_main

    if not is_main():  # multi-host: process 0 writes
        return
    meta = _read_wall_times(out)
    meta[str(step)] = wall
    write_atomic(os.path.join(out, "checkpoints", "wall_time.json"), json.dumps(meta))


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="grad step", dynamic_ncols=True, disable=not enabled,
                file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


def _print_summary(summary: dict, out: str) -> None:
    m = summary["mean"]
    net = f"z {summary['z_carry']}" if summary.get("model", "hrm") == "hrm" else f"{summary['model']} baseline"
    print(f"\n{summary['env']}, {net}, {len(summary['seeds'])} seed(s):")
    print(f"  greedy success       {m['success']:.3f}")
    print(f"  mean episode length  {m['mean_episode_length']:.2f}  (BFS optimum {m['optimal_episode_length']:.2f})")
    print(f"  gradient steps       {m['grad_steps']:.0f}   env steps {m['env_steps']:.0f}")
    print(f"  wall time            {m['wall_time_s']:.1f} s   ({m['env_steps_per_s']:.0f} env steps/s)")
    h = summary["held"]
    for seed, when in h["by_seed"].items():
        target = f"success >= {h['threshold']:.2f} at {h['evaluations']} evaluations in a row"
        print(f"  seed {seed}: {target}: " + (
            "not reached" if when is None else
            f"held from {when['grad_steps']:.0f} gradient steps ({when['env_steps']:.0f} env steps, "
            f"{when['wall_time_s']:.0f} s)"))
    print(f"  run directory        {out}")
