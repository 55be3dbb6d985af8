"""The episode bootstrap behind the verdicts on the paper's claims (hrm_jax.analysis.claims)."""
import numpy as np

from hrm_jax.analysis.claims import bootstrap_counts, bootstrap_medians


def test_episode_bootstrap_counts_and_weighted_medians():
    """The bootstrap behind each verdict: resample counts from a jax.random key (the same seed, the
    same resamples), and the weighted median they give."""
    c = bootstrap_counts(0, 300, 7)
    assert c.shape == (300, 7) and (c.sum(axis=1) == 7).all() and (c >= 0).all()
    np.testing.assert_array_equal(c, bootstrap_counts(0, 300, 7))
    assert not np.array_equal(c, bootstrap_counts(1, 300, 7))
    assert abs(c.mean() - 1.0) < 1e-9 and 0.6 < c.var() < 1.1  # multinomial(7, 1/7): variance 6/7 per cell
    assert bootstrap_counts(0, 0, 7).shape == (0, 7) and bootstrap_counts(0, 5, 0).shape == (5, 0)
    # samples of episodes 0, 0, 1, 2 (values 1, 2, 10, 20; K = 1)
    values, episodes = np.array([[1.0], [2.0], [10.0], [20.0]]), np.array([0, 0, 1, 2])
    counts = np.array([[1, 1, 1],    # every episode once: lower median of 1, 2, 10, 20 -> 2
                       [0, 3, 0],    # only episode 1 -> 10
                       [2, 0, 1],    # weights 2, 2, 0, 1 over 1, 2, 10, 20: cumulative 2, 4 of 5 -> 2
                       [0, 1, 3]])   # weights 0, 0, 1, 3 -> 20
    np.testing.assert_array_equal(bootstrap_medians(values, episodes, counts)[:, 0], [2.0, 10.0, 2.0, 20.0])
