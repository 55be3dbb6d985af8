"""Learners. Each is `make_train(config) -> Trainer` (init / chunk / evaluate / train, all jittable),
sharing the models, envs, acting, the run driver, checkpoints and the analysis:

  dqn.py  the authors' learner: replay, target network, deep supervision (TrainConfig.algo "dqn")
  pqn.py  on-policy Q(lambda) over short rollouts of many envs, no replay or target network, the same
          deep supervision (Gallici et al. 2024; "pqn"; not HRM-Agent's)
"""
from __future__ import annotations

from hrm_jax.algos.common import Trainer, seed_keys
from hrm_jax.config import Config, ConfigError

__all__ = ["make_train", "seed_keys", "Trainer"]


def make_train(cfg: Config, **kw) -> Trainer:
    """The learner `cfg.train.algo` names."""
    if cfg.train.algo == "dqn":
        from hrm_jax.algos import dqn
        return dqn.make_train(cfg, **kw)
    if cfg.train.algo == "pqn":
        from hrm_jax.algos import pqn
        return pqn.make_train(cfg, **kw)
    raise ConfigError(f"algo={cfg.train.algo!r} is not allowed; choose one of: dqn, pqn")
