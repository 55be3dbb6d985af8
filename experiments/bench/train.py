"""`train`: env transitions/s and gradient steps/s of the real jitted training chunk, where an
iteration's time goes (acting, env stepping, the learner's minibatch step: each timed alone, in a
lax.scan as inside the chunk, round robin with the chunk), and the authors' code's figures."""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from experiments.bench.presets import PEER, bench_presets, chunk_config, preset_list, repeats_for, with_dtype
from experiments.bench.registry import subcommand
from experiments.bench.report import fmt_load1, fmt_rate, print_table
from experiments.bench.timing import compile_fn, first_call, time_round_robin
from hrm_jax import acting
from hrm_jax.algos import make_train
from hrm_jax.cli import non_negative_int, positive_int


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["cpu", "s1", "paper"],
                   help="presets (default cpu,s1,paper; s1/s2 = the authors' small configs S1/S2 with their loop "
                        "shape, 8 gradient steps per collection)")
    p.add_argument("--iterations", type=positive_int, default=25,
                   help="iterations (collection + its gradient steps) per timed chunk (default 25)")
    p.add_argument("--eval-envs", type=positive_int, default=16,
                   help="greedy-evaluation envs inside the chunk (timed separately and subtracted; default 16)")
    p.add_argument("--paper-iterations", type=positive_int, default=1, help="iterations per chunk at paper (default 1)")
    p.add_argument("--paper-eval-envs", type=positive_int, default=2, help="evaluation envs at paper (default 2)")
    p.add_argument("--paper-repeats", type=positive_int, default=1,
                   help="timed calls at paper (one iteration takes minutes on a CPU; default 1)")
    p.add_argument("--paper-warmup", type=non_negative_int, default=0,
                   help="warm-up calls at paper after the first call (default 0: the first call, made and reported "
                        "apart by every timing, is the warm-up)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="compute dtype (default: the preset's)")


def piece_fns(tr, cfg) -> dict:
    """The three pieces of a training iteration, each repeated in a `lax.scan` over `keys` (one step
    per key), as inside the chunk: a standalone call pays per-call costs (fresh temporary buffers)
    that a loop body does not, up to ~30% of a minibatch at the cpu preset. Returns name -> fn, all
    (state, keys) -> something small:
      act              acting.act (all segments on the envs' observations) + epsilon-greedy, z carried along
      env_step         the vmapped gymnax step (auto-reset) with uniformly random actions
      learn_minibatch  the learner's own step, tr.learn_minibatch: sample a replay minibatch, the
                       targets, supervision_segments gradient steps with the optimizer and the
                       Polyak target update"""
    m, N = cfg.model, cfg.train.num_envs
    model, env, env_params = tr.model, tr.env, tr.env_params

    def act(state, keys):
        v = {"params": state.params, "constants": state.constants}

        def body(z, k):
            q, z2, _ = acting.act(model, v, state.obs, z, m.segments_per_step)
            return z2, acting.epsilon_greedy(k, q, jnp.float32(0.1))

        return jax.lax.scan(body, state.z, keys)[1]

    def env_step(state, keys):
        def body(es, k):
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (N,), 0, m.num_actions, dtype=jnp.int32)
            _, es2, reward, _, _, _ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k_s, N), es, a, env_params)
            return es2, jnp.sum(reward)

        return jax.lax.scan(body, state.env_state, keys)[1]

    def learn_minibatch(state, keys):
        return jax.lax.scan(tr.learn_minibatch, state, keys)[1]

    return {"act": act, "env_step": env_step, "learn_minibatch": learn_minibatch}


