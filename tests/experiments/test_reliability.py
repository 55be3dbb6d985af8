"""Reliability of the main job (issue #7; docs/reliability.md maps every guarantee to its test here).

Determinism across processes, crash safety under SIGKILL at several moments (before the first
checkpoint, after the first metrics line, while orbax is writing), resume from half-written or
corrupted checkpoints, non-finite training, and bad input (one line on stderr, exit status 2, an
existing run directory left byte-for-byte unchanged).

Cost: every real run is a subprocess of the same tiny configuration (3 chunks of 20 gradient
steps, the one tests/experiments/test_run.py uses). They share the session's persistent XLA compilation cache
(tests/conftest.py), so only the first run compiles; the determinism partner
(run B) compiles on its own, without the cache. Independent scenarios run two at a time (the CI
machine has 2 cores).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import run as run_mod
from hrm_jax.runlog import RunLog

# orbax leaves an un-awaited coroutine behind when a restore fails on purpose (corrupted files)
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ROOT = Path(__file__).resolve().parents[2]
PROG = "python -m experiments.run"
CFG = ["--preset", "tiny", "--no-progress", "--total-grad-steps", "60", "--eval-every", "20",
       "--checkpoint-every", "20", "--keep-checkpoints", "2"]
TIMING = ("wall_time_s", "env_steps_per_s")  # host wall-clock: the only fields that differ between runs
TMP_SUFFIX = ".orbax-checkpoint-tmp"


# ---- helpers -------------------------------------------------------------------------------

def base_env(cache: bool = True) -> dict:
    """The subprocess environment: the session's persistent compilation cache (tests/conftest.py)
    or, with cache=False, none at all (the process compiles everything itself)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    if not cache:
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def run_cli(args: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def run_and_kill(args: list[str], env: dict, when, timeout: float = 900) -> dict:
    """Start a run; SIGKILL it as soon as `when()` is true (polled every 2 ms). Returns what was
    on disk at the kill."""
    p = subprocess.Popen([sys.executable, "-m", "experiments.run", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    deadline = time.time() + timeout
    killed = False
    try:
        while p.poll() is None and time.time() < deadline:
            if when():
                p.kill()  # SIGKILL: no handler, no cleanup
                killed = True
                break
            time.sleep(0.002)
    finally:
        if p.poll() is None and not killed:
            p.kill()
        p.wait(timeout=60)
    return dict(killed=killed, returncode=p.returncode)


def listing(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def rows(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            for k in TIMING:
                r.pop(k)
            out.append(r)
    return out


def metrics_digest(path: Path) -> str:
    """sha256 of metrics.jsonl with the host-timing fields removed."""
    return hashlib.sha256("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows(path)).encode()).hexdigest()


def params_sha(out: Path) -> str:
    return json.loads((out / "summary.json").read_text())["params_sha256"]


def tree_digest(path: Path) -> dict[str, str]:
    """relative path -> sha256 (or 'dir') of everything under path, and its permission bits."""
    res = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        res[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        res[rel] += f" {p.stat().st_mode:o}"
    return res


def corrupt(path: Path, mode: str) -> None:
    data = bytearray(path.read_bytes())
    if mode == "flip":
        for i in range(len(data) // 3, len(data) // 3 + 16):
            data[i] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))


def largest_file(path: Path) -> Path:
    return max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def one_error_line(stderr: str) -> str:
    """Exactly one line on stderr says `error:`; no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errs = [l for l in stderr.splitlines() if "error:" in l]
    assert len(errs) == 1, stderr[-3000:]
    return errs[0]


# ---- the runs (module fixture: each scenario once, two at a time) --------------------------

def _scenario_kill(tmp: Path, env: dict, name: str, when_factory) -> dict:
    out = tmp / name
    res = run_and_kill(CFG + ["--out", str(out)], env, when_factory(out))
    res["checkpoints_at_kill"] = listing(out / "checkpoints")
    res["metrics_at_kill"] = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else ""
    res["resume"] = run_cli(["--resume", str(out), "--no-progress"], env)
    res["out"] = out
    return res


def _kill_before_checkpoint(out: Path):
    return lambda: (out / "config.json").exists()


def _kill_after_first_metrics(out: Path):
    return lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 0


def _kill_while_orbax_writes(out: Path):
    ck = out / "checkpoints"
    return lambda: any(n.startswith("40" + TMP_SUFFIX) for n in listing(ck))


# The CLI with training failing at gradient step 30, injected from the test side: every chunk that
# runs past step 30 returns NaN parameters and reports 30 as its first non-finite step, as the
# learner does when an update turns non-finite there. What is tested is the runner's NaN stop.
NONFINITE_AT_30 = """
import sys

import jax
import numpy as np

from hrm_jax import sharding

BAD = 30
real = sharding.make_sharded_train


def failing_at_bad(cfg, **kw):
    tr, sh = real(cfg, **kw)

    def chunk(state):
        new, metrics = sh.chunk(state)
        metrics = jax.device_get(metrics)
        if int(np.max(metrics["grad_steps"])) > BAD:
            metrics = dict(metrics, first_bad_step=np.full_like(metrics["first_bad_step"], BAD))
            new = new.replace(params=jax.tree.map(lambda x: x * np.nan, new.params))
        return new, metrics

    return tr, sh._replace(chunk=chunk)


sharding.make_sharded_train = failing_at_bad
from experiments.run import main

sys.exit(main(sys.argv[1:]))
"""


def _scenario_nan(tmp: Path, env: dict) -> dict:
    # checkpoint_every 40: step 20 is logged but not on the checkpoint cadence, so the guard must
    # checkpoint the last good state itself. Training maths equal run A's (cadence is host-side).
    out = tmp / "nan"
    args = list(CFG)
    args[args.index("--checkpoint-every") + 1] = "40"
    first = subprocess.run([sys.executable, "-c", NONFINITE_AT_30, *args, "--out", str(out)], capture_output=True,
                           text=True, timeout=900, env=env, cwd=ROOT)
    snap = dict(checkpoints=listing(out / "checkpoints"), metrics=rows(out / "metrics.jsonl"),
                summary=json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None)
    resume = run_cli(["--resume", str(out), "--no-progress"], env)
    return dict(first=first, snap=snap, resume=resume, out=out)


def _scenario_bad_newest(tmp: Path, env: dict, ref: Path) -> dict:
    """A copy of the finished run A with: the newest checkpoint (60) corrupted (bytes flipped in
    its largest data file: orbax restores that silently, only the digest notices), a fake
    half-written newer step directory 80 (no commit marker, no digest) and a leftover orbax
    temporary directory. Resume must skip 80, reject 60, continue from 40 and end equal to A."""
    out = tmp / "bad_newest"
    shutil.copytree(ref, out)
    corrupt(largest_file(out / "checkpoints" / "60" / "default"), "flip")
    half = out / "checkpoints" / "80" / "default"
    half.mkdir(parents=True)
    (half / "_METADATA").write_text('{"tree_metadata": {')  # truncated, as if killed mid-write
    (out / "checkpoints" / ("90" + TMP_SUFFIX + "-1700000000")).mkdir()
    return dict(resume=run_cli(["--resume", str(out), "--no-progress"], env), out=out)


def _scenario_extend(tmp: Path, env: dict) -> dict:
    """Train 40 steps, then `--resume --total-grad-steps 60`: train longer."""
    out = tmp / "extend"
    args = list(CFG)
    args[args.index("--total-grad-steps") + 1] = "40"
    first = run_cli(args + ["--out", str(out)], env)
    snap = dict(config=json.loads((out / "config.json").read_text()), metrics=rows(out / "metrics.jsonl"))
    resume = run_cli(["--resume", str(out), "--no-progress", "--total-grad-steps", "60"], env)
    return dict(first=first, snap=snap, resume=resume, out=out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reliability")
    env = base_env()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # A fills the compilation cache; B compiles on its own (no cache): independent processes
        # and independent compilations of the same config + seed.
        fa = pool.submit(run_cli, CFG + ["--out", str(tmp / "A")], env)
        fb = pool.submit(run_cli, CFG + ["--out", str(tmp / "B")], base_env(cache=False))
        a, b = fa.result(), fb.result()
        assert a.returncode == 0, a.stderr[-3000:]
        jobs = {
            "kill_before_checkpoint": pool.submit(_scenario_kill, tmp, env, "k_before", _kill_before_checkpoint),
            "kill_after_metrics": pool.submit(_scenario_kill, tmp, env, "k_metrics", _kill_after_first_metrics),
            "kill_while_saving": pool.submit(_scenario_kill, tmp, env, "k_saving", _kill_while_orbax_writes),
            "nan": pool.submit(_scenario_nan, tmp, env),
            "bad_newest": pool.submit(_scenario_bad_newest, tmp, env, tmp / "A"),
            "extend": pool.submit(_scenario_extend, tmp, env),
        }
        res = {}
        for k, f in jobs.items():
            try:
                res[k] = f.result()
            except Exception as exc:  # reported by the test that needs it
                res[k] = exc
    res.update(A=(tmp / "A", a), B=(tmp / "B", b), tmp=tmp, env=env)
    return res


def get(runs, key):
    r = runs[key]
    if isinstance(r, Exception):
        raise r
    return r


def assert_equals_uninterrupted(runs, out: Path) -> None:
    ref = runs["A"][0]
    assert rows(out / "metrics.jsonl") == rows(ref / "metrics.jsonl")
    assert params_sha(out) == params_sha(ref)


# ---- determinism ---------------------------------------------------------------------------

def test_same_config_and_seed_bit_identical_across_processes(runs):
    (a_out, a), (b_out, b) = runs["A"], runs["B"]
    assert b.returncode == 0, b.stderr[-3000:]
    raw = [json.loads(l) for l in (a_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["grad_steps"] for r in raw] == [20, 40, 60] and all(k in raw[0] for k in TIMING)
    assert metrics_digest(a_out / "metrics.jsonl") == metrics_digest(b_out / "metrics.jsonl")
    assert params_sha(a_out) == params_sha(b_out)
    # the checkpoint contents (params, optimiser, replay, env states, keys) are identical too
    assert (a_out / "checkpoints/60/state.sha256").read_text() == (b_out / "checkpoints/60/state.sha256").read_text()


# ---- crash safety (SIGKILL) ----------------------------------------------------------------

def test_sigkill_before_first_checkpoint_resume_restarts_from_scratch(runs):
    r = get(runs, "kill_before_checkpoint")
    assert r["killed"] and r["returncode"] == -9
    assert not [n for n in r["checkpoints_at_kill"] if n.isdigit()]  # no checkpoint existed
    res = r["resume"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "no complete checkpoint yet; starting it from scratch" in res.stderr
    assert_equals_uninterrupted(runs, r["out"])


def test_sigkill_after_first_metrics_line_resume_equals_uninterrupted(runs):
    r = get(runs, "kill_after_metrics")
    assert r["killed"] and r["returncode"] == -9
    assert r["metrics_at_kill"].count("\n") >= 1
    res = r["resume"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert_equals_uninterrupted(runs, r["out"])


def test_sigkill_while_orbax_writes_checkpoint_resume_equals_uninterrupted(runs):
    r = get(runs, "kill_while_saving")
    assert r["killed"] and r["returncode"] == -9, "the run ended before orbax's temporary directory was seen"
    # killed mid-save: step 40 exists only as orbax's temporary directory, 20 is the latest
    assert "40" not in r["checkpoints_at_kill"] and "20" in r["checkpoints_at_kill"]
    assert any(n.startswith("40" + TMP_SUFFIX) for n in r["checkpoints_at_kill"])
    assert '"grad_steps": 40' in r["metrics_at_kill"]  # logged before the save: truncated on resume
    res = r["resume"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed" in res.stderr and "at gradient step 20" in res.stderr
    assert_equals_uninterrupted(runs, r["out"])
    assert not [n for n in listing(r["out"] / "checkpoints") if TMP_SUFFIX in n]  # cleaned up


def test_half_written_or_corrupted_newest_checkpoint_falls_back(runs):
    r = get(runs, "bad_newest")
    res = r["resume"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "removed unfinished checkpoint" in res.stderr and "/80 (no orbax commit marker)" in res.stderr
    assert "moved unreadable checkpoint" in res.stderr and "60.corrupt" in res.stderr
    assert "at gradient step 40" in res.stderr
    assert_equals_uninterrupted(runs, r["out"])
    names = listing(r["out"] / "checkpoints")
    assert "60" in names and "60.corrupt" in names and "80" not in names
    assert not [n for n in names if TMP_SUFFIX in n]


def test_resume_with_larger_total_trains_on_and_equals_a_longer_run(runs):
    r = get(runs, "extend")
    assert r["first"].returncode == 0, r["first"].stderr[-3000:]
    assert [m["grad_steps"] for m in r["snap"]["metrics"]] == [20, 40] and r["snap"]["config"]["train"]["total_grad_steps"] == 40
    res = r["resume"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed" in res.stderr and "at gradient step 40" in res.stderr
    # the same as run A, trained for 60 steps from the start (metrics, parameters)
    assert_equals_uninterrupted(runs, r["out"])
    cfg = json.loads((r["out"] / "config.json").read_text())
    assert cfg["train"]["total_grad_steps"] == 60
    cfg["train"]["total_grad_steps"] = 40
    assert cfg == r["snap"]["config"]  # nothing else changed


def test_resume_with_smaller_total_one_line_exit_2_untouched(runs, tmp_path, capsys):
    d = tmp_path / "shrink"
    shutil.copytree(runs["A"][0], d)
    before = tree_digest(d)
    status, err = call_main(["--resume", str(d), "--no-progress", "--total-grad-steps", "40"], capsys)
    assert status == 2
    assert "total_grad_steps=40 is below the run's 60; a resumed run can only be extended" in one_error_line(err)
    assert tree_digest(d) == before


def test_torn_metrics_line_is_dropped_on_resume(tmp_path):
    """A kill in the middle of appending to metrics.jsonl leaves a torn last line: the resumed
    run's log drops it (and the lines after its checkpoint) instead of failing to parse."""
    good = [{"grad_steps": s, "seed": 0, "loss": 0.5} for s in (20, 40)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good) + '{"grad_steps": 60, "se')
    log = RunLog(str(tmp_path), 1, truncate_after=20)
    log.close()
    assert log.rows == good[:1]
    assert (tmp_path / "metrics.jsonl").read_text() == json.dumps(good[0]) + "\n"


# ---- numerical faults ----------------------------------------------------------------------

def test_nonfinite_stops_names_step_keeps_good_state_and_resumes(runs):
    r = get(runs, "nan")
    first = r["first"]
    assert first.returncode == 3, first.stderr[-3000:]
    line = one_error_line(first.stderr)
    assert "non-finite loss, Q value or parameters at gradient step 30" in line
    assert "last good checkpoint (step 20)" in line
    snap = r["snap"]
    ref_rows = rows(runs["A"][0] / "metrics.jsonl")
    assert snap["metrics"] == ref_rows[:1]  # only the good chunk was logged
    assert snap["summary"]["mean"]["grad_steps"] == 20 and len(snap["summary"]["params_sha256"]) == 64
    assert [n for n in snap["checkpoints"] if n.isdigit()] == ["20"]  # the last good state, checkpointed
    res = r["resume"]  # without the injected failure: continues from step 20 exactly as the uninterrupted run
    assert res.returncode == 0, res.stderr[-3000:]
    assert "at gradient step 20" in res.stderr
    assert_equals_uninterrupted(runs, r["out"])


# ---- bad input: one line, exit 2, existing run directory untouched --------------------------

@pytest.fixture
def existing(tmp_path):
    """A small fake run directory whose bytes must survive every bad invocation."""
    d = tmp_path / "existing"
    (d / "checkpoints" / "20").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(run_mod.resolve(["--preset", "tiny", "--dry-run"])[1].to_dict()))
    (d / "metrics.jsonl").write_text('{"grad_steps": 20, "seed": 0}\n')
    (d / "checkpoints" / "20" / "state.sha256").write_text("0" * 64 + "\n")
    return d


def call_main(argv, capsys) -> tuple[int, str]:
    try:
        status = run_mod.main(argv)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


BAD_NEW_RUN = [
    (["--env", "five_rooms"], "--env: invalid choice: 'five_rooms'"),
    (["--preset", "huge"], "--preset: invalid choice: 'huge'"),
    (["--num-envs", "0"], "num_envs=0 must be >= 1"),
    (["--hidden", "-8"], "hidden=-8 must be >= 1"),
    (["--max-steps", "0"], "max_steps=0 must be >= 1"),
    (["--eval-every", "-20"], "eval_every=-20 must be >= 1"),
    (["--buffer-capacity", "0"], "buffer_capacity=0 must be >= 1"),
    (["--p-change", "1.5"], "p_change=1.5 must be in [0, 1]"),
    (["--p-change", "-0.1"], "p_change=-0.1 must be in [0, 1]"),
    (["--eps-end", "1.2"], "eps_end=1.2 must be in [0, 1]"),
    (["--polyak", "-1"], "polyak=-1.0 must be in [0, 1]"),
    (["--lr", "nan"], "lr=nan must be a finite number"),
    (["--batch-size", "64", "--buffer-capacity", "32"], "batch_size=64 is larger than buffer_capacity=32"),
    (["--closed-doors", "5"], "closed_doors=5 must be an integer in [0, 4]"),
    (["--env", "corridor_maze", "--fixed-walls", "45", "--closed-doors", "5"], "dynamic_doors=5 must be an integer in [0, 4]"),
]


@pytest.mark.parametrize("args,needle", BAD_NEW_RUN, ids=[" ".join(a) for a, _ in BAD_NEW_RUN])
def test_bad_input_one_line_exit_2_run_dir_untouched(args, needle, existing, capsys):
    before = tree_digest(existing)
    for target in (["--out", str(existing)], ["--out", str(existing.parent / "new")]):
        status, err = call_main(["--preset", "tiny", "--no-progress", *args, *target], capsys)
        assert status == 2
        assert needle in one_error_line(err)
        assert err.strip().count("\n") == 0, err
        assert not (existing.parent / "new").exists()
    assert tree_digest(existing) == before


def _edit_config(d: Path, edit) -> None:
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))


BAD_RESUME = [
    ("unknown field", lambda d: _edit_config(d, lambda c: c["train"].update(frobnicate=1)), "unexpected keyword argument 'frobnicate'"),
    ("invalid value", lambda d: _edit_config(d, lambda c: c["train"].update(gamma=1.5)), "gamma=1.5 must be in [0, 1]"),
    ("wrong type", lambda d: _edit_config(d, lambda c: c["model"].update(hidden=32.5)), "hidden=32.5 must be an int"),
    ("unknown env", lambda d: _edit_config(d, lambda c: c["env"].update(name="five_rooms")), "name='five_rooms' is not allowed"),
    ("too many doors", lambda d: _edit_config(d, lambda c: c["env"].update(closed_doors=9)), "closed_doors=9 must be an integer in [0, 4]"),
    ("truncated json", lambda d: corrupt(d / "config.json", "truncate"), "config.json is unreadable or incompatible"),
    ("not a run dir", lambda d: (d / "config.json").unlink(), "no config.json there (not a run directory)"),
]


@pytest.mark.parametrize("what,damage,needle", BAD_RESUME, ids=[w for w, _, _ in BAD_RESUME])
def test_resume_incompatible_config_one_line_exit_2_untouched(what, damage, needle, existing, capsys):
    damage(existing)
    before = tree_digest(existing)
    status, err = call_main(["--resume", str(existing), "--no-progress"], capsys)
    assert status == 2
    assert needle in one_error_line(err) and err.strip().count("\n") == 0, err
    assert tree_digest(existing) == before


def test_resume_with_another_configs_checkpoints_exit_2_untouched(runs, tmp_path, capsys):
    """config.json valid but describing another model than the checkpoints hold."""
    d = tmp_path / "other"
    shutil.copytree(runs["A"][0], d)
    _edit_config(d, lambda c: c["model"].update(hidden=64))
    before = tree_digest(d)
    status, err = call_main(["--resume", str(d), "--no-progress"], capsys)
    assert status == 2
    assert "no readable checkpoint" in one_error_line(err)
    assert tree_digest(d) == before


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_or_truncated_checkpoints_exit_2_untouched(runs, tmp_path, damage, capsys):
    """Every checkpoint damaged: resume refuses with one line (the digest catches flipped bytes
    that orbax would restore silently) and leaves the directory as it was."""
    d = tmp_path / "corrupt"
    shutil.copytree(runs["A"][0], d)
    for step in ("40", "60"):
        corrupt(largest_file(d / "checkpoints" / step / "default"), damage)
    before = tree_digest(d)
    status, err = call_main(["--resume", str(d), "--no-progress"], capsys)
    assert status == 2
    line = one_error_line(err)
    assert "no readable checkpoint" in line and "step 60" in line and "step 40" in line
    if damage == "flip":
        assert "corrupted" in line
    assert tree_digest(d) == before


def test_unwritable_output_directory_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    cases = [(blocker / "run", "is not a directory"), (blocker, "exists and is not a directory")]
    if os.geteuid() != 0:  # root ignores permission bits: only check chmod as a normal user
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o500)
        cases.append((ro / "run", "is not writable"))
    for out, needle in cases:
        status, err = call_main(["--preset", "tiny", "--no-progress", "--out", str(out)], capsys)
        assert status == 2 and needle in one_error_line(err), err
    assert blocker.read_text() == "not a directory\n"
    # the same through a real process: exit status 2, one line, no traceback
    r = run_cli(["--preset", "tiny", "--out", str(blocker / "run")], base_env(), timeout=300)
    assert r.returncode == 2 and "is not a directory" in one_error_line(r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
