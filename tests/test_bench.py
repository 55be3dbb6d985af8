"""experiments/bench.py: the shared helpers and the `env` subcommand (no timed assertions)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from experiments import bench

ROOT = Path(__file__).resolve().parents[1]


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
    t = bench.time_fn(f, jnp.ones((8, 8)), repeats=3, warmup=1)
    assert set(t) >= {"compile_s", "median_s", "min_s", "all_s", "median_cpu_s"}
    assert len(t["all_s"]) == 3 and t["min_s"] <= t["median_s"]

    def plain(x):  # not jitted: first call is the "compile"
        calls.append(1)
        return x + 1

    t = bench.time_fn(plain, jnp.ones(3), repeats=2, warmup=2)
    assert len(calls) == 1 + 2 + 2 and len(t["all_s"]) == 2
    with pytest.raises(ValueError):
        bench.time_fn(plain, 1, repeats=0)


def test_registry_and_helpers(tmp_path):
    assert "env" in bench.SUBCOMMANDS
    with pytest.raises(ValueError):
        bench.register("env", "again", lambda p: None, lambda a: {})
    table = bench.format_table(["a", "bb"], [["x", 1.5], ["yyy", 22]])
    lines = table.splitlines()
    assert lines[0].startswith("a") and set(lines[1]) <= {"-", " "} and len(lines) == 4
    assert bench.fmt_rate(12_345_678) == "12.35M" and bench.fmt_rate(999) == "999.0"
    info = bench.machine_info()
    assert info["backend"] == jax.default_backend() and info["cpu_count"] >= 1
    p = tmp_path / "sub" / "x.json"
    bench.write_json(str(p), {"a": jnp.arange(3), "nan": float("nan")})
    assert json.loads(p.read_text()) == {"a": [0, 1, 2], "nan": None}