def train_case(name: str, cfg, args, key) -> dict:
    m, t = cfg.model, cfg.train
    reps, warm = repeats_for(name, args)
    tr = make_train(cfg)
    N, G, S = t.num_envs, t.grad_steps_per_collect, t.supervision_segments
    iters = tr.iters_per_chunk
    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(tr.init)(key))
    init_s = time.perf_counter() - t0
    # the real chunk (`iters` iterations in one lax.scan + the greedy evaluation), and its pieces alone
    k_a, k_e, k_l = jax.random.split(jax.random.fold_in(key, 1), 3)
    chunk_c, chunk_info = compile_fn(jax.jit(tr.chunk), state)
    (state1, metrics), chunk_info = first_call(chunk_c, (state,), chunk_info)
    # the evaluation inside the chunk (same state, same key: the same episodes)
    ev_key = jax.random.fold_in(state1.eval_key, state1.grad_step)

    # each piece `iters` times in a lax.scan, as in the chunk (see piece_fns); per-step times = / iters
    pieces = piece_fns(tr, cfg)
    keys = {n: jax.random.split(k, iters) for n, k in zip(pieces, (k_a, k_e, k_l))}
    calls = {"chunk": (chunk_c, (state,), chunk_info),
             "evaluate": (jax.jit(tr.evaluate), (state1, ev_key)),
             **{n: (jax.jit(f), (state, keys[n])) for n, f in pieces.items()}}
    tt = time_round_robin(calls, repeats=reps, warmup=warm)
    t_chunk, t_eval = tt["chunk"], tt["evaluate"]
    train_s = t_chunk["median_s"] - t_eval["median_s"]
    if train_s <= 0:
        print(f"  warning: {name}: the evaluation ({t_eval['median_s']:.3f} s) took longer than the whole chunk "
              f"({t_chunk['median_s']:.3f} s): noise; rates use the chunk time", flush=True)
        train_s = t_chunk["median_s"]
    iter_s = train_s / iters
    for n in pieces:  # per step
        tt[n] = {**tt[n], "loop_steps": iters, "loop_median_s": tt[n]["median_s"], "median_s": tt[n]["median_s"] / iters,
                 "min_s": tt[n]["min_s"] / iters, "median_cpu_s": tt[n]["median_cpu_s"] / iters,
                 "all_s": [x / iters for x in tt[n]["all_s"]]}
    mb = G // S
    act_s, env_s, learn_s = tt["act"]["median_s"], tt["env_step"]["median_s"], mb * tt["learn_minibatch"]["median_s"]
    pieces_s = act_s + env_s + learn_s
    out = {
        "preset": name, "dtype": m.dtype, "num_envs": N, "batch_size": t.batch_size, "grad_steps_per_collect": G,
        "supervision_segments": S, "iterations": iters, "eval_envs": t.eval_envs, "init_s": init_s,
        "chunk": t_chunk, "evaluate": t_eval, "train_s": train_s, "iteration_s": iter_s,
        "transitions_per_s": N * iters / train_s, "grad_steps_per_s": G * iters / train_s,
        "transitions_per_s_incl_eval": N * iters / t_chunk["median_s"],
        "grad_steps_per_s_incl_eval": G * iters / t_chunk["median_s"],
        "pieces": {"act": tt["act"], "env_step": tt["env_step"], "learn_minibatch": tt["learn_minibatch"],
                   "minibatches_per_iteration": mb, "sum_s": pieces_s, "sum_vs_iteration": pieces_s / iter_s},
        # shares of the pieces' sum (robust to load changes); sum_vs_iteration says how well the pieces add
        # up to the measured iteration (the rest: replay add, epsilon, bookkeeping, noise)
        "shares": {"acting": act_s / pieces_s, "learning": learn_s / pieces_s, "env_step": env_s / pieces_s},
        "final_metrics": {k: float(v) for k, v in metrics.items()},
    }
    return out


def _peer_train_key(name: str) -> str | None:
    return {"paper": "paper", "s1": "S1", "s2": "S2"}.get(name)


@subcommand("train", "env transitions/s and gradient steps/s of the jitted training chunk, and the share of "
                     "acting / learning / env stepping, vs the authors' code", add_train_args)
