"""Configs (hrm_jax.config): presets round-trip through config.json's dict, validation refuses bad
values in one line, and `closest_preset` names what a config changed."""
import pytest

from hrm_jax import config as C


@pytest.mark.parametrize("name", list(C.PRESETS))
def test_every_preset_is_valid_and_round_trips_through_a_dict(name):
    cfg = C.validate(C.preset(name))
    assert C.Config.from_dict(cfg.to_dict()) == cfg


def test_unknown_preset_names_the_presets():
    with pytest.raises(C.ConfigError, match="preset 'huge' does not exist; choose one of: paper, cpu"):
        C.preset("huge")


def test_validate_refuses_half_a_goal_in_one_line():
    cfg = C.override(C.TINY, "env", goal_row=3)
    with pytest.raises(C.ConfigError) as exc:
        C.validate(cfg)
    assert "give both (a fixed goal cell) or neither" in str(exc.value) and "\n" not in str(exc.value)


def test_closest_preset_names_the_changed_fields():
    cfg = C.override(C.TINY, "train", lr=0.005)
    assert C.closest_preset(cfg) == ("tiny", ["lr=0.005"])
    assert C.closest_preset(cfg, ignore=("train.lr",)) == ("tiny", [])
    assert cfg.differing_fields(C.TINY) == ["train.lr"]


def test_minibatch_rows_per_learner():
    """What a gradient step's minibatch holds (data parallel splits it over devices): the replay
    batch for DQN, a rollout's transitions over pqn_minibatches for PQN."""
    assert C.CPU.train.minibatch_rows == C.CPU.train.batch_size == 64
    pqn = C.override(C.CPU, "train", algo="pqn", pqn_rollout_steps=10, pqn_minibatches=5)
    assert pqn.train.minibatch_rows == 32 * 10 // 5


def test_model_and_algo_flags_are_named_after_what_they_pick():
    from hrm_jax.cli import flag_name

    assert flag_name("model", "arch") == "--model" and flag_name("train", "algo") == "--algo"
    assert flag_name("env", "name") == "--env" and flag_name("train", "eval_net") == "--eval-net"


def test_validate_refuses_fixed_walls_on_four_rooms():
    """Checked once, with the rest of the config (acting.make_env no longer checks it)."""
    with pytest.raises(ValueError, match="fixed_walls=2 applies only to corridor_maze"):
        C.validate(C.override(C.TINY, "env", fixed_walls=2))
    C.validate(C.override(C.TINY, "env", name="corridor_maze", fixed_walls=2))
