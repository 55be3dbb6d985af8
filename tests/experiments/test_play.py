"""Scripted policies (envs/policies.py) and the play CLI (experiments/play.py)."""
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import bfs, policies

ROOT = Path(__file__).resolve().parents[2]
N, E, S, W = 0, 1, 2, 3


def run(name, policy, n, seed=0, **overrides):
    env, params = envs.make(name, **overrides)
    res = policies.jit_run_episodes(env, params, policies.as_policy(policy, env), n)(jax.random.key(seed))
    return {k: np.asarray(v) for k, v in res.items()}


@pytest.mark.parametrize("dynamics", ["joint", "independent"])
def test_shortest_path_static_four_rooms_is_optimal(dynamics):
    # one closed doorway of four never cuts the goal off: every episode succeeds in exactly
    # the BFS-optimal number of steps
    res = run("four_rooms", "shortest-path", 512, seed=1, p_change=0.0, door_dynamics=dynamics)
    assert np.all(res["optimal_start"] >= 1)
    assert res["success"].all()
    np.testing.assert_array_equal(res["length"], res["optimal_start"])
    np.testing.assert_allclose(res["return"], 1.0)


def test_shortest_path_static_corridor_maze_succeeds_iff_reachable():
    # with static doors the goal stays cut off in the episodes where it starts cut off
    res = run("corridor_maze", "shortest-path", 512, seed=2, p_change=0.0)
    reachable = res["optimal_start"] >= 0
    assert reachable.mean() > 0.8
    np.testing.assert_array_equal(res["success"], reachable)
    np.testing.assert_array_equal(res["length"][reachable], res["optimal_start"][reachable])
    assert np.all(res["length"][~reachable] == 80)


def test_dynamic_four_rooms_shortest_path_beats_random():
    sp = run("four_rooms", "shortest-path", 512, seed=3)
    rnd = run("four_rooms", "random", 512, seed=3)
    assert sp["success"].mean() >= 0.99
    assert rnd["success"].mean() <= 0.5
    assert sp["success"].mean() - rnd["success"].mean() >= 0.5
    assert sp["length"].mean() < rnd["length"].mean()


def test_same_key_same_episodes_and_different_keys_differ():
    a = run("corridor_maze", "random", 64, seed=5)
    b = run("corridor_maze", "random", 64, seed=5)
    c = run("corridor_maze", "random", 64, seed=6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["length"], c["length"])


@pytest.mark.parametrize("name", envs.ENV_NAMES)
def test_move_distances_match_distance_field(name):
    env, params = envs.make(name)

    def check(k):
        k_reset, k_cell = jax.random.split(k)
        _, state = env.reset(k_reset, params)
        state = state.replace(agent=env._floor[jax.random.randint(k_cell, (), 0, env.n_floor)])
        grid = env.blocked_grid(state)
        dist = bfs.distance_field(grid, state.goal)
        here, after, blocked = policies.move_distances(env, state)
        t = state.agent[None, :] + env._deltas
        exp_blocked = grid[t[:, 0], t[:, 1]]
        exp_after = jnp.where(exp_blocked, bfs.UNREACHABLE, dist[t[:, 0], t[:, 1]])
        same_here = here == dist[state.agent[0], state.agent[1]]
        return same_here & jnp.all(after == exp_after) & jnp.all(blocked == exp_blocked)

    ok = jax.jit(jax.vmap(check))(jax.random.split(jax.random.key(0), 2048))
    assert bool(ok.all())


def test_shortest_path_waits_by_bumping_when_cut_off():
    env, params = envs.make("corridor_maze")
    # goal in the top-left corner, both of its exits closed; one neighbour of the agent closed
    state = env.make_state(start=(3, 3), goal=(1, 1), closed_doors=[(1, 2), (2, 1), (3, 4)])
    assert int(env.optimal_path_length(state)) == -1
    assert int(policies.shortest_path_policy(env, state)) == E
    # no blocked neighbour at all: any move (action 0)
    state = env.make_state(start=(3, 3), goal=(1, 1), closed_doors=[(1, 2), (2, 1)])
    assert int(policies.shortest_path_policy(env, state)) == N
    # reachable: the move decreases the distance
    state = env.make_state(start=(1, 5), goal=(1, 1))
    assert int(policies.shortest_path_policy(env, state)) == W


def test_policies_jit_and_vmap():
    env, params = envs.make("four_rooms")
    keys = jax.random.split(jax.random.key(0), 16)
    obs, states = jax.vmap(env.reset, (0, None))(keys, params)
    a = jax.jit(jax.vmap(lambda s: policies.shortest_path_policy(env, s)))(states)
    r = jax.jit(jax.vmap(policies.random_policy))(keys, obs, states)
    for x in (a, r):
        assert x.shape == (16,) and x.dtype == jnp.int32
        assert bool(jnp.all((x >= 0) & (x <= 3)))
    assert len(set(np.asarray(r).tolist())) > 1


