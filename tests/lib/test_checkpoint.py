"""Checkpoints (hrm_jax.checkpoint): a saved state restores bit for bit, PRNG keys included; the
newest complete checkpoint wins, an unfinished one is skipped, a corrupted one falls back to an
older one, and `discard_newer` clears what a resumed run would trip over."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrm_jax import checkpoint as ckpt


def state(x: float) -> dict:
    return {"w": jnp.full((3,), x, jnp.float32), "n": jnp.asarray(int(x), jnp.int32), "key": jax.random.key(int(x))}


def assert_same(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["w"], b["w"])
    np.testing.assert_array_equal(a["n"], b["n"])
    np.testing.assert_array_equal(jax.random.key_data(a["key"]), jax.random.key_data(b["key"]))


def saved(tmp_path: Path, steps=(10, 20)):
    mngr = ckpt.manager(str(tmp_path), keep=len(steps))
    for s in steps:
        ckpt.save(mngr, s, state(s / 10))
    return mngr


def test_restore_latest_round_trips_the_newest_state_and_its_keys(tmp_path):
    step, got = ckpt.restore_latest(saved(tmp_path), state(0.0))
    assert step == 20
    assert_same(got, state(2.0))
    assert jnp.issubdtype(got["key"].dtype, jax.dtypes.prng_key)


def test_an_unfinished_checkpoint_is_skipped_then_removed(tmp_path):
    mngr = saved(tmp_path)
    (tmp_path / "20" / ckpt.DIGEST_FILE).unlink()  # killed before the save completed
    step, got = ckpt.restore_latest(mngr, state(0.0))
    assert step == 10
    assert_same(got, state(1.0))
    notes = ckpt.discard_newer(str(tmp_path), 10)
    assert notes == [f"removed unfinished checkpoint {tmp_path / '20'} (no digest: killed before the save completed)"]
    assert not (tmp_path / "20").exists()


def test_a_corrupted_checkpoint_falls_back_to_an_older_one_and_is_moved_aside(tmp_path):
    mngr = saved(tmp_path)
    (tmp_path / "20" / ckpt.DIGEST_FILE).write_text("0" * 64 + "\n")  # contents no longer match the digest
    step, got = ckpt.restore_latest(mngr, state(0.0))
    assert step == 10
    assert_same(got, state(1.0))
    assert ckpt.discard_newer(str(tmp_path), 10) == [f"moved unreadable checkpoint {tmp_path / '20'} to {tmp_path / '20'}.corrupt"]


def test_no_complete_checkpoint_raises_no_checkpoint_error(tmp_path):
    with pytest.raises(ckpt.NoCheckpointError, match="no complete checkpoint"):
        ckpt.restore_latest(ckpt.manager(str(tmp_path), keep=1), state(0.0))
