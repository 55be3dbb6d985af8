"""jax.random's `split` and `bits` of the default Threefry PRNG, bit for bit, as unrolled kernels.

jax lowers Threefry on CPU as a rolled loop (one pass over memory per group of rounds); unrolled,
the 20 rounds are one fused elementwise kernel. Where jax would derive keys another way (another
PRNG implementation, non-partitionable threefry) both functions defer to jax.random.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 block function (20 rounds; Salmon et al. 2011) on uint32 arrays (they
    broadcast): the function behind jax.random's default PRNG."""
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + k0, x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def _key_data(key: jax.Array):
    """uint32[..., 2] data of a threefry key (typed or raw), or None where jax.random must be used."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key) if str(jax.random.key_impl(key)) == "threefry2x32" else None
    if jax.config.jax_default_prng_impl == "threefry2x32" and key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return key
    return None


def split2(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`jax.random.split(key)` as two keys of key's kind (typed or raw), bit for bit: new key i is
    the threefry block of counter (0, i)."""
    data = _key_data(key)
    if data is None:
        k = jax.random.split(key)
        return k[0], k[1]
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    out = []
    for i in (0, 1):
        d = jnp.stack(_threefry2x32(data[..., 0], data[..., 1], jnp.uint32(0), jnp.uint32(i)), axis=-1)
        d = jax.lax.optimization_barrier(d)  # computed once, not fused into (and redone by) each user
        out.append(jax.random.wrap_key_data(d, impl=jax.random.key_impl(key)) if typed else d)
    return out[0], out[1]


def random_bits(key: jax.Array, n: int) -> jax.Array:
    """`jax.random.bits(key, (n,), jnp.uint32)` of one key, bit for bit: uint32[n], element i the
    two words of the threefry block of counter (0, i), xored."""
    data = _key_data(key)
    if data is None:
        return jax.random.bits(key, (n,), jnp.uint32)
    a, b = _threefry2x32(data[..., 0, None], data[..., 1, None], jnp.zeros((n,), jnp.uint32),
                         jnp.arange(n, dtype=jnp.uint32))
    return jax.lax.optimization_barrier(a ^ b)  # computed once, not fused into (and redone by) each user
