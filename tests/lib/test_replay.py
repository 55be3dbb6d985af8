"""The replay (hrm_jax.replay): n-step transitions cut at the first episode end, and the bytes a
stored transition costs (what the `full` z capacity cap counts)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrm_jax.models.hrm import StoredZ
from hrm_jax.replay import Transition, example_transition, n_step_transition, transition_bytes


def _window(rewards, terminated, truncated):
    """Hand-made windows of consecutive steps: leaves [B, n, ...]; obs / z tagged by step index."""
    r = np.asarray(rewards, np.float32)
    B, n = r.shape
    step = np.broadcast_to(np.arange(n, dtype=np.uint8), (B, n))
    row = np.broadcast_to(np.arange(B, dtype=np.uint8)[:, None], (B, n))
    tag = lambda base: jnp.asarray(np.stack([base + 10 * row, base + step], -1))  # [B, n, 2]
    z = lambda base: StoredZ(z_H=tag(base).astype(jnp.float32), z_L=-tag(base).astype(jnp.float32))
    return Transition(obs=tag(0), action=jnp.asarray(step.astype(np.int32) + 1), reward=jnp.asarray(r),
                      next_obs=tag(100), terminated=jnp.asarray(terminated), truncated=jnp.asarray(truncated),
                      prev_z=z(0), next_z=z(100))


def test_n_step_transition_stops_at_the_first_episode_end():
    g = 0.9
    F, T = False, True
    seq = _window(rewards=[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [-0.01, -0.01, 1.0]],
                  terminated=[[F, F, F], [F, T, F], [F, F, F], [F, F, T]],
                  truncated=[[F, F, F], [F, F, F], [T, F, T], [F, F, F]])
    tr, discount = n_step_transition(seq, g)
    steps = np.array([3, 2, 1, 3])  # counted steps: all, up to the termination, up to the truncation, all
    np.testing.assert_allclose(np.asarray(tr.reward), [1 + g * 2 + g * g * 3, 1 + g * 2, 1.0, -0.01 - 0.01 * g + g * g],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(discount), g ** steps, rtol=1e-6)
    assert np.asarray(tr.terminated).tolist() == [False, True, False, True]
    assert np.asarray(tr.truncated).tolist() == [False, False, True, False]
    # first step's obs / action / acting z; the counted last step's next obs / converged z
    np.testing.assert_array_equal(np.asarray(tr.obs)[:, 1], [0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(tr.action), [1, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(tr.prev_z.z_L)[:, 1], [0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(tr.next_obs), np.stack([100 + 10 * np.arange(4), 100 + steps - 1], -1))
    np.testing.assert_array_equal(np.asarray(tr.next_z.z_H)[:, 1], 100 + steps - 1)
    np.testing.assert_array_equal(np.asarray(tr.next_z.z_L)[:, 0], -(100 + 10 * np.arange(4)))
    # a window of one step is the 1-step transition
    one, d1 = n_step_transition(jax.tree.map(lambda x: x[:, :1], seq), g)
    np.testing.assert_allclose(np.asarray(one.reward), np.asarray(seq.reward)[:, 0])
    np.testing.assert_allclose(np.asarray(d1), g)


@pytest.mark.parametrize("z_shape", [(32,), (122, 32)])
def test_transition_bytes_is_the_size_of_a_stored_transition(z_shape):
    assert transition_bytes(121, z_shape) == sum(x.nbytes for x in jax.tree.leaves(example_transition(121, z_shape)))
