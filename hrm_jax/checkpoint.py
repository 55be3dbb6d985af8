"""Checkpoints of the whole train state (parameters, optimiser, replay buffer, env states, RNG
keys) with orbax. Orbax writes each step into a temporary directory and renames it when complete,
so a run killed mid-save never leaves a half-written checkpoint that looks like the latest.

Typed PRNG keys are stored as their raw uint32 data and re-wrapped on restore.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incompatible or unreadable (one-line message)."""


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


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
    mngr.save(step, args=ocp.args.StandardSave(to_saveable(state)), force=True)
    mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, like: Any) -> tuple[int, Any]:
    """Restore the newest complete checkpoint into the structure of `like` (a state or its
    abstract shapes). Falls back to older checkpoints if the newest is unreadable."""
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        raise CheckpointError(f"no checkpoint found in {mngr.directory}")
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), to_saveable(like))
    errors = []
    for step in steps:
        try:
            saved = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
            return step, from_saveable(saved, like)
        except Exception as exc:  # corrupted/truncated files: try the previous checkpoint
            errors.append(f"step {step}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise CheckpointError("no readable checkpoint in " + str(mngr.directory) + " (" + "; ".join(errors)[:400] + ")")
