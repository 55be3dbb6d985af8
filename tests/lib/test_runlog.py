"""The run summary (hrm_jax.runlog): when the learning target (greedy success >= 0.95 at two
consecutive evaluations) was held, per seed."""
from hrm_jax import runlog
from hrm_jax.config import TINY


def test_held_threshold_is_the_evaluation_that_completes_the_run(metric_rows):
    # 0.96 alone (then 0.5) does not count; 0.97, 0.99 does, known at the second of them (400 steps)
    assert runlog.held_threshold(metric_rows(0, [0.96, 0.5, 0.97, 0.99, 0.2])) == dict(
        grad_steps=400, env_steps=4000, wall_time_s=6.0)
    assert runlog.held_threshold(metric_rows(0, [0.5, 0.97])) is None
    assert runlog.held_threshold(metric_rows(0, [0.95, 0.95]))["grad_steps"] == 200  # at the threshold counts
    assert runlog.held_threshold(metric_rows(0, [0.9, 0.96, 0.97, 0.98]), evaluations=3)["grad_steps"] == 400


def test_summary_reports_held_per_seed(metric_rows):
    rows = metric_rows(0, [0.5, 0.97, 0.98]) + metric_rows(1, [0.5, 0.6, 0.99])
    for r in rows:
        r.update(grad_steps=r["grad_steps"], env_steps=r["env_steps"])
    s = runlog.summarize(TINY, rows, 100, 9.0)
    assert s["held"]["threshold"] == 0.95 and s["held"]["evaluations"] == 2
    assert s["held"]["by_seed"] == {"0": dict(grad_steps=300, env_steps=3000, wall_time_s=4.5), "1": None}
    assert [p["success"] for p in s["seeds"]] == [0.98, 0.99]
