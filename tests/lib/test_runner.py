"""The run driver's config helpers (hrm_jax.runner): a resumed run can only be extended, and a
`full` z run's replay is capped to a memory budget sized from the env's observation length.
The driver's training loop is tested through its command (tests/experiments/test_run.py and test_reliability.py)."""
import pytest

from hrm_jax import config as C
from hrm_jax import runner
from hrm_jax.acting import make_env
from hrm_jax.models import stored_z_shape
from hrm_jax.replay import transition_bytes


def test_extended_raises_the_total_and_refuses_to_lower_it():
    longer = runner.extended(C.TINY, 80)
    assert longer.train.total_grad_steps == 80 and longer.differing_fields(C.TINY) == ["train.total_grad_steps"]
    with pytest.raises(C.ConfigError, match="total_grad_steps=20 is below the run's 40; a resumed run can only be extended"):
        runner.extended(C.TINY, 20)


@pytest.mark.parametrize("env", ["four_rooms", "corridor_maze"])
def test_full_z_capacity_is_capped_from_the_envs_observation_length(env, capsys):
    cfg = C.validate(C.override(C.override(C.TINY, "model", z_carry="full"), "env", name=env))
    obs_len = make_env(cfg.env)[0].obs_len
    per = transition_bytes(obs_len, stored_z_shape(cfg.model, obs_len))
    capped = runner.cap_full_z_capacity(cfg, budget_bytes=100 * per)
    assert capped.train.buffer_capacity == 100 < cfg.train.buffer_capacity
    assert f"buffer_capacity capped {cfg.train.buffer_capacity} -> 100" in capsys.readouterr().err
    assert runner.cap_full_z_capacity(cfg, budget_bytes=10 ** 12) == cfg  # fits: unchanged
    reset = C.override(cfg, "model", z_carry="reset")
    assert runner.cap_full_z_capacity(reset, budget_bytes=per) == reset  # only `full` stores whole z
