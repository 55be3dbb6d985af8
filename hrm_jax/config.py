"""Configuration: frozen dataclasses with named presets, validated once at the edge.

Every field has a `help` string in its metadata; the CLI (`experiments.run`) is generated from
these dataclasses, so adding a field here adds a flag there.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid. The message is one line: what, and what is allowed."""


# how a device runs its seeds (TrainConfig.seed_loop; hrm_jax.sharding.over_seeds)
SEED_LOOPS = ("vmap", "map")


def _f(default, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class ModelConfig:
    """The Q-network: the HRM core (docs/reference.md §2) or a baseline. Defaults are the paper's configuration."""

    arch: str = _f("hrm", "Q-network: hrm (the HRM core: H and L modules, segments, carried z), or a baseline without z "
                   "(not HRM-Agent's; for telling the model from the RL loop): mlp (an MLP over one-hot glyphs) or cnn "
                   "(a small CNN over the grid). The baselines use baseline_width / cnn_channels and ignore the HRM fields",
                   ("hrm", "mlp", "cnn"))
    baseline_width: int = _f(128, "width of each hidden dense layer of the mlp / cnn baselines")
    cnn_channels: int = _f(16, "channels of each 3x3 convolution of the cnn baseline")
    hidden: int = _f(64, "width of every token vector (z_H, z_L, embeddings)")
    heads: int = _f(2, "attention heads (head dim = hidden / heads)")
    expansion: float = _f(4.0, "SwiGLU expansion; inner width = round(expansion*hidden*2/3) rounded up to a multiple of mlp_round")
    mlp_round: int = _f(256, "SwiGLU inner width is rounded up to a multiple of this (HRM: 256; small CPU models waste most of it)")
    H_layers: int = _f(4, "transformer blocks in the high-level (H) module")
    L_layers: int = _f(4, "transformer blocks in the low-level (L) module")
    H_cycles: int = _f(2, "H updates per segment (HRM's outer loop)")
    L_cycles: int = _f(2, "L updates per H update (HRM's inner loop)")
    segments_per_step: int = _f(8, "segments run per environment step when acting (paper: halt_max_steps=8)")
    rope_theta: float = _f(10000.0, "rotary position embedding base")
    pos_encoding: str = _f("rope", "positions: rope (authors'), learned (HRM's alternative: a learned absolute embedding added to the input, no rotary), "
                           "rope+learned (both), learned2d (not HRM's: a learned row plus a learned column embedding per grid cell) or rope+learned2d",
                           ("rope", "learned", "rope+learned", "learned2d", "rope+learned2d"))
    rms_eps: float = _f(1e-5, "RMSNorm epsilon")
    vocab_size: int = _f(131, "token vocabulary (ASCII codes; the output layer has this many rows)")
    num_actions: int = _f(4, "Q outputs used (N, E, S, W)")
    z_carry: str = _f("last_token", "z between env steps: last_token (authors' code), full (per-token z, paper text), reset (always H_init/L_init)",
                      ("last_token", "full", "reset"))
    q_head: str = _f("last_token_linear", "Q head: last_token_linear (authors': output layer on the last token's z_H), "
                     "agent_token_linear (the same layer on the agent's ('@') token) or mlp (2-layer on mean-pooled z_H)",
                     ("last_token_linear", "agent_token_linear", "mlp"))
    q_init_scale: float = _f(1.0, "scale of the Q head's initial weights: 1 = HRM's LeCun normal (initial Q values of "
                             "std ~1); smaller starts every Q near 0, 0 exactly at 0 (an option, not the authors')")
    build_act_head: bool = _f(False, "build HRM's (unused) ACT halting head, 2 outputs with bias (+130 params at hidden 64)")
    dtype: str = _f("float32", "compute dtype (parameters stay float32): float32 (CPU) or bfloat16 (GPU)", ("float32", "bfloat16"))

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def mlp_inner(self) -> int:
        inner = round(self.expansion * self.hidden * 2 / 3)
        return -(-inner // self.mlp_round) * self.mlp_round


@dataclass(frozen=True)
class EnvConfig:
    """Which maze and its dynamics (docs/reference.md §1)."""

    name: str = _f("four_rooms", "environment", ("four_rooms", "corridor_maze"))
    p_change: float = _f(0.05, "probability per step that the closed doors are resampled")
    door_dynamics: str = _f("joint", "joint: resample the whole closed set (authors' code); independent: each door toggles with p_change (paper text)",
                            ("joint", "independent"))
    closed_doors: int = _f(-1, "closed doors at a time (four-rooms; -1 = env default 1) / dynamic doors (maze; -1 = env default 5)")
    fixed_walls: int = _f(-1, "fixed walls placed at reset (corridor maze only; -1 = env default 10)")
    max_steps: int = _f(80, "truncation limit (blocked moves count)")
    blocked_reward: float = _f(-0.01, "reward of a move into a wall, closed door or the border (authors: -0.01); "
                               "a larger penalty, e.g. -0.1, is an option, not HRM-Agent's")
    goal_row: int = _f(-1, "fix the goal at this map row (with --goal-col; e.g. classic single-goal four-rooms), start, doors and maze walls stay random; -1 = uniform random goal (paper)")
    goal_col: int = _f(-1, "fix the goal at this map column (with --goal-row); -1 = uniform random goal (paper)")


@dataclass(frozen=True)
class TrainConfig:
    """The DQN loop (docs/reference.md §3). Defaults are the paper's configuration."""

    num_envs: int = _f(256, "parallel environments; one vectorised step per collection")
    total_grad_steps: int = _f(300_000, "gradient steps to train for")
    grad_steps_per_collect: int = _f(8, "gradient steps per collection (one minibatch, deep supervision)")
    supervision_segments: int = _f(8, "consecutive 1-step-gradient updates per minibatch, carry detached between them")
    batch_size: int = _f(256, "replay minibatch size")
    buffer_capacity: int = _f(1_048_576, "replay capacity in transitions")
    learning_starts: int = _f(0, "transitions in replay before learning starts (authors: 0 = as soon as one batch fits)")
    gamma: float = _f(0.95, "discount")
    n_step: int = _f(1, "n-step returns: the TD target sums n rewards (up to an episode's end) and bootstraps "
                     "from the target net n env steps later (authors: 1; n > 1 is an option, not HRM-Agent's)")
    double_dqn: bool = _f(False, "double-DQN target: the online net picks argmax_a Q(s', a), the target net values it "
                          "(van Hasselt et al. 2016; authors: false, the target net's own max; one more forward pass per minibatch)")
    loss: str = _f("mse", "TD loss: mse (authors') or huber", ("mse", "huber"))
    lr: float = _f(1e-4, "model learning rate (Adam)")
    beta1: float = _f(0.9, "Adam beta1")
    beta2: float = _f(0.95, "Adam beta2 (paper table; the authors' code ran 0.999)")
    weight_decay: float = _f(0.0, "model weight decay (decoupled)")
    puzzle_lr: float = _f(1e-2, "puzzle-embedding learning rate (sign-SGD)")
    puzzle_weight_decay: float = _f(0.1, "puzzle-embedding decoupled weight decay")
    warmup_steps: int = _f(10_000, "linear learning-rate warm-up (gradient steps), then constant")
    polyak: float = _f(0.999, "target-network Polyak factor per gradient step (target <- polyak*target + (1-polyak)*online)")
    eps_start: float = _f(1.0, "epsilon at step 0")
    eps_end: float = _f(0.15, "final epsilon (the published runs used 0.33)")
    eps_decay_steps: int = _f(300_000, "gradient steps over which epsilon decays linearly")
    eval_envs: int = _f(256, "fresh environments per greedy evaluation")
    eval_net: str = _f("online", "the network greedy evaluation acts with (and experiments.evaluate / analyze): online "
                       "(authors') or target (dqn only: the Polyak-averaged target network, an average of the recent "
                       "online weights that changes less between evaluations; not HRM-Agent's)", ("online", "target"))
    eval_every: int = _f(10_000, "gradient steps between greedy evaluations (also the logging / chunk size)")
    checkpoint_every: int = _f(50_000, "gradient steps between checkpoints (rounded to a multiple of eval_every)")
    keep_checkpoints: int = _f(3, "checkpoints kept")
    seeds: int = _f(1, "independent agents trained in one program (see seed_loop)")
    seed_loop: str = _f("vmap", "how a device runs its seeds: vmap (one batched program for all of them; what a GPU wants) or map "
                        "(lax.map: one seed after another in a loop, the same state and checkpoints; faster on a CPU, see "
                        "`python -m experiments.bench seeds`). Results agree up to float rounding; --resume keeps a run's loop unless this flag is given",
                        SEED_LOOPS)
    algo: str = _f("dqn", "learner: dqn (the authors': replay, target network, deep supervision) or pqn (on-policy "
                   "Q(lambda) over short rollouts of many envs, no replay or target network; Gallici et al. 2024; not HRM-Agent's)",
                   ("dqn", "pqn"))
    pqn_rollout_steps: int = _f(10, "pqn: env steps of every env per rollout (T); at most max_steps. "
                                "pqn ignores dqn's batch_size, buffer_capacity, learning_starts, grad_steps_per_collect, "
                                "n_step, double_dqn and polyak")
    pqn_epochs: int = _f(2, "pqn: passes over each rollout's num_envs*T transitions")
    pqn_minibatches: int = _f(5, "pqn: minibatches per epoch (must divide num_envs*T); each gets supervision_segments "
                              "gradient steps, so an iteration is pqn_epochs*pqn_minibatches*supervision_segments of them")
    pqn_lambda: float = _f(0.65, "pqn: lambda of the Q(lambda) targets (0 = one-step Q-learning, 1 = Monte-Carlo "
                           "bootstrapped at the rollout's end)")
    seed: int = _f(0, "base seed; agent i uses fold_in(key(seed), i)")
    first_agent: int = _f(0, "index of the run's first agent: it trains agents first_agent..first_agent+seeds-1 "
                          "(how a sweep adds seeds to an earlier run: the same agents a larger --seeds would train)")
    data_parallel: bool = _f(False, "one agent on many devices: environments and each minibatch are split over all devices, "
                             "gradients averaged by the compiler (default: seeds are split over devices instead)")

    @property
    def minibatch_rows(self) -> int:
        """Rows of one gradient step's minibatch: batch_size (dqn), or a rollout's num_envs x
        pqn_rollout_steps transitions split into pqn_minibatches (pqn)."""
        if self.algo == "pqn":
            return self.num_envs * self.pqn_rollout_steps // self.pqn_minibatches
        return self.batch_size


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differing_fields(self, other: "Config") -> list[str]:
        """Fields whose values differ, as "section.field" (e.g. ["model.q_head"])."""
        return [f"{s}.{k}" for s in ("env", "model", "train") for k, v in getattr(self, s).__dict__.items()
                if getattr(getattr(other, s), k) != v]

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Config":
        return Config(env=EnvConfig(**d["env"]), model=ModelConfig(**d["model"]), train=TrainConfig(**d["train"]))


PAPER = Config()

# The CPU-sized HRM: same algorithm (DQN, deep supervision, carry z, Polyak target), a small model
# (hidden 32, one block per module, 2 segments), 32 envs, batch 64, and a faster schedule. Sized so
# `python -m experiments.run` finishes in ~15 minutes on a shared 2-core CPU (docs/results/reproduce_cpu.md).
# Several seeds loop one after another (seed_loop="map"): on a CPU that beats one vmapped program.
# Greedy evaluation on 128 fresh environments (the authors and `paper`: 256): an evaluation of 256
# took ~10% of a training chunk here (5.4 of 53 s per agent per 1k steps on one core); 128 halves
# that (docs/results/reproduce_cpu.md: the cpu reproduction's time). Standard error of a success rate <= 0.044
# (<= 0.019 at 95%).
CPU = Config(
    model=ModelConfig(hidden=32, heads=2, H_layers=1, L_layers=1, H_cycles=1, L_cycles=1, segments_per_step=2,
                      mlp_round=32, pos_encoding="rope+learned"),
    train=TrainConfig(num_envs=32, batch_size=64, total_grad_steps=10_000, grad_steps_per_collect=2,
                      supervision_segments=2, buffer_capacity=65_536, warmup_steps=500, lr=1e-3, polyak=0.99,
                      eps_decay_steps=5_000, eps_end=0.33, eval_envs=128, eval_every=1_000,
                      checkpoint_every=5_000, seed_loop="map"),
)

# The `cpu` preset on the classic single-goal four-rooms (goal fixed in the bottom-right corner,
# starts uniform, doors dynamic) with a faster target network: learns in minutes on this CPU
# (greedy success ~0.8 after 6k gradient steps), where the paper's random-goal task does not
# (docs/results/fixed_goal.md). Not the paper's task: a working baseline for trying changes on a CPU.
FIXED_GOAL = Config(
    env=EnvConfig(goal_row=11, goal_col=11),
    model=CPU.model,
    train=replace(CPU.train, total_grad_steps=6_000, eval_every=500, checkpoint_every=3_000, polyak=0.9,
                  eval_envs=256),  # 256: as its results in docs/results were measured
)

# The paper's task (four-rooms, a new random goal every episode) on a CPU: the `cpu` preset plus two
# model options that are not the authors' (Q read at the agent's token; learned row + column
# positions), trained 3x longer. With them the small model can represent the random-goal policy and
# DQN learns it here (docs/results/random_goal.md: 9 of the 10 agents of a 5-seed carry/reset sweep reached
# 0.69-0.97 greedy success by 30k steps; ~30 min per agent per core of a 2-core CPU); without them
# the `cpu` preset stays below a random policy.
RANDOM_GOAL = Config(
    model=replace(CPU.model, q_head="agent_token_linear", pos_encoding="rope+learned2d"),
    train=replace(CPU.train, total_grad_steps=30_000, eval_envs=256),  # 256: as its results in docs/results were measured
)

# Seconds on a CPU: for tests, smoke checks and trying flags.
TINY = Config(
    model=ModelConfig(hidden=32, heads=2, H_layers=1, L_layers=1, H_cycles=1, L_cycles=1, segments_per_step=2),
    train=TrainConfig(num_envs=16, batch_size=32, total_grad_steps=40, grad_steps_per_collect=2,
                      supervision_segments=2, buffer_capacity=1024, warmup_steps=10,
                      eps_decay_steps=40, eval_envs=32, eval_every=20, checkpoint_every=20, lr=1e-3),
)

PRESETS: dict[str, Config] = {"paper": PAPER, "cpu": CPU, "fixed_goal": FIXED_GOAL, "random_goal": RANDOM_GOAL,
                             "tiny": TINY}


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def validate(cfg: Config) -> Config:
    """Check every field once, at the edge. Raises ConfigError with a one-line message."""
    for section in (cfg.env, cfg.model, cfg.train):
        for f in fields(section):
            v = getattr(section, f.name)
            kind = type(f.default)  # e.g. a hand-edited config.json: "hidden": 32.5 or "gamma": null
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) if kind is float else \
                (type(v) is kind)
            _check(ok, f"{f.name}={v!r} must be a{'n' if kind is int else ''} {'finite number' if kind is float else kind.__name__}")
            choices = f.metadata.get("choices")
            if choices is not None:
                _check(v in choices, f"{f.name}={v!r} is not allowed; choose one of: {', '.join(choices)}")
    m, t, e = cfg.model, cfg.train, cfg.env
    for name in ("baseline_width", "cnn_channels", "hidden", "heads", "H_layers", "L_layers", "H_cycles", "L_cycles", "segments_per_step",
                 "vocab_size", "num_actions", "mlp_round"):
        _check(getattr(m, name) >= 1, f"{name}={getattr(m, name)} must be >= 1")
    _check(m.hidden % m.heads == 0, f"hidden={m.hidden} must be divisible by heads={m.heads}")
    _check(m.head_dim % 2 == 0, f"head dim hidden/heads={m.head_dim} must be even (rotary embedding)")
    _check(m.expansion > 0, f"expansion={m.expansion} must be > 0")
    _check(m.q_init_scale >= 0, f"q_init_scale={m.q_init_scale} must be >= 0")
    _check(m.num_actions <= m.vocab_size, f"num_actions={m.num_actions} must be <= vocab_size={m.vocab_size}")
    _check(m.vocab_size >= 128, f"vocab_size={m.vocab_size} must be >= 128 (observations are ASCII codes)")
    for name in ("num_envs", "total_grad_steps", "grad_steps_per_collect", "supervision_segments", "batch_size",
                 "buffer_capacity", "eval_envs", "eval_every", "checkpoint_every", "keep_checkpoints", "seeds",
                 "eps_decay_steps", "n_step"):
        _check(getattr(t, name) >= 1, f"{name}={getattr(t, name)} must be >= 1")
    for name in ("pqn_rollout_steps", "pqn_epochs", "pqn_minibatches"):
        _check(getattr(t, name) >= 1, f"{name}={getattr(t, name)} must be >= 1")
    _check(0.0 <= t.pqn_lambda <= 1.0, f"pqn_lambda={t.pqn_lambda} must be in [0, 1]")
    if t.algo == "pqn":
        pqn_steps = t.pqn_epochs * t.pqn_minibatches * t.supervision_segments
        _check(t.num_envs * t.pqn_rollout_steps % t.pqn_minibatches == 0,
               f"pqn_minibatches={t.pqn_minibatches} must divide num_envs*pqn_rollout_steps="
               f"{t.num_envs * t.pqn_rollout_steps} (the transitions of a rollout)")
        _check(t.eval_every % pqn_steps == 0,
               f"eval_every={t.eval_every} must be a multiple of pqn_epochs*pqn_minibatches*supervision_segments="
               f"{pqn_steps} (the gradient steps of one pqn iteration)")
        _check(t.pqn_rollout_steps <= e.max_steps,
               f"pqn_rollout_steps={t.pqn_rollout_steps} must be <= max_steps={e.max_steps} (at most one truncation per env per rollout)")
    for name in ("learning_starts", "warmup_steps", "seed", "first_agent"):
        _check(getattr(t, name) >= 0, f"{name}={getattr(t, name)} must be >= 0")
    _check(t.eval_net == "online" or t.algo == "dqn",
           f"eval_net={t.eval_net!r} needs a target network; algo={t.algo!r} has none (use eval_net=online)")
    _check(t.grad_steps_per_collect % t.supervision_segments == 0,
           f"grad_steps_per_collect={t.grad_steps_per_collect} must be a multiple of supervision_segments="
           f"{t.supervision_segments} (each minibatch gets all its deep-supervision steps)")
    _check(t.eval_every % t.grad_steps_per_collect == 0,
           f"eval_every={t.eval_every} must be a multiple of grad_steps_per_collect={t.grad_steps_per_collect}")
    _check(t.batch_size <= t.buffer_capacity,
           f"batch_size={t.batch_size} is larger than buffer_capacity={t.buffer_capacity}")
    _check(t.n_step == 1 or t.buffer_capacity // t.num_envs > t.n_step,
           f"n_step={t.n_step} needs buffer_capacity // num_envs (steps kept per env) > n_step; "
           f"got {t.buffer_capacity} // {t.num_envs} = {t.buffer_capacity // t.num_envs}")
    _check(t.learning_starts <= t.buffer_capacity,
           f"learning_starts={t.learning_starts} is larger than buffer_capacity={t.buffer_capacity}")
    for name in ("gamma", "polyak", "eps_start", "eps_end", "beta1", "beta2"):
        v = getattr(t, name)
        _check(0.0 <= v <= 1.0, f"{name}={v} must be in [0, 1]")
    for name in ("lr", "puzzle_lr"):
        _check(getattr(t, name) > 0, f"{name}={getattr(t, name)} must be > 0")
    for name in ("weight_decay", "puzzle_weight_decay"):
        _check(getattr(t, name) >= 0, f"{name}={getattr(t, name)} must be >= 0")
    _check(0.0 <= e.p_change <= 1.0, f"p_change={e.p_change} must be in [0, 1]")
    _check(e.max_steps >= 1, f"max_steps={e.max_steps} must be >= 1")
    _check(math.isfinite(e.blocked_reward) and e.blocked_reward <= 0,
           f"blocked_reward={e.blocked_reward} must be a finite number <= 0 (authors: -0.01)")
    _check(e.closed_doors >= -1, f"closed_doors={e.closed_doors} must be >= 0 (or -1 for the env default)")
    _check((e.goal_row == -1) == (e.goal_col == -1),
           f"goal_row={e.goal_row}, goal_col={e.goal_col}: give both (a fixed goal cell) or neither (-1, a random goal)")
    _check(e.fixed_walls >= -1, f"fixed_walls={e.fixed_walls} must be >= 0 (or -1 for the env default)")
    _check(e.name == "corridor_maze" or e.fixed_walls in (-1, 0),
           f"fixed_walls={e.fixed_walls} applies only to corridor_maze (four-rooms has none)")
    return cfg


def closest_preset(cfg: Config, ignore: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The preset from which `cfg` differs in the fewest fields (ignoring `ignore`, "section.field"),
    and those fields as "field=value" in `cfg`."""
    def changed(p: Config) -> list[tuple[str, str]]:
        return [tuple(f.split(".")) for f in cfg.differing_fields(p) if f not in ignore]

    name = min(PRESETS, key=lambda n: len(changed(PRESETS[n])))
    return name, [f"{field}={getattr(getattr(cfg, section), field)}" for section, field in changed(PRESETS[name])]


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} does not exist; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def override(cfg: Config, section: str, **kw) -> Config:
    return replace(cfg, **{section: replace(getattr(cfg, section), **kw)})
