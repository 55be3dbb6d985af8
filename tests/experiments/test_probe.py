"""The supervised probe: its optimal-Q targets, a short regression that must learn, bad input."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import envs
from experiments import probe
from hrm_jax.cli import config_from_args

N, E, S, W = 0, 1, 2, 3
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def test_q_star_next_to_the_goal():
    env, _ = envs.make("four_rooms")
    g = 0.9
    s = env.make_state(start=(11, 10), goal=(11, 11))
    q = np.asarray(probe.q_star(env, s, g))
    assert q[E] == pytest.approx(1.0)                 # onto the goal
    assert q[W] == pytest.approx(g ** 2)             # away: 2 steps left
    assert q[S] == pytest.approx(g ** 1 - 0.01)      # the outer wall: stay, 1 step left
    assert q[N] == pytest.approx(g ** 2)             # (10, 10): 2 steps to the goal
    assert int(np.argmax(q)) == E


def test_q_star_detour_and_cut_off_goal():
    env, _ = envs.make("four_rooms")
    g = 0.95
    # agent west of the wall between the top rooms, goal just east of it: the way is the doorway (3, 6)
    s = env.make_state(start=(1, 5), goal=(1, 7))
    q = np.asarray(probe.q_star(env, s, g))
    assert q[E] == pytest.approx(g ** 6 - 0.01)      # (1, 6) is wall: blocked, 6 steps via (3, 6)
    assert q[S] == pytest.approx(g ** 5)             # (2, 5) is on a shortest path
    # every doorway of the goal's room closed: no way to the goal
    s = env.make_state(start=(1, 1), goal=(11, 11), closed_doors=[(7, 9), (10, 6)])
    q = np.asarray(probe.q_star(env, s, g))
    np.testing.assert_allclose(q, [-0.01, 0.0, 0.0, -0.01])
    # --blocked-reward -0.1: blocked moves carry the configured penalty
    np.testing.assert_allclose(probe.q_star(env, s, g, -0.1), [-0.1, 0.0, 0.0, -0.1], atol=1e-7)
    s = env.make_state(start=(1, 5), goal=(1, 7))
    assert float(probe.q_star(env, s, g, -0.1)[E]) == pytest.approx(g ** 6 - 0.1)


def test_probe_learns_positions(tmp_path):
    out = tmp_path / "probe.json"
    r = subprocess.run([sys.executable, "-m", "experiments.probe", "--preset", "cpu", "--target", "positions",
                        "--steps", "300", "--every", "150", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, env=ENV)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["update"] for row in rows] == [150, 300]
    last = rows[-1]
    assert np.isfinite(last["loss"]) and last["target_var"] > 0.05
    assert last["loss"] < 0.3 * last["target_var"], rows   # a constant predictor's loss is target_var


def test_probe_q_target_rows_and_bad_input(tmp_path, capsys):
    init, update, evaluate = probe.make_probe(
        config_from_args(probe.build_parser().parse_args(["--preset", "tiny"])), "q")
    params, consts, opt, pool = init(jax.random.key(0))
    params, opt, pool, loss, var, acc, chance = update(params, consts, opt, pool, jax.random.key(1))
    assert np.isfinite(float(loss)) and 0.0 <= float(acc) <= 1.0 and float(var) > 0
    assert 0.25 <= float(chance) <= 1.0   # at least one of the 4 moves is optimal in every state
    success, random_success = evaluate(params, consts, jax.random.key(2))
    assert 0.0 <= float(success) <= 1.0 and 0.05 < float(random_success) < 0.5  # four-rooms: ~0.2
    with pytest.raises(SystemExit) as exc:
        probe.main(["--steps", "0"])
    assert exc.value.code == 2
    assert "argument --steps: 0 must be >= 1" in capsys.readouterr().err


def test_optimal_moves_and_their_chance():
    env, _ = envs.make("four_rooms")
    q = probe.q_star(env, env.make_state(start=(11, 10), goal=(11, 11)), 0.95)   # E only
    assert probe.optimal_moves(q[None]).tolist() == [[False, True, False, False]]
    q = probe.q_star(env, env.make_state(start=(9, 9), goal=(11, 11)), 0.95)     # S and E both shorten it
    assert probe.optimal_moves(q[None]).tolist() == [[False, True, True, False]]


def test_trajectory_states_leave_the_start_and_reset_states_do_not():
    """The `<` start marker is visible only once the agent has left its start cell: the default
    pool of walked environments shows it in most states, fresh resets never (the old probe's
    training data)."""
    cfg = config_from_args(probe.build_parser().parse_args(["--preset", "tiny"]))
    from envs.maps import START

    _, _, _, pool = probe.make_probe(cfg, "q", "trajectory")[0](jax.random.key(0))
    shows_start = np.mean(np.any(np.asarray(pool[0]) == START, axis=-1))
    assert shows_start > 0.5, shows_start
    _, _, _, none = probe.make_probe(cfg, "q", "reset")[0](jax.random.key(0))
    assert none is None
    env, params = envs.make("four_rooms")
    obs, _ = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.key(1), 64), params)
    assert not np.any(np.asarray(obs) == START)