def run_train(args) -> dict:
    presets = bench_presets()
    key = jax.random.key(args.seed)
    cases = []
    for i, name in enumerate(args.presets):
        paper = name == "paper"
        cfg = chunk_config(with_dtype(presets[name], args.dtype),
                           args.paper_iterations if paper else args.iterations,
                           args.paper_eval_envs if paper else args.eval_envs)
        reps, warm = repeats_for(name, args)
        note = f" ({reps} timed call(s), {warm} warm-up: one iteration takes minutes on a CPU)" if paper else ""
        print(f"\n{name}: chunk of {cfg.train.eval_every // cfg.train.grad_steps_per_collect} iterations{note} ...",
              flush=True)
        c = train_case(name, cfg, args, jax.random.fold_in(key, i))
        cases.append(c)
        print(f"  {fmt_rate(c['transitions_per_s'])} transitions/s, {c['grad_steps_per_s']:.2f} grad steps/s "
              f"(load {fmt_load1(c['chunk'])})", flush=True)

    print_table(["preset", "envs", "batch", "G", "iters", "compile s", "first call s", "chunk s", "chunk CPU s",
                 "eval s", "train s/iter", "transitions/s", "grad steps/s", "incl. eval", "repeats", "load"],
                [[c["preset"], c["num_envs"], c["batch_size"], c["grad_steps_per_collect"], c["iterations"],
                  f"{c['chunk']['compile_s']:.1f}", f"{c['chunk']['first_call_s']:.2f}",
                  f"{c['chunk']['median_s']:.3f}", f"{c['chunk']['median_cpu_s']:.3f}",
                  f"{c['evaluate']['median_s']:.3f}",
                  f"{c['iteration_s']:.4f}", f"{c['transitions_per_s']:.1f}", f"{c['grad_steps_per_s']:.2f}",
                  f"{c['transitions_per_s_incl_eval']:.1f} / {c['grad_steps_per_s_incl_eval']:.2f}",
                  c["chunk"]["repeats"], fmt_load1(c["chunk"])] for c in cases],
                title="Training loop: jit(tr.chunk) (iters x [act all segments -> env step -> replay add -> G grad "
                      "steps] + greedy eval); chunk s: warm calls (the first call after compiling is 'first call s'); "
                      "rates exclude the eval (timed alone with tr.evaluate and subtracted); "
                      "'incl. eval' = transitions/s / grad steps/s with it")
    print_table(["preset", "act s", "env step s", "learn s (x minibatches)", "sum s", "iteration s", "sum/iteration",
                 "acting", "learning", "env"],
                [[c["preset"], f"{c['pieces']['act']['median_s']:.4f}", f"{c['pieces']['env_step']['median_s']:.5f}",
                  f"{c['pieces']['learn_minibatch']['median_s']:.4f} x {c['pieces']['minibatches_per_iteration']}",
                  f"{c['pieces']['sum_s']:.4f}", f"{c['iteration_s']:.4f}", f"{c['pieces']['sum_vs_iteration']:.2f}",
                  f"{c['shares']['acting']:.1%}", f"{c['shares']['learning']:.1%}", f"{c['shares']['env_step']:.2%}"]
                 for c in cases],
                title="Where an iteration's time goes: each piece jitted alone (iters steps in a lax.scan, as in the "
                      "chunk; per step), timed in turn with the chunk (round-robin); shares of the pieces' sum; "
                      "sum/iteration compares that sum with the chunk's iteration (the rest is replay add, epsilon, "
                      "bookkeeping, and noise)")
    peer_rows, peer = [], []
    for c in cases:
        pk = _peer_train_key(c["preset"])
        if pk is None:
            continue
        pf = PEER["train"][pk]
        g16, g32 = pf["grad_steps_per_s"].get("bfloat16"), pf["grad_steps_per_s"].get("float32")
        t16, t32 = pf["transitions_per_s"].get("bfloat16"), pf["transitions_per_s"].get("float32")
        entry = {"preset": c["preset"], "peer": pk, "peer_config": pf["config"],
                 "grad_steps_speedup_vs_bf16": c["grad_steps_per_s"] / g16,
                 "grad_steps_speedup_vs_fp32": c["grad_steps_per_s"] / g32 if g32 else None,
                 "transitions_speedup_vs_bf16": c["transitions_per_s"] / t16,
                 "transitions_speedup_vs_fp32": c["transitions_per_s"] / t32 if t32 else None,
                 "same_loop_shape": c["grad_steps_per_collect"] == 8}  # the peer's: 8 grad steps per collection
        peer.append(entry)
        peer_rows.append([c["preset"], pk + ("" if entry["same_loop_shape"] else " (peer: 8 grad steps/collection)"),
                          f"{c['grad_steps_per_s']:.2f}", f"{g16}" + (f" ({g32})" if g32 else ""),
                          f"{entry['grad_steps_speedup_vs_bf16']:.1f}x", f"{c['transitions_per_s']:.1f}",
                          f"{t16}" + (f" ({t32})" if t32 else ""), f"{entry['transitions_speedup_vs_bf16']:.1f}x",
                          f"{c['shares']['learning']:.0%}",
                          f"{pf['learning_share']:.0%}" if "learning_share" in pf else "-"])
    if peer_rows:
        print_table(["preset", "authors' config", "grad steps/s", "authors' bf16 (fp32)", "speed-up",
                     "transitions/s", "authors' bf16 (fp32)", "speed-up", "learning share", "authors'"],
                    peer_rows, title="vs the authors' PyTorch code end to end on this CPU (their figures: idle "
                                     "machine, measurements.md; same model and loop; speed-up vs their faster bf16)")
    elif cases:
        print("\nNo peer figure for these presets (the authors' code was measured at paper, S1, S2, S3: "
              "--presets paper,s1,s2)", flush=True)
    return {"cases": cases, "peer": peer}
