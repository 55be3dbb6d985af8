"""Checkpoints of the whole train state (parameters, optimiser, replay buffer, env states, RNG
keys) with orbax. Orbax writes each step into a temporary directory and renames it when complete,
so a run killed mid-save never leaves a half-written checkpoint that looks like the latest.

Orbax does not checksum array data (a flipped byte in a data file restores silently as a wrong
value), so `save` also writes `<step>/state.sha256`, the digest of every saved byte, and a
checkpoint counts as complete only once that file exists. `restore_latest` skips unfinished
checkpoints (no commit marker or no digest), verifies the digest of what it restored, and falls
back to older checkpoints when the newest is unreadable.

Typed PRNG keys are stored as their raw uint32 data and re-wrapped on restore.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incompatible or unreadable (one-line message)."""


class NoCheckpointError(CheckpointError):
    """The directory holds no complete checkpoint at all (none saved yet, or only unfinished ones)."""


DIGEST_FILE = "state.sha256"       # written by `save` after orbax has committed the step
COMMIT_FILE = "commit_success.txt"  # written by orbax into the step directory before its final rename


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_saveable(state: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def from_saveable(saved: Any, like: Any) -> Any:
    return jax.tree.map(lambda s, l: jax.random.wrap_key_data(s, impl=jax.random.key_impl(l)) if _is_key(l) else s,
                        saved, like)


def manager(directory: str, keep: int, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def state_digest(saveable: Any) -> str:
    """sha256 over the tree structure and every leaf's dtype, shape and bytes."""
    h = hashlib.sha256(str(jax.tree.structure(saveable)).encode())
    from hrm_jax.sharding import gather  # multi-host: every process gathers (a collective)

    for leaf in jax.tree.leaves(gather(saveable)):
        a = np.ascontiguousarray(leaf)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(mngr.directory), str(step))


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
    saveable = to_saveable(state)
    mngr.save(step, args=ocp.args.StandardSave(saveable), force=True)
    mngr.wait_until_finished()
    digest = state_digest(saveable)
    if jax.process_index() != 0:  # multi-host: orbax wrote every process's shards; process 0 writes the digest
        return
    path = os.path.join(step_dir(mngr, step), DIGEST_FILE)
    with open(path + ".tmp", "w") as fh:  # the step counts as complete once this rename is done
        fh.write(digest + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path + ".tmp", path)


def _unfinished(path: str) -> str | None:
    for name, why in ((COMMIT_FILE, "no orbax commit marker"), (DIGEST_FILE, "no digest: killed before the save completed")):
        if not os.path.isfile(os.path.join(path, name)):
            return why
    return None


def restore_latest(mngr: ocp.CheckpointManager, like: Any, shardings: Any = None) -> tuple[int, Any]:
    """Restore the newest complete checkpoint into the structure of `like` (a state or its
    abstract shapes), verified against its digest. Unfinished checkpoints are skipped; unreadable
    or corrupted ones make it fall back to older checkpoints. Raises NoCheckpointError if there is
    no complete checkpoint, CheckpointError (one line) if none of them is readable."""
    steps = sorted(mngr.all_steps(), reverse=True)
    # `shardings` (a tree like `like`, e.g. hrm_jax.sharding's state_sharding): restore each array
    # straight onto its devices (needed with several processes)
    # (None: the default device, also for a checkpoint saved from several devices)
    if shardings is None:
        shardings = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), like)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                            to_saveable(like), shardings)
    errors = []
    complete = 0
    for step in steps:
        if _unfinished(step_dir(mngr, step)):
            continue
        complete += 1
        try:
            with open(os.path.join(step_dir(mngr, step), DIGEST_FILE)) as fh:
                expected = fh.read().strip()
            saved = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as exc:  # corrupted/truncated files, or another config's shapes
            msg = str(exc).splitlines()[0] if str(exc) else ""
            errors.append(f"step {step}: {type(exc).__name__}: {msg[:160]}")
            continue
        if state_digest(saved) != expected:
            errors.append(f"step {step}: contents differ from the digest written at save time (corrupted)")
            continue
        return step, from_saveable(saved, like)
    if not complete:
        raise NoCheckpointError(f"no complete checkpoint in {mngr.directory}")
    raise CheckpointError("no readable checkpoint in " + str(mngr.directory) + " (" + "; ".join(errors)[:600] + ")")


def discard_newer(directory: str, step: int) -> list[str]:
    """Before a resumed run continues from `step`: remove unfinished step directories newer than
    it and move unreadable ones aside to `<step>.corrupt` (they would block re-saving that step).
    Returns one line per directory touched. Call before creating the manager that saves."""
    notes = []
    if not os.path.isdir(directory):
        return notes
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if ".orbax-checkpoint-tmp" in name and os.path.isdir(path):  # a save killed before its rename
            shutil.rmtree(path)
            notes.append(f"removed unfinished checkpoint {path}")
            continue
        if not (name.isdigit() and int(name) > step and os.path.isdir(path)):
            continue
        why = _unfinished(path)
        if why:
            shutil.rmtree(path)
            notes.append(f"removed unfinished checkpoint {path} ({why})")
        else:
            dest = path + ".corrupt"
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.replace(path, dest)
            notes.append(f"moved unreadable checkpoint {path} to {dest}")
    return notes
