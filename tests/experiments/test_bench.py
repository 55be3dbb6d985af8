"""experiments/bench/: the shared helpers and the `env` subcommand (no timed assertions)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from experiments import bench
from experiments.bench import cli, presets, registry, report, timing
from hrm_jax import machine

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


def test_env_subcommand_writes_json(tmp_path):
    out_path = tmp_path / "bench_env.json"
    out = subprocess.run([sys.executable, "-m", "experiments.bench", "env", "--sizes", "1,8", "--steps", "5",
                          "--repeats", "2", "--minihack-seconds", "0.3", "--json", str(out_path)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("machine:", "jax 0.", "backend cpu", "load average", "Targets at 8 envs", "steps/s"):
        assert text in out.stdout
    d = json.loads(out_path.read_text())
    assert d["subcommand"] == "env"
    m = d["machine"]
    for k in ("cpu_model", "cpu_count", "cpus_usable", "loadavg", "jax", "jaxlib", "backend", "devices"):
        assert k in m
    assert len(m["loadavg"]) == 3 and d["loadavg_end"] is not None
    assert d["config"]["sizes"] == [1, 8] and d["config"]["steps"] == 5 and d["config"]["repeats"] == 2
    res = d["results"]
    rows = res["rows"]
    assert {(r["env"], r["n_envs"]) for r in rows} == {(e, n) for e in ("four_rooms", "corridor_maze") for n in (1, 8)}
    for r in rows:
        assert r["compile_s"] > 0 and r["median_s"] > 0 and len(r["all_s"]) == 2 and r["median_cpu_s"] >= 0
        assert r["steps_per_s"] == pytest.approx(r["n_envs"] * r["steps"] / r["median_s"])
    mh = res["minihack"]
    if mh["available"]:
        for name in ("four_rooms", "corridor_maze"):
            assert mh[name]["steps_per_s"] > 0 and mh[name]["observation_keys"] == ["chars", "blstats"]
        assert all(r["ratio_vs_minihack"] > 0 for r in rows)
        assert "MiniHack (four_rooms map)" in out.stdout
    else:
        assert "unavailable" in out.stdout
    assert res["target_n_envs"] == 8
    assert len(res["targets"]) == 4 and all(t["n_envs"] == 8 for t in res["targets"])
    assert ("PASS" in out.stdout) or ("MISS" in out.stdout)


def test_env_subcommand_without_minihack(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "minihack", None)  # `import minihack` now raises ImportError
    out_path = tmp_path / "b.json"
    assert bench.main(["env", "--envs", "four_rooms", "--sizes", "2", "--steps", "2", "--repeats", "1",
                       "--json", str(out_path)]) == 0
    text = capsys.readouterr().out
    assert "MiniHack unavailable: ModuleNotFoundError" in text
    d = json.loads(out_path.read_text())
    assert d["results"]["minihack"]["available"] is False
    assert d["results"]["rows"][0]["ratio_vs_minihack"] is None
    assert [t["pass"] for t in d["results"]["targets"]][1] is None


@pytest.mark.parametrize("flags", [["env", "--sizes", "0"], ["env", "--sizes", "a,b"], ["env", "--repeats", "0"],
                                   ["nope"], [], ["env", "--envs", "nope"]])
def test_bad_flags_exit_2(flags):
    out = subprocess.run([sys.executable, "-m", "experiments.bench", *flags], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)


def test_time_fn_excludes_compile_and_counts_repeats():
    f = jax.jit(lambda x: jnp.sin(x) @ x)
    calls = []
    t = timing.time_fn(f, jnp.ones((8, 8)), repeats=3, warmup=1)
    assert set(t) >= {"compile_s", "median_s", "min_s", "all_s", "median_cpu_s"}
    assert len(t["all_s"]) == 3 and t["min_s"] <= t["median_s"]

    def plain(x):  # not jitted: first call is the "compile"
        calls.append(1)
        return x + 1

    t = timing.time_fn(plain, jnp.ones(3), repeats=2, warmup=2)
    assert len(calls) == 1 + 2 + 2 and len(t["all_s"]) == 2
    with pytest.raises(ValueError):
        timing.time_fn(plain, 1, repeats=0)


class _SlowFirstCall:
    """Stands in for a jitted function: `.lower(...).compile()` gives a program whose first call pays
    a one-time cost (0.5 s) and whose later calls cost next to nothing."""

    def __init__(self):
        self.calls = 0

    def lower(self, *args):
        return self

    def compile(self):
        return self

    def __call__(self, x):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        return x


@pytest.mark.parametrize("warmup", [0, 1])
def test_steady_state_excludes_the_first_call(warmup):
    """The defect `bench train --presets paper` had: with no warm-up call the first call's one-time
    cost landed in the timed calls. Now it is made apart and reported as first_call_s."""
    f = _SlowFirstCall()
    t = timing.time_fn(f, jnp.ones(3), repeats=3, warmup=warmup)
    assert f.calls == 1 + warmup + 3 and t["warmup"] == warmup
    assert t["first_call_s"] >= 0.5 and max(t["all_s"]) < 0.5 and t["median_s"] < 0.5


def test_round_robin_makes_each_first_call_once():
    x = jnp.ones(3)
    fresh, called = _SlowFirstCall(), _SlowFirstCall()
    call, info = timing.compile_fn(called, x)
    _, info = timing.first_call(call, (x,), info)  # as `train` does with the chunk (it needs the output)
    tt = timing.time_round_robin({"fresh": (fresh, (x,)), "called": (call, (x,), info)}, repeats=2, warmup=0)
    assert fresh.calls == called.calls == 1 + 2
    for name in ("fresh", "called"):
        assert tt[name]["first_call_s"] >= 0.5 and max(tt[name]["all_s"]) < 0.5


def test_registry_and_helpers(tmp_path):
    assert "env" in bench.SUBCOMMANDS
    with pytest.raises(ValueError):
        registry.register("env", "again", lambda p: None, lambda a: {})
    table = report.format_table(["a", "bb"], [["x", 1.5], ["yyy", 22]])
    lines = table.splitlines()
    assert lines[0].startswith("a") and set(lines[1]) <= {"-", " "} and len(lines) == 4
    # numbers right-aligned, text left-aligned, also text that starts with "-" (an XLA flag)
    lines = report.format_table(["flags", "x"], [["(none)", "1.000x"], ["--xla_a=true", "-0.5"], ["-", ".5"]]).splitlines()
    assert lines[2] == "(none)        1.000x" and lines[3] == "--xla_a=true    -0.5" and lines[4] == "-                 .5"
    assert report.fmt_rate(12_345_678) == "12.35M" and report.fmt_rate(999) == "999.0"
    info = machine.machine_info()
    assert info["backend"] == jax.default_backend() and info["cpu_count"] >= 1
    p = tmp_path / "sub" / "x.json"
    report.write_json(str(p), {"a": jnp.arange(3), "nan": float("nan")})
    assert json.loads(p.read_text()) == {"a": [0, 1, 2], "nan": None}


# ---- model / compile / train / seeds / learn (issue #9): one tiny run, many checks ------------------

TINY_FLAGS = ["--presets", "tiny", "--iterations", "2", "--seed-counts", "1,2", "--repeats", "1", "--warmup", "0",
              "--max-minutes", "0.01", "--eval-envs", "4", "--total-grad-steps", "40,80", "--gemm-size", "64",
              "--xla-flags=", "--xla-flags=--xla_cpu_enable_fast_min_max=false"]
SUBS = ["model", "compile", "train", "seeds", "learn", "xla-flags"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`model compile train seeds learn xla-flags` at the tiny preset with tiny sizes, in one process
    (compiles dominate its runtime; xla-flags starts one `train` process per flag set)."""
    out_path = tmp_path_factory.mktemp("bench") / "bench_all.json"
    out = subprocess.run([sys.executable, "-m", "experiments.bench", *SUBS, *TINY_FLAGS, "--json", str(out_path)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout, json.loads(out_path.read_text())


def _timing_ok(t, repeats=1):
    assert t["compile_s"] > 0 and t["median_s"] > 0 and len(t["all_s"]) == repeats and t["repeats"] == repeats
    assert len(t["loadavg"]) == 3


def test_multi_run_json_layout(tiny_run):
    text, d = tiny_run
    assert d["subcommand"] == "+".join(SUBS)
    assert d["subcommands"] == SUBS
    for name in d["subcommands"]:
        assert d["config"][name]["presets"] == ["tiny"] and d["config"][name]["repeats"] == 1
        assert len(d["results"][name]["loadavg_start"]) == 3 and len(d["results"][name]["loadavg_end"]) == 3
        assert f"===== {name} =====" in text
    assert d["config"]["train"]["iterations"] == 2 and d["config"]["seeds"]["seed_counts"] == [1, 2]
    assert d["config"]["learn"]["max_minutes"] == 0.01 and d["config"]["compile"]["total_grad_steps"] == [40, 80]
    assert d["machine"]["backend"] == "cpu" and "backend cpu" in text and "load average" in text


def test_model_fields(tiny_run):
    from hrm_jax.config import preset
    from hrm_jax.models.flops import act_flops, grad_step_flops
    text, d = tiny_run
    res = d["results"]["model"]
    (c,) = res["cases"]
    m, t = preset("tiny").model, preset("tiny").train
    N, B = t.num_envs, t.batch_size
    assert c["preset"] == "tiny" and c["num_envs"] == N and c["batch_size"] == B and c["obs_len"] == 121
    for what, fl in (("act", act_flops(m, 121, N)), ("update", grad_step_flops(m, 121, B))):
        r = c[what]
        _timing_ok(r)
        assert r["flops_analytic"] == fl
        assert r["flops_per_s"] == pytest.approx(fl / r["median_s"])
        # XLA also counts elementwise work, and the loop-free program is the same computation
        assert 0.9 * fl <= r["flops_xla_loop_free"] <= 1.5 * fl
        assert r["flops_xla_as_compiled"] > 0
    g = c["gemm"]
    D = m.hidden
    assert g["shape"] == [N * 122, D, 4 * D] and g["flops"] == 2 * N * 122 * D * 4 * D
    assert c["act_vs_gemm"] == pytest.approx(c["act"]["flops_per_s"] / g["flops_per_s"])
    assert res["square_gemm"]["float32"]["shape"] == [64, 64, 64]
    (tg,) = res["targets"]
    assert tg["pass"] == (tg["value"] >= 0.5) and ("PASS" in text or "MISS" in text)
    assert res["peer"] is None and "paper preset, which was not measured" in text


def test_compile_fields(tiny_run):
    from hrm_jax.config import preset
    t = preset("tiny").train
    _, d = tiny_run
    res = d["results"]["compile"]
    rows = res["rows"]
    assert [r["total_grad_steps"] for r in rows] == [40, 80]
    assert [r["num_chunks"] for r in rows] == [-(-40 // t.eval_every), -(-80 // t.eval_every)]
    assert all(r["eval_every"] == t.eval_every and r["compile_s"] > 0 for r in rows)
    assert all(r["iters_per_chunk"] == t.eval_every // t.grad_steps_per_collect for r in rows)
    # the chunk is the same program whatever the run length
    assert rows[0]["hlo_sha256"] == rows[1]["hlo_sha256"] and all(r["same_program"] for r in rows)
    (tg,) = res["targets"]
    assert tg["same_program"] is True and tg["pass"] == (tg["value"] <= 60.0)


def test_train_fields(tiny_run):
    from hrm_jax.config import preset
    t = preset("tiny").train
    N, G = t.num_envs, t.grad_steps_per_collect
    text, d = tiny_run
    (c,) = d["results"]["train"]["cases"]
    assert c["iterations"] == 2 and c["eval_envs"] == 4 and c["grad_steps_per_collect"] == G
    _timing_ok(c["chunk"])
    _timing_ok(c["evaluate"])
    for piece in ("act", "env_step", "learn_minibatch"):
        _timing_ok(c["pieces"][piece])
    assert c["transitions_per_s"] == pytest.approx(N * 2 / c["train_s"])
    assert c["grad_steps_per_s"] == pytest.approx(G * 2 / c["train_s"])
    assert c["iteration_s"] == pytest.approx(c["train_s"] / 2)
    assert sum(c["shares"].values()) == pytest.approx(1.0)
    assert c["pieces"]["sum_vs_iteration"] == pytest.approx(c["pieces"]["sum_s"] / c["iteration_s"])
    # the chunk really ran 2 iterations from the prefilled state
    prefill = -(-max(t.batch_size, t.learning_starts) // N)
    assert c["final_metrics"]["grad_steps"] == 2 * G and c["final_metrics"]["env_steps"] == N * (prefill + 2)
    assert d["results"]["train"]["peer"] == [] and "Where an iteration's time goes" in text


def test_first_calls_reported_apart(tiny_run):
    """Every timing of the tiny run (--warmup 0) made the first call apart from the timed ones."""
    text, d = tiny_run
    (c,) = d["results"]["train"]["cases"]
    for t in (c["chunk"], c["evaluate"], *(c["pieces"][p] for p in ("act", "env_step", "learn_minibatch"))):
        assert t["first_call_s"] > 0 and t["warmup"] == 0
    (m,) = d["results"]["model"]["cases"]
    assert all(m[w]["first_call_s"] > 0 for w in ("act", "update", "gemm"))
    assert all(r["first_call_s"] > 0 for r in d["results"]["seeds"]["rows"])
    assert "first call s" in text


def test_seeds_fields(tiny_run):
    _, d = tiny_run
    res = d["results"]["seeds"]
    rows = res["rows"]
    # both loops at each count, timed round robin
    assert [(r["seeds"], r["seed_loop"]) for r in rows] == [(1, "vmap"), (1, "map"), (2, "vmap"), (2, "map")]
    by = {(r["seed_loop"], r["seeds"]): r for r in rows}
    for r in rows:
        _timing_ok(r)
        assert r["round_robin"] == ["vmap", "map"]
        assert r["per_seed_s"] == pytest.approx(r["median_s"] / r["seeds"])
        assert r["vs_one_seed"] == pytest.approx(r["median_s"] / by[(r["seed_loop"], 1)]["median_s"])
        assert r["vs_vmap"] == pytest.approx(r["median_s"] / by[("vmap", r["seeds"])]["median_s"])
    assert by[("vmap", 1)]["vs_one_seed"] == 1.0 and by[("map", 2)]["vs_vmap"] > 0
    (tg,) = res["targets"]
    assert tg["seed_loop"] == "vmap"  # the tiny preset's own loop
    assert tg["pass"] is None and tg["value"] is None  # 8 seeds not measured


def test_learn_fields(tiny_run):
    text, d = tiny_run
    (r,) = d["results"]["learn"]["runs"]
    assert r["preset"] == "tiny" and r["threshold"] == 0.95 and r["sustain"] == 2 and r["compile_s"] > 0
    assert (r["model"], r["algo"], r["agent"]) == ("hrm", "dqn", 0)
    assert len(r["curve"]) >= 1 and r["curve"][0]["grad_steps"] == r["eval_every"]
    assert r["best_success"] == max(p["eval_success"] for p in r["curve"])
    assert set(r["success_at"]) == {"15", "60"}
    if r["held"] is not None:
        assert all(p["eval_success"] >= 0.95 for p in r["curve"][-2:]) and r["held"]["grad_steps"] == r["curve"][-1]["grad_steps"]
    else:
        assert "success >= 0.95 at 2 evaluations in a row" in text


def _fake_trainer(successes):
    """make_train stand-in whose chunk k (1-based) reports greedy success successes[k-1]."""
    import types

    def fake_make_train(cfg):
        def init(key):
            return {"g": jnp.int32(0)}

        def chunk(s):
            g = s["g"] + cfg.train.eval_every
            k = g // cfg.train.eval_every
            return {"g": g}, dict(grad_steps=g, env_steps=g * 3, eval_success=jnp.asarray(successes)[k - 1],
                                  eval_length=jnp.float32(5), eval_optimal=jnp.float32(4), loss=jnp.float32(0.1),
                                  epsilon=jnp.float32(0.5))
        return types.SimpleNamespace(init=init, chunk=chunk)
    return fake_make_train


def test_learn_stops_once_the_threshold_is_held(monkeypatch, capsys, tmp_path):
    """A fake trainer whose success goes 0.2, 0.6, 0.4, 0.6, 0.8, ...: 0.6 once does not count; the
    run stops at the second of two evaluations in a row >= 0.5 (chunk 5), per seed."""
    import hrm_jax.algos.dqn as T

    monkeypatch.setattr(T, "make_train", _fake_trainer([0.2, 0.6, 0.4, 0.6, 0.8, 0.9, 0.9, 0.9]))
    out_path = tmp_path / "learn.json"
    assert bench.main(["learn", "--presets", "tiny", "--threshold", "0.5", "--eval-every", "10", "--seeds", "2",
                       "--models", "hrm,mlp", "--json", str(out_path)]) == 0
    runs = json.loads(out_path.read_text())["results"]["runs"]
    assert [(r["model"], r["agent"]) for r in runs] == [("hrm", 0), ("hrm", 1), ("mlp", 0), ("mlp", 1)]
    for r in runs:
        assert r["held"]["grad_steps"] == 50 and r["held"]["env_steps"] == 150 and len(r["curve"]) == 5
        assert r["success_at"] == {"15": None, "60": None}  # stopped (held) within seconds
        assert r["eval_every"] == 10
    assert "success >= 0.50 at 2 evaluations in a row" in capsys.readouterr().out


def test_learn_success_at_fixed_wall_times():
    from experiments.bench.learn import success_at

    curve = [dict(wall_time_s=60.0 * m, eval_success=v) for m, v in ((5, 0.1), (10, 0.5), (14, 0.7), (20, 0.9))]
    assert success_at(curve, 15, 60, None) == 0.7     # the last evaluation before 15 min
    assert success_at(curve, 60, 20, None) is None    # 60 min is past --max-minutes
    assert success_at(curve, 60, 60, {"grad_steps": 1}) is None  # stopped early, held: not measured
    assert success_at(curve, 2, 60, None) == 0.0      # nothing evaluated yet


def test_parse_multi_and_all():
    parser = cli.build_parser()
    spaces = cli._parse_multi(parser, ["all"], ["--with-learn", "--repeats", "2", "--presets", "tiny"])
    assert [s.subcommand for s in spaces] == [*cli.ALL_ORDER, "learn"]
    assert all(s.repeats == 2 for s in spaces)
    assert spaces[0].subcommand == "env" and not hasattr(spaces[0], "presets")
    assert all(s.presets == ["tiny"] for s in spaces[1:])
    spaces = cli._parse_multi(parser, ["train", "seeds"], ["--iterations", "3"])
    assert [s.iterations for s in spaces] == [3, 3]
    assert spaces[0].presets == ["cpu", "s1", "paper"] and spaces[1].presets == ["cpu"]  # each its own defaults
    s1 = presets.bench_presets()["s1"]  # the authors' S1 (measurements.md), with their loop shape
    assert (s1.model.hidden, s1.model.H_layers, s1.model.L_layers, s1.model.H_cycles, s1.model.L_cycles,
            s1.model.segments_per_step) == (64, 1, 1, 1, 2, 2)
    assert (s1.train.num_envs, s1.train.batch_size, s1.train.grad_steps_per_collect) == (64, 64, 8)


@pytest.mark.parametrize("flags", [["model", "--presets", "nope"], ["train", "seeds", "--bogus", "1"],
                                   ["model", "train", "--with-learn"], ["seeds", "--seed-counts", "0"], ["seeds", "--seed-loops", "pmap"],
                                   ["learn", "--max-minutes", "0"], ["learn", "--threshold", "2", "--presets", "tiny"],
                                   ["learn", "--models", "rnn"], ["learn", "--at-minutes", "0"]])
def test_bad_bench_flags_exit_2(flags):
    out = subprocess.run([sys.executable, "-m", "experiments.bench", *flags], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)


def test_xla_flags_fields(tiny_run):
    text, d = tiny_run
    rows = d["results"]["xla-flags"]["rows"]
    assert [r["xla_flags"] for r in rows] == ["", "--xla_cpu_enable_fast_min_max=false"]
    assert all(r["preset"] == "tiny" and r["grad_steps_per_s"] > 0 and r["compile_s"] > 0 for r in rows)
    assert rows[0]["vs_first"] == 1.0
    assert rows[1]["vs_first"] == pytest.approx(rows[1]["grad_steps_per_s"] / rows[0]["grad_steps_per_s"])
    assert "Training chunk per XLA_FLAGS" in text and "--xla_cpu_enable_fast_min_max=false" in text


@pytest.mark.parametrize("args, needle", [
    (["--xla-flags=--no_such_xla_flag"], "XLA_FLAGS='--no_such_xla_flag': the training run failed"),
    (["--xla-flags=", "--xla-flags="], "--xla-flags: a value is repeated"),
])
def test_xla_flags_bad_input_one_line(args, needle):
    out = subprocess.run([sys.executable, "-m", "experiments.bench", "xla-flags", "--presets", "tiny", "--repeats", "1",
                          *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    err = [l for l in out.stderr.splitlines() if l.strip() and "Warning" not in l]
    assert needle in err[-1], out.stderr[-2000:]
