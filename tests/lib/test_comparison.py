"""Comparing the conditions of a sweep (hrm_jax.comparison): threshold crossings, seed pairs,
the mean success over evaluation points, comparison.md and the figure's title."""
import json

import pytest

from hrm_jax import comparison


def test_threshold_crossing_on_synthetic_curves(metric_rows):
    rows = metric_rows(0, [0.5, 0.91, 0.96, 0.94, 0.995]) + metric_rows(1, [0.2, 0.95, 0.3, 0.5, 0.6])
    assert comparison.first_crossing(metric_rows(0, [0.5, 0.91, 0.96]), 0.95) == dict(grad_steps=300, env_steps=3000, wall_time_s=4.5)
    assert comparison.first_crossing(metric_rows(0, [0.5, 0.91]), 0.95) is None
    cr = comparison.crossings_by_seed(rows)
    assert cr[0]["0.90"]["grad_steps"] == 200 and cr[0]["0.95"]["grad_steps"] == 300 and cr[0]["0.99"]["grad_steps"] == 500
    assert cr[1]["0.90"]["grad_steps"] == 200 and cr[1]["0.95"]["grad_steps"] == 200 and cr[1]["0.99"] is None
    reset = comparison.crossings_by_seed(metric_rows(0, [0.1, 0.2, 0.3, 0.96]) + metric_rows(1, [0.1, 0.95]) + metric_rows(2, [0.0]))
    carry = comparison.crossings_by_seed(rows + metric_rows(2, [0.0]))
    res = comparison.before_baseline(carry, reset)
    assert [p["verdict"] for p in res["per_seed"]] == ["condition first", "tie", "neither reached"]
    assert (res["condition_first"], res["ties"], res["neither"], res["pairs"]) == (1, 1, 1, 3)
    assert comparison.before_baseline(reset, carry)["baseline_first"] == 1
    # --sustain 2: a threshold must hold at two consecutive evaluations; the first of them counts
    held = comparison.crossings_by_seed(rows, sustain=2)
    assert held[0]["0.90"]["grad_steps"] == 200 and held[0]["0.95"] is None and held[0]["0.99"] is None
    assert held[1]["0.90"] is None  # 0.95 once, then 0.3
    assert comparison.first_crossing(metric_rows(0, [0.96, 0.5, 0.97, 0.99, 0.2]), 0.95, sustain=2)["grad_steps"] == 300
    assert comparison.first_crossing(metric_rows(0, [0.5, 0.97]), 0.95, sustain=2) is None  # the last point alone


def test_mean_success_pairs_on_synthetic_curves(metric_rows):
    carry = comparison.mean_success_by_seed(metric_rows(0, [0.2, 0.4, 0.6]) + metric_rows(1, [0.1, 0.1]) + metric_rows(2, [0.5]))
    reset = comparison.mean_success_by_seed(metric_rows(0, [0.0, 0.3, 0.9]) + metric_rows(1, [0.0, 0.4]) + metric_rows(2, [0.5]))
    assert carry == pytest.approx({0: 0.4, 1: 0.1, 2: 0.5}) and reset == pytest.approx({0: 0.4, 1: 0.2, 2: 0.5})
    res = comparison.above_baseline({0: 0.45, 1: 0.1, 2: 0.5}, reset)
    assert [p["verdict"] for p in res["per_seed"]] == ["condition higher", "baseline higher", "tie"]
    assert (res["condition_higher"], res["baseline_higher"], res["ties"], res["pairs"]) == (1, 1, 1, 3)


