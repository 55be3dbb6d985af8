"""Jittable BFS against a plain-Python BFS on random layouts (hypothesis)."""
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

import envs
from envs import bfs


def py_bfs(blocked, src, dst):
    H, W = blocked.shape
    dist = {tuple(src): 0}
    q = deque([tuple(src)])
    while q:
        cur = q.popleft()
        if cur == tuple(dst):
            return dist[cur]
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            n = (cur[0] + dr, cur[1] + dc)
            if 0 <= n[0] < H and 0 <= n[1] < W and not blocked[n] and n not in dist:
                dist[n] = dist[cur] + 1
                q.append(n)
    return -1


_spl = jax.jit(bfs.shortest_path_length)
_field = jax.jit(bfs.distance_field)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.6), st.sampled_from([(13, 13), (11, 13), (7, 5)]))
def test_bfs_matches_python(seed, density, shape):
    rng = np.random.default_rng(seed)  # test data only; library code uses jax.random
    blocked = rng.random(shape) < density
    src = rng.integers(0, shape, 2)
    dst = rng.integers(0, shape, 2)
    blocked[tuple(src)] = False
    blocked[tuple(dst)] = False
    expect = py_bfs(blocked, src, dst)
    got = int(_spl(jnp.asarray(blocked), jnp.asarray(src, jnp.int32), jnp.asarray(dst, jnp.int32)))
    assert got == expect
    field = np.asarray(_field(jnp.asarray(blocked), jnp.asarray(dst, jnp.int32)))
    assert field[tuple(src)] == expect


def test_env_optimal_length_respects_doors():
    env, params = envs.make("four_rooms")
    # start in the top-left room, goal in the top-right room: through (3,6) it is 6 moves
    s = env.make_state(start=(3, 5), goal=(3, 7))
    assert int(env.optimal_path_length(s)) == 2
    s = env.make_state(start=(3, 5), goal=(3, 7), closed_doors=[(3, 6)])
    # around through the other three doorways
    d = int(env.optimal_path_length(s))
    assert d == py_bfs(np.asarray(env.blocked_grid(s)), (3, 5), (3, 7)) and d > 2
    maze, _ = envs.make("corridor_maze")
    s = maze.make_state(start=(1, 1), goal=(1, 3), closed_doors=[(1, 2), (2, 1)])
    assert int(maze.optimal_path_length(s)) == -1
