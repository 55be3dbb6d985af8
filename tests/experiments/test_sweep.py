"""The commands built on a sweep (experiments.sweep, analyze, analyze_agents, reproduce), end to
end on one tiny sweep: bad input, --vary, --parallel, --resume (extend, add agents), the analysis
of z and the reproduction report (issue #6)."""
import json
import os

import pytest

from experiments import sweep
from hrm_jax import comparison, parallel
from hrm_jax import sweep as sweep_lib


@pytest.mark.parametrize("argv, message", [
    (["--z-carry", "reset", "reset"], "a condition is repeated"),
    (["--sustain", "0"], "argument --sustain: 0 must be >= 1"),
    (["--vary", "q-init-scale=1"], "--vary 'q-init-scale=1': give at least two values to compare"),
    (["--vary", "q-init-scale=1,1.0"], "the value 1.0 is repeated"),
    (["--vary", "hidden=32,40.5"], "--vary 'hidden=32,40.5': expected int, got '40.5'"),
    (["--vary", "q-head=mlp,best"], "'best' is not allowed; choose from: last_token_linear, agent_token_linear, mlp"),
    (["--vary", "no-such-flag=1,2"], "'no-such-flag' is not a config flag"),
    (["--vary", "lr"], "expected FLAG=V1,V2"),
    (["--vary", "lr=0.001,-1"], "--vary lr=0.001,-1: lr=-1.0 must be > 0"),
    (["--vary", "lr=0.001,0.01", "--lr", "0.1"], "--lr is also given; give its values in --vary only"),
    (["--vary", "z-carry=reset,full"], "z_carry is set by the sweep itself (--z-carry)"),
    (["--vary", "lr=0.001,0.01", "--z-carry", "reset", "full"], "vary one thing at a time"),
])
def test_sweep_rejects_bad_input_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        sweep.resolve(["--preset", "tiny"] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_vary_makes_one_condition_per_value_of_any_flag(tmp_path, metric_rows):
    from dataclasses import replace

    from hrm_jax import config as C

    args, cfgs, out = sweep.resolve(["--preset", "tiny", "--vary=--q-init-scale=1,0.1,0", "--z-carry", "reset",
                                     "--seeds", "2"])
    assert list(cfgs) == ["q_init_scale=1.0", "q_init_scale=0.1", "q_init_scale=0.0"]
    assert out == os.path.join("runs", "sweep-four_rooms-tiny-q_init_scale")
    want = C.override(C.override(C.TINY, "model", z_carry="reset"), "train", seeds=2)
    for c, scale in zip(cfgs, (1.0, 0.1, 0.0)):
        assert cfgs[c] == replace(want, model=replace(want.model, q_init_scale=scale))
    _, cfgs, _ = sweep.resolve(["--preset", "tiny", "--vary", "build_act_head=false,true", "--env", "corridor_maze"])
    assert list(cfgs) == ["build_act_head=false", "build_act_head=true"]
    assert [c.model.build_act_head for c in cfgs.values()] == [False, True]
    assert {c.model.z_carry for c in cfgs.values()} == {C.TINY.model.z_carry}  # the preset's, not both
    assert {c.env.name for c in cfgs.values()} == {"corridor_maze"}
    # the comparison pairs every value with the first one
    for c, rows in (("lr=0.001", metric_rows(0, [0.5, 0.96]) + metric_rows(1, [0.5, 0.7])),
                    ("lr=0.01", metric_rows(0, [0.96, 0.97]) + metric_rows(1, [0.2, 0.4]))):
        (tmp_path / c).mkdir()
        (tmp_path / c / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / c / "config.json").write_text(json.dumps(dict(env=dict(name="four_rooms"))))
    res = comparison.compare(str(tmp_path), ["lr=0.001", "lr=0.01"], baseline="lr=0.001")
    assert res["baseline"] == "lr=0.001" and "paper" not in res
    assert [p["verdict"] for p in res["before_baseline"]["lr=0.01"]["per_seed"]] == ["condition first", "neither reached"]
    assert res["mean_success_above_baseline"]["lr=0.01"]["condition_higher"] == 1
    md = (tmp_path / "comparison.md").read_text()
    assert md.startswith("# lr=0.001 vs lr=0.01: four_rooms")
    assert "- lr=0.01 first in **1 of 2** pairs (lr=0.001 first 0, ties 0, neither reached 1)." in md
    assert "Paper" not in md


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    status = sweep.main(["--preset", "tiny", "--z-carry", "last_token", "reset", "--seeds", "1",
                         "--total-grad-steps", "20", "--out", str(out), "--no-progress"])
    assert status == 0
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--parallel needs a core per condition")
def test_parallel_vary_sweep_trains_each_value_pinned_to_its_own_core(tiny_sweep, tmp_path, capsys):
    """--vary with --parallel: one process per value of the flag, each on its own core. The
    baseline value (the tiny preset's own Q init, carry Z) is the serial sweep's carry-Z agent."""
    out = tmp_path / "p"
    assert sweep.main(["--preset", "tiny", "--vary", "q-init-scale=1,0.5", "--z-carry", "last_token", "--seeds", "1",
                       "--total-grad-steps", "20", "--out", str(out), "--parallel"]) == 0
    groups = parallel.core_groups(sorted(os.sched_getaffinity(0)), 2)
    for c, cores in zip(("q_init_scale=1.0", "q_init_scale=0.5"), groups):
        log = (out / f"{c}.log").read_text()
        assert f"pinned to CPU cores {','.join(map(str, cores))}\n" in log
        assert f"agents 0..0 (vmap) -> {out / c}" in log
        assert json.loads((out / c / "config.json").read_text())["model"]["q_init_scale"] == float(c.split("=")[1])
    ours = [json.loads(l) for l in (out / "q_init_scale=1.0" / "metrics.jsonl").read_text().splitlines()]
    serial = [json.loads(l) for l in (tiny_sweep / "last_token" / "metrics.jsonl").read_text().splitlines()]
    # the same agent as the serial sweep's (one thread instead of two: float sums may be ordered differently)
    assert [r["grad_steps"] for r in ours] == [r["grad_steps"] for r in serial] == [20]
    assert ours[0]["env_steps"] == serial[0]["env_steps"]
    assert ours[0]["loss"] == pytest.approx(serial[0]["loss"], rel=1e-3)
    res = json.loads((out / "comparison.json").read_text())
    assert res["baseline"] == "q_init_scale=1.0" and list(res["before_baseline"]) == ["q_init_scale=0.5"]
    printed = capsys.readouterr().out
    assert "q_init_scale=0.5 reached 95% before q_init_scale=1.0 in " in printed and "paper" not in printed
    assert parallel.core_groups([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]


def test_parallel_sweep_refuses_more_conditions_than_cores(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--preset", "tiny", "--z-carry", "last_token", "reset", "--out", str(tmp_path / "q"), "--parallel"])
    assert exc.value.code == 2
    assert "--parallel: 2 conditions need at least 2 CPU cores; this process may use 1 (0)" in capsys.readouterr().err
    assert not (tmp_path / "q" / "reset").exists()


def test_sweep_resume_with_larger_total_extends_every_condition(tiny_sweep, tmp_path, capsys):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(tiny_sweep, out)
    common = ["--preset", "tiny", "--z-carry", "last_token", "reset", "--seeds", "1", "--out", str(out),
              "--no-progress", "--resume"]
    before = {c: (out / c / "metrics.jsonl").read_text() for c in ("last_token", "reset")}
    # lowering the total is refused, the sweep left as it was
    with pytest.raises(SystemExit) as exc:
        sweep.main(common + ["--total-grad-steps", "10"])
    assert exc.value.code == 2
    assert "total_grad_steps=10 is below the run's 20; a resumed run can only be extended" in capsys.readouterr().err
    assert {c: (out / c / "metrics.jsonl").read_text() for c in before} == before
    # another config is refused, naming the fields that differ
    with pytest.raises(SystemExit) as exc:
        sweep.main(common + ["--total-grad-steps", "20", "--lr", "0.5", "--gamma", "0.9"])
    assert exc.value.code == 2
    assert "was trained with a different config (train.gamma, train.lr)" in capsys.readouterr().err
    assert {c: (out / c / "metrics.jsonl").read_text() for c in before} == before
    # the same total: both conditions are finished and kept
    assert sweep.main(common + ["--total-grad-steps", "20"]) == 0
    assert capsys.readouterr().err.count("is finished, kept") == 2
    # an existing run keeps its own seed loop unless --seed-loop is given (so a plain --resume is bit-identical)
    from dataclasses import replace

    for given, loop in ((False, "vmap"), (True, "map")):
        args, cfgs, _ = sweep.resolve(common + ["--total-grad-steps", "20"] + (["--seed-loop", "map"] if given else []))
        assert sweep.seed_loop_given(args) == given
        cfg = replace(cfgs["reset"], train=replace(cfgs["reset"].train, seed_loop="map"))  # e.g. a preset's loop
        ((run_dir, planned, resume),) = sweep_lib.plan_runs(str(out), "reset", cfg, keep_seed_loop=not given)
        assert run_dir == str(out / "reset") and resume and planned.train.seed_loop == loop
    # a larger total: each condition continues from its checkpoint; its first 20 steps are unchanged.
    # The seeds may be looped another way than they were trained (the same checkpoint layout)
    assert sweep.main(common + ["--total-grad-steps", "40", "--seed-loop", "map"]) == 0
    for c in before:
        lines = (out / c / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(l)["grad_steps"] for l in lines] == [20, 40]
        assert lines[0] + "\n" == before[c]
        saved = json.loads((out / c / "config.json").read_text())["train"]
        assert saved["total_grad_steps"] == 40 and saved["seed_loop"] == "map"
        assert json.loads((out / c / "summary.json").read_text())["seeds"][0]["grad_steps"] == 40
    comp = json.loads((out / "comparison.json").read_text())  # rewritten from the extended runs
    assert all(comp["conditions"][c]["final"]["grad_steps"] == 40 for c in before), comp["conditions"]


def test_sweep_with_more_seeds_trains_the_added_agents_in_a_new_run_directory(tiny_sweep, tmp_path, capsys):
    """--resume --seeds 2 on a 1-seed sweep trains agent 1 of each condition in <z>.agents-1-1 (the
    agent a 2-seed run trains as its second), leaves agent 0's run untouched, and pools both."""
    import shutil

    from experiments import analyze, run

    out = tmp_path / "s"
    shutil.copytree(tiny_sweep, out)
    before = {c: (out / c / "metrics.jsonl").read_text() for c in ("last_token", "reset")}
    common = ["--preset", "tiny", "--z-carry", "last_token", "reset", "--total-grad-steps", "20", "--out", str(out),
              "--no-progress", "--resume"]
    assert sweep.main(common + ["--seeds", "2"]) == 0
    for c in before:
        assert (out / c / "metrics.jsonl").read_text() == before[c]
        added = out / f"{c}.agents-1-1"
        train = json.loads((added / "config.json").read_text())["train"]
        assert (train["seeds"], train["first_agent"]) == (1, 1)
        assert [json.loads(l)["seed"] for l in (added / "metrics.jsonl").read_text().splitlines()] == [1]
    comp = json.loads((out / "comparison.json").read_text())
    assert all(comp["conditions"][c]["seeds"] == 2 for c in before)
    assert comp["before_baseline"]["last_token"]["pairs"] == 2
    # agent 1 trained alone is the second agent of a 2-seed run (its own key, init, envs, exploration)
    both = tmp_path / "both"
    assert run.main(["--preset", "tiny", "--z-carry", "reset", "--seeds", "2", "--total-grad-steps", "20",
                     "--out", str(both), "--no-progress"]) == 0
    second = [json.loads(l) for l in (both / "metrics.jsonl").read_text().splitlines()][1]
    alone = json.loads((out / "reset.agents-1-1" / "metrics.jsonl").read_text())
    assert second["seed"] == alone["seed"] == 1
    for k in ("eval_success", "eval_length", "eval_optimal", "loss", "q_mean", "train_return"):
        assert alone[k] == pytest.approx(second[k], rel=1e-4, abs=1e-6), k
    # fewer seeds than the sweep holds would drop agents: refused, nothing changed
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        sweep.main(common + ["--seeds", "1"])
    assert exc.value.code == 2
    assert "already holds agents 0..1 of last_token; give --seeds 2 or more" in capsys.readouterr().err
    # the analysis picks an added run's own agent, and names the agents a run holds
    with pytest.raises(SystemExit) as exc:
        analyze.main([str(out / "reset.agents-1-1"), "--seed-index", "0", "--envs", "4"])
    assert exc.value.code == 2 and "--seed-index=0: " in capsys.readouterr().err
    assert analyze.main([str(out / "last_token.agents-1-1"), str(out / "reset.agents-1-1"), "--envs", "4",
                         "--bootstrap", "0", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "analysis.json").read_text())["meta"]["seed_index"] == "1"
    # every agent pair of the sweep, wherever each agent's run directory is
    from experiments import analyze_agents

    assert analyze_agents.main([str(out), "--envs", "4", "--bootstrap", "0", "--out", str(tmp_path / "all")]) == 0
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert [p["agent"] for p in summary["pairs"]] == [0, 1]
    runs = [e["run_dir"] for e in json.loads((tmp_path / "all" / "agent-1" / "analysis.json").read_text())["evaluations"]]
    assert runs == [str(out / "last_token.agents-1-1")] * 2 + [str(out / "reset.agents-1-1")]
    assert all(r["pairs"] == 2 and r["supported"] + r["partly"] + r["not_supported"] <= 2 for r in summary["tally"])
    assert "| [1](agent-1/report.md) |" in (tmp_path / "all" / "summary.md").read_text()
    if len(os.sched_getaffinity(0)) >= 2:
        # --parallel: the two pairs in two processes, one per core, each with its own log; the same
        # numbers (one thread instead of two: float sums may be ordered differently)
        assert analyze_agents.main([str(out), "--envs", "4", "--bootstrap", "0", "--out", str(tmp_path / "par"),
                                    "--parallel"]) == 0
        cores = parallel.core_groups(sorted(os.sched_getaffinity(0)), 2)
        for k in (0, 1):
            log = (tmp_path / "par" / f"analysis-{k}.log").read_text()
            assert f"pinned to CPU cores {','.join(map(str, cores[k]))}\n" in log and f"== agent {k}: " in log
            assert f"== agent {1 - k}: " not in log
        par = json.loads((tmp_path / "par" / "summary.json").read_text())
        assert [p["agent"] for p in par["pairs"]] == [0, 1]
        assert [p["claims"] for p in par["pairs"]] == [p["claims"] for p in summary["pairs"]]
        for a in (0, 1):
            ev = [json.loads((tmp_path / d / f"agent-{a}" / "analysis.json").read_text())["evaluations"]
                  for d in ("all", "par")]
            assert [e["summary"]["counts"] for e in ev[0]] == [e["summary"]["counts"] for e in ev[1]]
            for e0, e1 in zip(*ev):
                for k, v in e0["summary"]["medians"].items():
                    assert e1["summary"]["medians"][k] == pytest.approx(v, rel=1e-4, nan_ok=True), k
    with pytest.raises(SystemExit) as exc:
        analyze_agents.main([str(tmp_path / "all")])
    assert exc.value.code == 2 and "no run of condition last_token" in capsys.readouterr().err


def test_sweep_first_agent_trains_only_those_agents(tmp_path, capsys):
    """--first-agent 1 --seeds 1: a sweep of agent 1 alone per condition (config first_agent 1, rows
    and the comparison name agent 1); --resume must name the same first agent; a larger --seeds
    adds the next agents after it."""
    out = tmp_path / "a1"
    common = ["--preset", "tiny", "--z-carry", "last_token", "reset", "--total-grad-steps", "20", "--out", str(out),
              "--no-progress"]
    assert sweep.main(common + ["--first-agent", "1", "--seeds", "1"]) == 0
    for c in ("last_token", "reset"):
        train = json.loads((out / c / "config.json").read_text())["train"]
        assert (train["seeds"], train["first_agent"]) == (1, 1)
        assert [json.loads(l)["seed"] for l in (out / c / "metrics.jsonl").read_text().splitlines()] == [1]
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["before_baseline"]["last_token"]["pairs"] == 1
    assert list(comp["conditions"]["reset"]["crossings"]) == ["1"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        sweep.main(common + ["--resume", "--seeds", "2"])
    assert exc.value.code == 2
    assert f"--resume: {out / 'last_token'} holds agents from 1 on, but --first-agent is 0" in capsys.readouterr().err
    assert sweep.main(common + ["--resume", "--first-agent", "1", "--seeds", "1"]) == 0
    assert capsys.readouterr().err.count("is finished, kept") == 2
    args, cfgs, _ = sweep.resolve(common + ["--resume", "--first-agent", "1", "--seeds", "3"])
    plan = sweep_lib.plan_runs(str(out), "reset", cfgs["reset"])
    assert [(d, c.train.first_agent, c.train.seeds, r) for d, c, r in plan] == [
        (str(out / "reset"), 1, 1, True), (str(out / "reset.agents-2-3"), 2, 2, False)]


def test_tiny_sweep_and_analyze_end_to_end(tiny_sweep, tmp_path):
    from experiments import analyze

    for f in ("comparison.png", "comparison.md", "comparison.json"):
        assert (tiny_sweep / f).is_file()
    comp = json.loads((tiny_sweep / "comparison.json").read_text())
    assert set(comp["conditions"]) == {"last_token", "reset"}
    out = tmp_path / "analysis"
    n = 12
    status = analyze.main([str(tiny_sweep / "last_token"), str(tiny_sweep / "reset"), "--envs", str(n),
                           "--batch", "8", "--bootstrap", "20", "--out", str(out)])
    assert status == 0
    for f in ("report.md", "analysis.json", "convergence.png", "divergence.png", "intervention.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0
    res = json.loads((out / "analysis.json").read_text())
    evals = res["evaluations"]
    assert [(e["z_carry"], e["z_mode"]) for e in evals] == [("last_token", "last_token"), ("last_token", "reset"),
                                                           ("reset", "reset")]
    for e in evals:
        c = e["summary"]["counts"]
        assert c["first_steps"] == n and c["total_steps"] == n * 80
        assert c["changed"] + c["unchanged"] == c["episode_steps"] - n
        assert c["changed"] + c["unchanged"] + c["first_steps"] + c["after_termination"] == c["total_steps"]
        assert len(e["summary"]["medians"]["conv_z_H_unchanged"]) == e["segments"] - 1
    # a carry checkpoint evaluated with reset z and the reset run see the same environments at reset
    assert evals[1]["summary"]["bfs_optimal"] == evals[2]["summary"]["bfs_optimal"]
    assert len(res["claims"]) == 5
    md = (out / "report.md").read_text()
    assert "![convergence](convergence.png)" in md and "Verdict" in md
    assert f"| Carry Z | {evals[0]['summary']['counts']['changed']:,} |" in md


def test_analyze_with_more_segments_than_trained(tiny_sweep, tmp_path, capsys):
    """--segments runs the recurrence deeper than the run was trained (2 segments here): every
    curve gets one point per extra segment and the report says the evaluation differs from training."""
    from experiments import analyze

    with pytest.raises(SystemExit) as exc:
        analyze.main([str(tiny_sweep / "last_token"), "--segments", "1"])
    assert exc.value.code == 2 and "argument --segments: 1 must be >= 2" in capsys.readouterr().err
    out = tmp_path / "deep"
    assert analyze.main([str(tiny_sweep / "last_token"), str(tiny_sweep / "reset"), "--segments", "4", "--envs", "8",
                         "--bootstrap", "0", "--out", str(out)]) == 0
    res = json.loads((out / "analysis.json").read_text())
    assert res["meta"]["segments"] == 4
    for e in res["evaluations"]:
        assert (e["segments"], e["trained_segments"]) == (4, 2)
        for key, curve in e["summary"]["medians"].items():
            assert len(curve) == 3, key  # k = 1..3 against z_4 (conv) / k = 2..4 against z_1 (div)
    md = (out / "report.md").read_text()
    assert "differ from training" in md and "| 4 (2) |" in md and "k=3" in md


def test_reproduce_goes_on_from_a_finished_sweep_and_writes_one_report(tiny_sweep, tmp_path, capsys):
    """experiments.reproduce = sweep + analyze_agents per maze + report.md. With --resume on a
    finished sweep it trains nothing (the sweep keeps both conditions) and analyses every pair."""
    import shutil

    from experiments import reproduce

    out = tmp_path / "r"
    shutil.copytree(tiny_sweep, out / "four_rooms")
    before = (out / "four_rooms" / "last_token" / "metrics.jsonl").read_text()
    argv = ["--preset", "tiny", "--envs", "four_rooms", "--seeds", "1", "--total-grad-steps", "20", "--analysis-envs", "8",
            "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as exc:  # without --resume the existing sweep is refused, nothing touched
        reproduce.main(argv)
    assert exc.value.code == 2 and "use --resume" in capsys.readouterr().err
    assert reproduce.main(argv + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "Carry Z (last_token): " in err and "is finished, kept" in err
    assert (out / "four_rooms" / "last_token" / "metrics.jsonl").read_text() == before
    md = (out / "report.md").read_text()
    assert "## four_rooms" in md and "![carry vs reset](four_rooms/comparison.png)" in md and "corridor_maze" not in md
    assert "reached 95% greedy success before Reset Z in **" in md and "\n| carry Z: smaller first-to-final distance | " in md
    assert (out / "four_rooms" / "agents" / "agent-0" / "report.md").is_file()
    times = json.loads((out / "report.json").read_text())["parts"]["four_rooms"]
    assert set(times) == {"sweep_s", "analysis_s", "train_s"} and times["sweep_s"] > 0 and times["analysis_s"] > 0
    # this invocation trained nothing; the report still gives each condition's training time, from
    # the summaries the earlier invocation wrote
    for c in ("last_token", "reset"):
        trained = json.loads((out / "four_rooms" / c / "summary.json").read_text())["seeds"][0]["wall_time_s"]
        assert trained > 0 and times["train_s"][c] == trained
        assert f"(trained in {trained:,.0f} s over all invocations)" in md
    # the flags given are passed on to each maze's sweep, as flags
    args = reproduce.build_parser().parse_args(["--lr", "0.01", "--build-act-head", "true", "--envs", "corridor_maze"])
    assert reproduce.steps(args, "o")[0] == ("corridor_maze", "sweep", [
        "--env", "corridor_maze", "--z-carry", "last_token", "reset", "--seeds", "5", "--out", os.path.join("o", "corridor_maze"),
        "--preset", "cpu", "--build-act-head", "true", "--lr", "0.01"])
    # --parallel: both the sweep's conditions and the analysis's pairs side by side
    par = reproduce.steps(reproduce.build_parser().parse_args(["--parallel", "--envs", "four_rooms"]), "o")
    assert par[0][2][-1] == "--parallel" and par[1] == (
        "four_rooms", "analysis", [os.path.join("o", "four_rooms"), "--envs", "1024", "--parallel"])


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "argument --seeds: 0 must be >= 1"),
    (["--envs", "four_rooms", "four_rooms"], "a maze is repeated"),
    (["--segments", "1"], "argument --segments: 1 must be >= 2"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--z-carry", "reset"], "unrecognized arguments: --z-carry reset"),
])
def test_reproduce_rejects_bad_input_in_one_line(argv, message, tmp_path, capsys):
    from experiments import reproduce

    with pytest.raises(SystemExit) as exc:
        reproduce.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_reproduce_interrupted_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    from experiments import reproduce

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_lib, "run_sweep", interrupted)
    out = tmp_path / "r"
    assert reproduce.main(["--preset", "tiny", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"four_rooms: sweep stopped with status 130; go on with --resume --out {out}" in err
    assert not (out / "report.md").exists()


def test_reproduce_dry_run_prints_the_commands_and_writes_nothing(tmp_path, capsys):
    from experiments import reproduce

    out = tmp_path / "r"
    argv = ["--preset", "tiny", "--seeds", "3", "--total-grad-steps", "60", "--envs", "corridor_maze", "--out", str(out)]
    assert reproduce.main(argv + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    sweep_dir = os.path.join(str(out), "corridor_maze")
    assert lines == [
        f"corridor_maze sweep: python -m experiments.sweep --env corridor_maze --z-carry last_token reset --seeds 3 "
        f"--out {sweep_dir} --preset tiny --total-grad-steps 60",
        "    last_token: 3 agent(s) x 60 gradient steps",
        "    reset: 3 agent(s) x 60 gradient steps",
        f"corridor_maze analysis: python -m experiments.analyze_agents {sweep_dir} --envs 1024",
        "in all: 360 agent gradient steps (with --resume, what is trained already is kept)",
    ]
    assert not out.exists()
    # the dry run checks what a real run checks, the sweeps' own checks included: runs already in the
    # sweep's directory are refused without --resume (one line), and kept
    (out / "corridor_maze" / "reset").mkdir(parents=True)
    (out / "corridor_maze" / "reset" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as exc:
        reproduce.main(argv + ["--dry-run"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "use --resume" in err and len(err.splitlines()) == 1
    assert (out / "corridor_maze" / "reset" / "metrics.jsonl").read_text() == "{}\n"
