"""What the HRM benchmarks (model, compile, train, seeds, xla-flags, learn) measure: the config
presets plus the authors' small configurations, the authors' own figures at those configurations,
and the per-preset choices (dtype, chunk size, how many repeats)."""
from __future__ import annotations

import argparse

from hrm_jax import config as C

# The authors' PyTorch code on this CPU (docs/reference.md §6), 2 threads, idle machine.
PEER = {
    "act_step_s": {"bfloat16": 15.3, "float32": 44.9},      # 256 envs, 8 segments no-grad + env step, per collection
    "act_forward_s": {"bfloat16": 15.0},                    # the model forward alone of that collection
    "update_s": {"bfloat16": 4.2, "float32": 8.8},          # one 1-step-gradient update, batch 256
    # end to end, real training loop (one collection of N envs per 8 gradient steps), bf16 (fp32)
    "train": {
        "paper": {"grad_steps_per_s": {"bfloat16": 0.107}, "transitions_per_s": {"bfloat16": 3.4},
                  "config": "paper config, 256 envs, batch 256"},
        "S1": {"grad_steps_per_s": {"bfloat16": 2.78, "float32": 1.78},
               "transitions_per_s": {"bfloat16": 22.2, "float32": 14.2}, "learning_share": 0.91,
               "config": "hidden 64, 1+1 layers, H1 L2, 2 segments, 64 envs, batch 64, 8 grad steps per collection"},
        "S2": {"grad_steps_per_s": {"bfloat16": 3.87, "float32": 2.32},
               "transitions_per_s": {"bfloat16": 30.9, "float32": 18.6}, "learning_share": 0.93,
               "config": "hidden 32, 1+1 layers, H1 L1, 1 segment, 64 envs, batch 64"},
        "S3": {"grad_steps_per_s": {"bfloat16": 0.51, "float32": 0.28},
               "transitions_per_s": {"bfloat16": 8.1, "float32": 4.5}, "learning_share": 0.86,
               "config": "hidden 64, 2+2 layers, H2 L2, 4 segments, 128 envs, batch 128"},
    },
}


def bench_presets() -> dict:
    """The config presets plus `s1` and `s2`: the authors' small configurations S1 and S2 of
    measurements.md (their model, and their loop shape: one collection per 8 gradient steps of
    one minibatch), for a like-for-like comparison with the authors' code."""
    loop = dict(grad_steps_per_collect=8, supervision_segments=8, eval_every=8 * 125, buffer_capacity=65_536)
    base = C.preset("paper")
    s1 = C.override(C.override(base, "model", hidden=64, H_layers=1, L_layers=1, H_cycles=1, L_cycles=2,
                               segments_per_step=2), "train", num_envs=64, batch_size=64, **loop)
    s2 = C.override(C.override(base, "model", hidden=32, H_layers=1, L_layers=1, H_cycles=1, L_cycles=1,
                               segments_per_step=1), "train", num_envs=64, batch_size=64, **loop)
    return {**C.PRESETS, "s1": s1, "s2": s2}


def preset_list(text: str) -> list[str]:
    """argparse type: "paper,cpu" -> ["paper", "cpu"] (names checked against bench_presets())."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    known = bench_presets()
    bad = [n for n in names if n not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: choose presets from {', '.join(known)}")
    return names


def with_dtype(cfg, dtype: str | None):
    return cfg if not dtype else C.override(cfg, "model", dtype=dtype)


def chunk_config(base, iterations: int, eval_envs: int):
    """The preset with a chunk (eval_every) of `iterations` iterations and `eval_envs` evaluation envs."""
    G = base.train.grad_steps_per_collect
    return C.validate(C.override(base, "train", eval_every=G * iterations, eval_envs=eval_envs,
                                 checkpoint_every=G * iterations))


def repeats_for(name: str, args) -> tuple[int, int]:
    """(repeats, warmup) for a preset: the paper preset may use fewer repeats (one call takes many seconds)."""
    if name == "paper":
        return getattr(args, "paper_repeats", args.repeats), getattr(args, "paper_warmup", args.warmup)
    return args.repeats, args.warmup