def test_compare_writes_table_and_figure(tmp_path, metric_rows):
    for c, rows in (("last_token", metric_rows(0, [0.5, 0.96]) + metric_rows(1, [0.5, 0.7])),
                    ("reset", metric_rows(0, [0.5, 0.97]) + metric_rows(1, [0.96, 0.99]))):
        d = tmp_path / c
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "config.json").write_text(json.dumps(dict(env=dict(name="four_rooms"), model=dict(z_carry=c))))
    res = comparison.compare(str(tmp_path), ["last_token", "reset"])
    assert res["baseline"] == "reset" and res["before_baseline"]["last_token"]["condition_first"] == 0
    assert res["before_baseline"]["last_token"]["ties"] == 1 and "4 of 5" in res["paper"]
    md = (tmp_path / "comparison.md").read_text()
    assert md.startswith("# Carry Z (last_token) vs Reset Z: four_rooms")
    assert "not reached" in md and "| Carry Z (last_token) | 0 | 200 | 2,000 | 3.0 |" in md
    assert "| Carry Z (last_token) | 0.730, 0.600 | 0.665 |" in md and "in **0 of 2** seed pairs" in md
    assert "  - seed 1: Carry Z (last_token) not reached, Reset Z 100 -> Reset Z first" in md
    assert (tmp_path / "comparison.png").stat().st_size > 0
    assert json.loads((tmp_path / "comparison.json").read_text())["conditions"]["reset"]["seeds"] == 2
    res = comparison.compare(str(tmp_path), ["last_token", "reset"], sustain=2)
    assert res["sustain"] == 2 and res["before_baseline"]["last_token"]["per_seed"][1]["verdict"] == "baseline first"
    md = (tmp_path / "comparison.md").read_text()
    assert "## First of 2 consecutive evaluation points (`--sustain 2`) with greedy success >= 95%" in md


def test_figure_title_names_the_runs_preset_and_changes(tmp_path):
    from dataclasses import replace

    from hrm_jax import config as C

    cfg = C.override(C.override(C.FIXED_GOAL, "env", name="corridor_maze", goal_row=9), "train", seeds=5,
                     total_grad_steps=12_000)
    (tmp_path / "config.json").write_text(json.dumps(replace(cfg, model=replace(cfg.model, z_carry="reset")).to_dict()))
    assert comparison.run_title(str(tmp_path)) == "corridor_maze (fixed_goal preset + goal_row=9, total_grad_steps=12000)"
    (tmp_path / "config.json").write_text(json.dumps(C.RANDOM_GOAL.to_dict()))
    assert comparison.run_title(str(tmp_path)) == "four_rooms (random_goal preset)"
    # the fifth changed field is named too (a cap of 4 used to hide eps_end here)
    five = C.override(C.override(C.override(cfg, "model", q_head="agent_token_linear", pos_encoding="rope+learned2d"),
                                 "train", eps_end=0.1), "model", z_carry="last_token")
    (tmp_path / "config.json").write_text(json.dumps(five.to_dict()))
    assert comparison.run_title(str(tmp_path)) == (
        "corridor_maze (fixed_goal preset + goal_row=9, pos_encoding=rope+learned2d, q_head=agent_token_linear, "
        "total_grad_steps=12000, eps_end=0.1)")
    many = C.override(five, "train", lr=5e-4, gamma=0.9, batch_size=32, num_envs=16, polyak=0.95, beta2=0.99,
                      eval_envs=64, warmup_steps=100, buffer_capacity=4096)
    (tmp_path / "config.json").write_text(json.dumps(many.to_dict()))
    title = comparison.run_title(str(tmp_path))
    assert title.count("=") == comparison.TITLE_FIELDS and title.endswith(" and 2 more)"), title


def test_long_figure_title_is_wrapped_not_cut():
    title = ("corridor_maze (fixed_goal preset + goal_row=9, pos_encoding=rope+learned2d, q_head=agent_token_linear, "
             "total_grad_steps=10000)")
    lines = comparison.figure_title(title).splitlines()
    assert len(lines) == 2 and all(len(line) <= 110 for line in lines)
    assert " ".join(lines) == title                     # every word kept, none split
    assert comparison.figure_title("four_rooms (random_goal preset)") == "four_rooms (random_goal preset)"
