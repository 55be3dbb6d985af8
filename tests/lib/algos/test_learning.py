"""The trainer learns: a short end-to-end run whose greedy success rises clearly above a uniformly
random policy's.

The paper's task (a new random goal every episode) needs far more gradient steps than a CI budget
allows at any model size that runs on this CPU (docs/results/cpu_preset_probe.md): the value depends on the goal
*relative* to the agent, and the transformer sits on a plateau for thousands of steps before it
relates the two tokens. The classic single-goal four-rooms (Sutton et al. 1999; `goal_row`/
`goal_col`; doors still dynamic, starts uniform), preset `fixed_goal`, keeps everything else —
the HRM of the `cpu` preset, carry z, DQN with deep supervision, the jitted chunk — and learns in
a few thousand steps.

The model here adds the two options of the `random_goal` preset (Q read at the agent's token,
learned row + column positions): with them the agent learns this task in 2-2.5k gradient steps
instead of 3.5-4k (keys 0-3, below), which keeps the suite inside CI's budget. The authors' Q head
is covered by the model tests (shapes, gradients, equivalences) and by the runs in docs/results.
"""
import jax
import numpy as np

from envs.policies import jit_run_episodes, random_policy
from hrm_jax.config import FIXED_GOAL, override, validate
from hrm_jax.algos import make_train

GRAD_STEPS = 5000   # the budget; the run stops at the first evaluation clearly above random


def test_fixed_goal_preset_learns():
    cfg = override(FIXED_GOAL, "train", total_grad_steps=GRAD_STEPS)
    cfg = validate(override(cfg, "model", q_head="agent_token_linear", pos_encoding="rope+learned2d"))
    tr = make_train(cfg)

    episodes = jit_run_episodes(tr.env, tr.env_params, random_policy, 4000)(jax.random.key(1))
    random_success = float(np.mean(episodes["success"]))
    assert 0.08 < random_success < 0.25, random_success   # ~14% from a uniform start to the far corner
    # clearly above random: 2.5x its success and at least 25 points more (256 greedy episodes per
    # evaluation: one evaluation's standard error is <= 0.03)
    learned = max(2.5 * random_success, random_success + 0.25)

    state = jax.jit(tr.init)(jax.random.key(0))
    chunk = jax.jit(tr.chunk)
    success = []
    for _ in range(tr.num_chunks):   # one evaluation per chunk (eval_every = 500 gradient steps)
        state, metrics = chunk(state)
        success.append(float(metrics["eval_success"]))
        if success[-1] >= learned:   # stop there: the rest of the budget would only cost CI time
            break
    print("greedy success per 500 steps:", success)
    assert int(state.grad_step) == cfg.train.eval_every * len(success) <= GRAD_STEPS

    # untrained, the deterministic greedy policy gets stuck against walls: below random
    assert success[0] < random_success, success
    # trained: clearly above random within the budget. Keys 0-3 here (2026-12-06) first reached it
    # at 2k, 2.5k, 2.5k and 2.5k steps (0.61, 0.95, 0.56, 0.89; key 0 is this test's), so the budget
    # leaves ~2.5k steps of margin. DQN's greedy policy can dip between evaluations (0.95 -> 0.05
    # for key 1), so reaching it once is the criterion, not staying there.
    assert max(success) >= learned, (success, random_success)
