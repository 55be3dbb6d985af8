"""Jittable breadth-first search on small grids (4-neighbour moves).

Each grid row is packed into one uint32 bit mask, so one BFS layer for the whole grid is a handful
of shifts and ORs per row: cheap enough to run inside every vmapped environment step.
All functions are jit- and vmap-safe (the loops are `lax.while_loop`s on traced conditions).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

UNREACHABLE = -1


def pack_rows(free: jax.Array) -> jax.Array:
    """bool[H, W] (W <= 32) -> uint32[H], bit c of row r set iff free[r, c]."""
    W = free.shape[-1]
    weights = (jnp.uint32(1) << jnp.arange(W, dtype=jnp.uint32))
    return jnp.sum(jnp.where(free, weights, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)


def _point_rows(H: int, pos: jax.Array) -> jax.Array:
    """uint32[H] with the single bit of cell pos=(row, col) set."""
    return jnp.where(jnp.arange(H) == pos[0], jnp.uint32(1) << pos[1].astype(jnp.uint32), jnp.uint32(0))


def _expand(reach: jax.Array, free: jax.Array) -> jax.Array:
    """One BFS layer: reach plus its 4-neighbours, restricted to free cells. uint32[H]."""
    up = jnp.concatenate([reach[1:], jnp.zeros((1,), jnp.uint32)])     # row r gets row r+1
    down = jnp.concatenate([jnp.zeros((1,), jnp.uint32), reach[:-1]])  # row r gets row r-1
    return (reach | (reach << 1) | (reach >> 1) | up | down) & free


def shortest_path_length(blocked: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
    """Length (moves) of a shortest 4-neighbour path from src to dst avoiding blocked cells.

    blocked: bool[H, W]; src, dst: int32[2] (row, col). Returns int32, UNREACHABLE (-1) if no path.
    The source cell itself need not be free (the agent stands on it).
    """
    H = blocked.shape[0]
    free = pack_rows(~blocked)
    dst_rows = _point_rows(H, dst)
    start = _point_rows(H, src)

    def reached(reach):
        return jnp.any((reach & dst_rows) != 0)

    def cond(c):
        reach, _, changed = c
        return changed & ~reached(reach)

    def body(c):
        reach, d, _ = c
        new = _expand(reach, free) | reach
        return new, d + 1, jnp.any(new != reach)

    reach, d, _ = jax.lax.while_loop(cond, body, (start, jnp.int32(0), jnp.bool_(True)))
    return jnp.where(reached(reach), d, UNREACHABLE)


def reachable(blocked: jax.Array, src: jax.Array) -> jax.Array:
    """bool[H, W]: cells reachable from src (src included)."""
    H, W = blocked.shape
    free = pack_rows(~blocked)

    def cond(c):
        return c[1]

    def body(c):
        reach, _ = c
        new = _expand(reach, free) | reach
        return new, jnp.any(new != reach)

    reach, _ = jax.lax.while_loop(cond, body, (_point_rows(H, src), jnp.bool_(True)))
    bits = (reach[:, None] >> jnp.arange(W, dtype=jnp.uint32)[None, :]) & 1
    return bits.astype(bool)


def distance_field(blocked: jax.Array, dst: jax.Array) -> jax.Array:
    """int32[H, W]: shortest-path distance of every cell to dst (UNREACHABLE where no path).

    Blocked cells get UNREACHABLE, except dst itself (0). Used by the shortest-path policy and by
    the analysis of which cells lie on a shortest path.
    """
    H, W = blocked.shape
    big = jnp.int32(H * W + 1)
    d0 = jnp.full((H, W), big).at[dst[0], dst[1]].set(0)
    passable = ~blocked

    def relax(d):
        inf_row = jnp.full((1, W), big)
        inf_col = jnp.full((H, 1), big)
        n = jnp.minimum(
            jnp.minimum(jnp.concatenate([d[1:], inf_row]), jnp.concatenate([inf_row, d[:-1]])),
            jnp.minimum(jnp.concatenate([d[:, 1:], inf_col], 1), jnp.concatenate([inf_col, d[:, :-1]], 1)),
        )
        return jnp.minimum(d, jnp.where(passable, n + 1, big))

    def body(c):
        d, _ = c
        new = relax(d)
        return new, jnp.any(new != d)

    d, _ = jax.lax.while_loop(lambda c: c[1], body, (d0, jnp.bool_(True)))
    return jnp.where(d >= big, UNREACHABLE, d)
