"""Acting (hrm_jax.acting): the env a config names, epsilon-greedy actions and the per-env select
that reseeds z where an episode ended."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrm_jax import acting
from hrm_jax.config import EnvConfig


@pytest.mark.parametrize("name", ["four_rooms", "corridor_maze"])
def test_make_env_observation_has_obs_len_tokens(name):
    env, params = acting.make_env(EnvConfig(name=name))
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs.shape[0] == env.obs_len


def test_epsilon_greedy_is_greedy_at_0_and_uniform_at_1():
    q = jnp.tile(jnp.array([0.0, 3.0, 1.0, 2.0]), (4096, 1))
    np.testing.assert_array_equal(acting.epsilon_greedy(jax.random.key(0), q, jnp.float32(0.0)), 1)
    a = np.asarray(acting.epsilon_greedy(jax.random.key(0), q, jnp.float32(1.0)))
    assert a.dtype == np.int32
    counts = np.bincount(a, minlength=4)
    assert counts.sum() == 4096 and np.all(np.abs(counts / 4096 - 0.25) < 0.03)


def test_select_where_picks_per_env_and_broadcasts_over_trailing_axes():
    done = jnp.array([True, False, True])
    a = {"z": jnp.ones((3, 2, 5)), "s": jnp.ones(3)}
    b = {"z": jnp.zeros((3, 2, 5)), "s": jnp.zeros(3)}
    out = acting.select_where(done, a, b)
    np.testing.assert_array_equal(out["z"][:, 0, 0], [1, 0, 1])
    np.testing.assert_array_equal(out["s"], [1, 0, 1])
    assert out["z"].shape == (3, 2, 5)
