"""Scale-out (issue #8) on forced CPU devices: seeds split over 8 devices give the single-device
per-seed results; data-parallel training gives the single-device loss; a 2-process
jax.distributed run on localhost trains and writes one run directory.

Every JAX program runs in a subprocess (XLA_FLAGS must be set before JAX starts). All of them
are started together by one fixture, so the module costs about one tiny training of wall time.
"""
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
# tiny preset, one chunk of 4 gradient steps (2 collections), a small evaluation
SMALL = ["--preset", "tiny", "--no-progress", "--total-grad-steps", "4", "--eval-every", "4",
         "--checkpoint-every", "4", "--eval-envs", "8", "--max-steps", "20"]

DP_SCRIPT = r"""
import json, sys
import jax, numpy as np
from hrm_jax import sharding
from hrm_jax.config import preset, override
from hrm_jax.algos import make_train, seed_keys

def check(n_step):
    cfg = override(override(preset("tiny"), "train", total_grad_steps=4, eval_every=4, eval_envs=8,
                            data_parallel=True, n_step=n_step), "env", max_steps=10)
    keys = seed_keys(0, 1)
    tr, sh = sharding.make_sharded_train(cfg)
    state = sh.init(keys)
    hlo = sh.chunk.lower(state).compile().as_text()
    state, m = sh.chunk(state)
    ref = make_train(cfg)  # the plain single-device program
    r, mr = jax.jit(jax.vmap(ref.chunk))(jax.jit(jax.vmap(ref.init))(keys))
    leaves = lambda s: [np.asarray(x) for x in jax.tree.leaves(jax.device_get(s.params))]
    return dict(
        devices=len(jax.devices()), mesh=dict(sh.mesh.shape), obs_spec=str(state.obs.sharding.spec),
        replicated=all(l.sharding.is_fully_replicated for l in jax.tree.leaves((state.params, state.buffer))),
        all_reduce="all-reduce" in hlo,
        metrics={k: [float(np.asarray(m[k])[0]), float(np.asarray(mr[k])[0])] for k in mr},
        params_maxdiff=max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(state), leaves(r))))

print(json.dumps({n: check(n) for n in (1, 3)}))  # 1-step (item buffer) and 3-step (trajectory buffer) replay
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    return dict(ENV, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every subprocess at once; wait for all of them."""
    root = tmp_path_factory.mktemp("scaling")
    run = [sys.executable, "-m", "experiments.run"]
    port = _free_port()
    dist = root / "dist"
    dist.mkdir()
    procs = {
        "one": subprocess.Popen(run + SMALL + ["--seeds", "8", "--out", str(root / "one")], env=_env(1),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "eight": subprocess.Popen(run + SMALL + ["--seeds", "8", "--out", str(root / "eight")], env=_env(8),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        # seeds looped with lax.map, 2 per device on 2 devices (each device loops over its own: shard_map)
        "map2": subprocess.Popen(run + SMALL + ["--seeds", "4", "--seed-loop", "map", "--out", str(root / "map2")],
                                 env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "dp": subprocess.Popen([sys.executable, "-c", DP_SCRIPT], env=_env(8),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    for pid in (0, 1):  # 2 processes x 2 devices = a 4-device global mesh, 1 seed per device
        procs[f"p{pid}"] = subprocess.Popen(
            run + SMALL + ["--seeds", "4", "--out", str(dist / "run"), "--distributed",
                           "--coordinator-address", f"127.0.0.1:{port}", "--num-processes", "2",
                           "--process-id", str(pid)],
            env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    try:
        for name, p in procs.items():
            out, err = p.communicate(timeout=900)
            results[name] = SimpleNamespace(returncode=p.returncode, stdout=out, stderr=err)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    return root, results


def _rows(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    for r in rows:
        r.pop("wall_time_s"), r.pop("env_steps_per_s")
    return rows


def _assert_rows_close(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert np.isclose(ra[k], rb[k], rtol=1e-4, atol=1e-5), (k, ra, rb)


def test_seeds_on_8_devices_equal_one_device(runs):
    from hrm_jax import runner

    root, res = runs
    for name in ("one", "eight"):
        assert res[name].returncode == 0, res[name].stderr[-3000:]
    one, eight = _rows(root / "one" / "metrics.jsonl"), _rows(root / "eight" / "metrics.jsonl")
    assert [r["seed"] for r in eight] == list(range(8))
    _assert_rows_close(one, eight)
    # parameters of every seed: equal up to float rounding (each device compiles the vmapped
    # program for 1 seed instead of 8, so XLA may order a few float operations differently)
    _, _, s1, step1 = runner.load_run(str(root / "one"))
    _, _, s8, step8 = runner.load_run(str(root / "eight"))
    assert step1 == step8 == 4
    for a, b in zip(*(jax_leaves(s.params) for s in (s1, s8))):
        assert a.shape[0] == 8
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_seeds_looped_on_2_devices_equal_vmapped_on_one(runs):
    """--seed-loop map with the seeds split over devices: each device loops over its 2 seeds; the
    run's metrics and parameters are those of agents 0-3 of the vmapped single-device run, up to
    float rounding (agent i's key does not depend on how many seeds run)."""
    from hrm_jax import runner

    root, res = runs
    for name in ("one", "map2"):
        assert res[name].returncode == 0, res[name].stderr[-3000:]
    assert json.loads((root / "map2" / "config.json").read_text())["train"]["seed_loop"] == "map"
    _assert_rows_close(_rows(root / "one" / "metrics.jsonl")[:4], _rows(root / "map2" / "metrics.jsonl"))
    _, _, s1, _ = runner.load_run(str(root / "one"))
    _, _, s2, _ = runner.load_run(str(root / "map2"))
    for a, b in zip(*(jax_leaves(s.params) for s in (s1, s2))):
        assert a.shape[0] == 8 and b.shape[0] == 4
        np.testing.assert_allclose(a[:4], b, rtol=1e-4, atol=1e-5)


def test_one_device_is_bit_identical_to_plain_jit(runs):
    """On one device the sharded path compiles today's program: same parameter bytes as
    jax.jit(jax.vmap(...)) without any sharding (this test process has one CPU device). The
    lax.map loop over the same seeds gives the same parameters up to float rounding."""
    import jax

    from hrm_jax import runner
    from hrm_jax import sharding
    from hrm_jax.config import Config
    from hrm_jax.algos import make_train, seed_keys

    root, res = runs
    assert res["one"].returncode == 0, res["one"].stderr[-3000:]
    cfg = Config.from_dict(json.loads((root / "one" / "config.json").read_text()))
    tr = make_train(cfg)
    start = jax.jit(jax.vmap(tr.init))(seed_keys(cfg.train.seed, cfg.train.seeds))
    state = start
    for _ in range(tr.num_chunks):
        state, _ = jax.jit(jax.vmap(tr.chunk))(state)
    summary = json.loads((root / "one" / "summary.json").read_text())
    assert runner.params_digest(state) == summary["params_sha256"]

    # seed_loop="map" on one device: one lax.map (a scan over the 8 seeds) of the single-agent
    # chunk, same state layout, same results up to float rounding
    looped = sharding.over_seeds(tr.chunk, "map")
    outer = [e for e in jax.make_jaxpr(looped)(start).eqns if e.primitive.name == "scan"]
    assert len(outer) == 1 and outer[0].params["length"] == cfg.train.seeds
    # one seed is not looped: the same program as vmap (so a one-seed run is bit-identical)
    first = jax.tree.map(lambda x: x[:1], start)
    ops = lambda f: [(e.primitive.name, [v.aval for v in e.outvars]) for e in jax.make_jaxpr(f)(first).eqns]
    assert ops(looped) == ops(jax.vmap(tr.chunk))  # (str() differs: inner functions get numbered names)
    mapped = start
    for _ in range(tr.num_chunks):
        mapped, _ = jax.jit(looped)(mapped)
    assert jax.tree.structure(mapped) == jax.tree.structure(state)
    for a, b in zip(jax_leaves(mapped.params), jax_leaves(state.params)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_data_parallel_loss_equals_single_device(runs):
    _, res = runs
    r = res["dp"]
    assert r.returncode == 0, r.stderr[-3000:]
    outs = json.loads(r.stdout.strip().splitlines()[-1])
    assert sorted(outs) == ["1", "3"]  # n_step
    for out in outs.values():
        _assert_data_parallel_equals_single_device(out)


def _assert_data_parallel_equals_single_device(out):
    assert out["devices"] == 8 and out["mesh"] == {"seeds": 1, "data": 8}
    assert out["obs_spec"] == "P(None, 'data')"  # envs split over devices (after the seed axis)
    assert out["replicated"]  # parameters and replay buffer on every device
    assert out["all_reduce"]  # minibatch means (loss -> gradients) reduced across devices
    loss_dp, loss_1 = out["metrics"]["loss"]
    assert np.isclose(loss_dp, loss_1, rtol=1e-5, atol=1e-6), (loss_dp, loss_1)
    for k, (a, b) in out["metrics"].items():
        assert np.isclose(a, b, rtol=1e-4, atol=1e-5), (k, a, b)
    assert out["params_maxdiff"] < 1e-5


def test_two_process_distributed_run(runs):
    root, res = runs
    for name in ("p0", "p1"):
        assert res[name].returncode == 0, res[name].stderr[-3000:]
    dist = root / "dist"
    assert os.listdir(dist) == ["run"]  # exactly one run directory
    run = dist / "run"
    for name in ("config.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert (run / name).stat().st_size > 0, name
    assert sorted(int(d) for d in os.listdir(run / "checkpoints") if d.isdigit()) == [4]
    assert "greedy success" in res["p0"].stdout and "greedy success" not in res["p1"].stdout
    rows = _rows(run / "metrics.jsonl")
    assert [r["seed"] for r in rows] == [0, 1, 2, 3]  # written once, by process 0
    # agent i's key does not depend on how many seeds run: seeds 0-3 here = seeds 0-3 of --seeds 8
    assert res["one"].returncode == 0
    _assert_rows_close(rows, _rows(root / "one" / "metrics.jsonl")[:4])


def test_seed_fallback_picks_the_most_devices_that_divide():
    from hrm_jax.sharding import pick_devices

    dev = lambda p, i: SimpleNamespace(process_index=p, id=p * 100 + i)
    eight = [dev(0, i) for i in range(8)]
    count = lambda seeds, devs: len(pick_devices(lambda m: seeds % m == 0, devs))
    assert count(16, eight) == 8 and count(8, eight) == 8
    assert count(6, eight) == 6 and count(5, eight) == 5 and count(9, eight) == 3 and count(1, eight) == 1
    two_hosts = [dev(p, i) for p in (0, 1) for i in range(4)]
    chosen = pick_devices(lambda m: 6 % m == 0, two_hosts)
    assert [d.process_index for d in chosen] == [0, 0, 0, 1, 1, 1]  # the same number from each process
    assert pick_devices(lambda m: 3 % m == 0, two_hosts) == []  # 3 seeds cannot split over 2 processes