# ---- CLI ---------------------------------------------------------------------------------------

def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


def test_cli_scripted_policy():
    out = subprocess.run([sys.executable, "-m", "experiments.play", "--env", "four_rooms", "--policy", "shortest-path",
                          "--episodes", "64", "--seed", "4"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    rate = float(re.search(r"success rate\s+([0-9.]+)", out.stdout).group(1))
    mean_len = float(re.search(r"mean episode length\s+([0-9.]+)", out.stdout).group(1))
    mean_opt = float(re.search(r"mean BFS-optimal length at start\s+([0-9.]+)", out.stdout).group(1))
    assert rate >= 0.95
    assert mean_len >= mean_opt > 1
    assert "episodes                     64" in out.stdout


@pytest.mark.parametrize("flags", [["--env", "nope"], ["--p-change", "1.5"], ["--episodes", "0", "--policy", "random"],
                                   ["--episodes", "5"], ["--seed", "x"]])
def test_cli_bad_flags_exit_2(flags):
    out = subprocess.run([sys.executable, "-m", "experiments.play", *flags], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "error" in out.stderr


class Pty:
    """A child process on a pseudo-terminal; reads with timeouts."""

    def __init__(self, args):
        import pty
        import termios
        self.master, self.slave = pty.openpty()  # the slave stays open here to read its modes back
        self.modes = termios.tcgetattr(self.slave)
        # SIGINT back to default in the child, as for a foreground terminal program: a suite started
        # as a background job of a non-interactive shell inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler (the Ctrl-C test would wait forever).
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=ROOT,
                                     env=_env(), close_fds=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.buf = b""

    def modes_restored(self):
        import termios
        return termios.tcgetattr(self.slave) == self.modes

    def read_until(self, pred, timeout):
        end = time.time() + timeout
        while not pred(self.buf) and time.time() < end:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                self.buf += chunk
        return pred(self.buf)

    def frames(self):
        return self.buf.count(b"\x1b[2J")

    def send_and_wait_redraw(self, data, timeout=120):
        n = self.frames()
        os.write(self.master, data)
        return self.read_until(lambda b: b.count(b"\x1b[2J") > n, timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="needs a POSIX pseudo-terminal")
def test_interactive_through_a_pty():
    term = Pty([sys.executable, "-m", "experiments.play", "--env", "four_rooms", "--seed", "1", "--max-steps", "2"])
    try:
        assert term.read_until(lambda b: b"arrows/WASD move" in b, 180), term.buf[-2000:]
        first = term.buf.decode("latin-1")
        assert "step 0/2" in first and "@" in first and ">" in first
        map_rows = [ln for ln in first.split("\r\n") if re.fullmatch(r"[-.|@<>]{11}", ln)]
        assert len(map_rows) == 11 and sum(r.count("@") for r in map_rows) == 1  # the 11x11 view
        assert "optimal remaining path" in first
        assert term.send_and_wait_redraw(b"d")  # E
        assert b"step 1/2" in term.buf
        assert term.send_and_wait_redraw(b"\x1b[B")  # arrow down: S; the step limit ends the episode
        tail = term.buf.decode("latin-1").rsplit("\x1b[2J", 1)[-1]
        assert "new episode? [y/n]" in tail and ("TRUNCATED" in tail or "SUCCESS" in tail)
        assert term.send_and_wait_redraw(b"y")
        assert "episode 2" in term.buf.decode("latin-1").rsplit("\x1b[2J", 1)[-1]
        os.write(term.master, b"q")
        assert term.proc.wait(timeout=60) == 0
        assert term.modes_restored()
    finally:
        term.close()


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="needs a POSIX pseudo-terminal")
def test_interactive_restores_the_terminal_on_interrupt():
    import signal
    term = Pty([sys.executable, "-m", "experiments.play", "--env", "corridor_maze", "--seed", "2"])
    try:
        assert term.read_until(lambda b: b"arrows/WASD move" in b, 180), term.buf[-2000:]
        assert not term.modes_restored()  # raw mode while playing
        term.proc.send_signal(signal.SIGINT)
        # keep draining the terminal while waiting: a child blocked writing to a full pty never exits
        term.read_until(lambda b: term.proc.poll() is not None, 60)
        assert term.proc.poll() == 130, (term.proc.poll(), term.buf[-2000:])
        assert term.modes_restored()
    finally:
        term.close()
