"""Environment-change detection and the convergence / divergence curves of z
(hrm_jax.analysis.convergence; issue #6)."""
import jax
import jax.numpy as jnp
import numpy as np

import envs
from hrm_jax.analysis import convergence

# four-rooms doorways: (3,6) top-left|top-right, (6,2) top-left|bottom-left,
# (7,9) top-right|bottom-right, (10,6) bottom-left|bottom-right
ENV, _ = envs.make("four_rooms")


def changed(before, after):
    return bool(convergence.env_changed(ENV.blocked_grid(before), ENV.blocked_grid(after), before.agent,
                                     after.agent, after.goal))


def test_door_closing_on_the_shortest_path_is_a_change():
    a = ENV.make_state(start=(2, 2), goal=(2, 10))
    b = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(3, 6)])
    assert changed(a, b)
    # the door opening again is NOT a change by this definition (the authors'): the opened cell was
    # not on the previous (detour) path, and a path existed before
    assert not changed(b, a)


def test_door_closing_elsewhere_is_not_a_change():
    a = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(7, 9)])
    b = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(10, 6)])
    assert not changed(a, b)


def test_path_appearing_is_a_change():
    cut = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(3, 6), (6, 2)])
    assert int(ENV.optimal_path_length(cut)) == -1
    assert not convergence.shortest_path_cells(ENV.blocked_grid(cut), cut.agent, cut.goal).any()
    opened = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(6, 2)])
    assert changed(cut, opened)
    # still cut off, another door moved: no path before or after -> unchanged
    still = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(3, 6), (6, 2), (10, 6)])
    assert not changed(cut, still)


def test_agent_moving_only_is_not_a_change():
    a = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(10, 6)])
    b = ENV.make_state(start=(2, 2), goal=(2, 10), closed_doors=[(10, 6)], agent=(2, 3), time=1)
    assert not changed(a, b)


def test_shortest_path_cells_is_the_union_of_all_shortest_paths():
    s = ENV.make_state(start=(1, 1), goal=(2, 3))
    cells = np.asarray(convergence.shortest_path_cells(ENV.blocked_grid(s), s.agent, s.goal))
    expect = np.zeros_like(cells)
    expect[1:3, 1:4] = True  # every monotone path from (1,1) to (2,3) stays in this rectangle
    np.testing.assert_array_equal(cells, expect)


def test_changed_steps_and_mask_jit_over_time_and_envs():
    seq = [ENV.make_state(start=(2, 2), goal=(2, 10)),
           ENV.make_state(start=(2, 2), goal=(2, 10), agent=(2, 3), time=1),
           ENV.make_state(start=(2, 2), goal=(2, 10), agent=(2, 4), closed_doors=[(3, 6)], time=2),
           ENV.make_state(start=(2, 2), goal=(2, 10), agent=(2, 4), closed_doors=[(10, 6)], time=3)]
    states = jax.tree.map(lambda *x: jnp.stack(x)[:, None], *seq)  # [T=4, N=1]
    ch = jax.jit(lambda s: convergence.changed_steps(ENV, s))(states)
    np.testing.assert_array_equal(np.asarray(ch[:, 0]), [False, False, True, True])
    active = jnp.array([[True], [True], [True], [False]])
    np.testing.assert_array_equal(np.asarray(convergence.step_mask(active)[:, 0]), [False, True, True, False])


def test_mse_curves_on_a_synthetic_trace():
    # one step, one env, 3 segments, D=2: z after the segments = [0,0], [1,1], [3,3]
    z = jnp.array([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]])[None, :, None, :]  # [T=1, S=3, N=1, D=2]
    out = convergence.convergence_and_divergence(dict(z_H=z, z_L=2 * z))
    np.testing.assert_allclose(out["conv_z_H"][0, 0], [9.0, 4.0])   # MSE(z1, z3), MSE(z2, z3)
    np.testing.assert_allclose(out["div_z_H"][0, 0], [1.0, 9.0])    # MSE(z2, z1), MSE(z3, z1)
    np.testing.assert_allclose(out["conv_z_L"][0, 0], [36.0, 16.0])
    curves = np.arange(12, dtype=np.float32).reshape(2, 3, 2)        # [T=2, N=3, K=2]
    mask = np.array([[True, False, True], [False, False, True]])
    np.testing.assert_allclose(convergence.masked_median(curves, mask), [4.0, 5.0])  # rows 0, 4, 10 -> median 4
    assert np.isnan(convergence.masked_median(curves, np.zeros_like(mask))).all()
