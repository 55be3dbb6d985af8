"""`model`: one acting step (all segments, no gradient, num_envs envs) and one 1-step-gradient
update (batch_size) per preset: time, FLOP/s (analytic, cross-checked with XLA's cost analysis of
loop-free programs) vs a plain GEMM of the model's shape in the same run, and vs the authors' code
at the paper config."""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

from experiments.bench.env import reset_envs
from experiments.bench.presets import PEER, bench_presets, preset_list, repeats_for, with_dtype
from experiments.bench.registry import subcommand
from experiments.bench.report import fmt_gflop, fmt_load1, pass_miss, print_table
from experiments.bench.timing import compile_fn, time_call, time_fn
from hrm_jax import acting
from hrm_jax.algos.common import make_optimizer, segment_td_grad
from hrm_jax.cli import non_negative_int, positive_int
from hrm_jax.config import validate
from hrm_jax.models.flops import act_flops, grad_step_flops
from hrm_jax.models.hrm import reads_out
from hrm_jax.models.hrm import HRM, Carry, init_variables, make_model, readout_tokens, seed_carry

TARGET_GEMM_FRACTION = 0.5     # acting FLOP/s >= 50% of a plain GEMM's


def xla_flops(compiled) -> float | None:
    """XLA's HLO cost analysis of a compiled program (loop bodies are counted ONCE, whatever the
    trip count: see `model` for the loop-free programs used for the cross-check)."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 (backend without cost analysis)
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    v = (ca or {}).get("flops")
    return float(v) if v is not None else None


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", type=preset_list, default=["paper", "cpu", "tiny"],
                   help="config presets to measure (default paper,cpu,tiny)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="compute dtype (default: the preset's)")
    p.add_argument("--paper-repeats", type=positive_int, default=3,
                   help="timed calls at the paper preset (one acting step takes tens of seconds on a CPU; default 3)")
    p.add_argument("--paper-warmup", type=non_negative_int, default=1,
                   help="warm-up calls at the paper preset after the first call (default 1)")
    p.add_argument("--gemm-size", type=positive_int, default=2048, help="the square GEMM's size (default 2048)")


def model_case(name: str, cfg, args, key) -> dict:
    """Acting step (acting.act: all segments, no gradient, num_envs envs) and 1-step-gradient update
    (the learner's segment_td_grad + its optimizer, batch_size) of one preset."""
    m, t = cfg.model, cfg.train
    env, env_params = acting.make_env(cfg.env)
    model = make_model(m, env.maze.obs_shape[1])
    T = env.obs_len
    N, B = t.num_envs, t.batch_size
    k_init, k_obs, k_obs_b, k_act, k_y = jax.random.split(key, 5)
    variables = init_variables(model, k_init, T)
    params, consts = variables["params"], variables["constants"]
    reps, warm = repeats_for(name, args)

    # -- acting: all segments, no gradient, on N real observations from H_init/L_init
    obs, _ = reset_envs(env, env_params, N, k_obs)
    z = acting.initial_z(model, variables, N, T)
    act = jax.jit(lambda v, o, zz: acting.act(model, v, o, zz, m.segments_per_step)[:2])
    act_c, c_s = compile_fn(act, variables, obs, z)
    t_act = time_call(act_c, variables, obs, z, repeats=reps, warmup=warm, compile_info=c_s)
    act_analytic = act_flops(m, T, N)
    xla_act_as_compiled = xla_flops(act_c)

    # loop-free cross-check: one segment (no batch chunking) x segments_per_step + embedding + Q head
    dt = jnp.bfloat16 if m.dtype == "bfloat16" else jnp.float32
    x_s = jax.ShapeDtypeStruct((N, T + 1, m.hidden), dt)
    z_s = jax.ShapeDtypeStruct((N, T + 1, m.hidden), jnp.float32)
    # (acting.act computes the last segment's final H update at the read-out tokens only, hrm_jax.models.hrm)
    f_reason = jax.jit(lambda v, x, zh, zl: model.apply(v, x, Carry(zh, zl), method=HRM.reason))
    f_embed = jax.jit(lambda v, o: model.apply(v, o, method=HRM.embed))
    if reads_out(m, "stored"):
        f_last = jax.jit(lambda v, x, zh, zl, o: model.apply(v, x, Carry(zh, zl), readout_tokens(m, o), False,
                                                            method=HRM.reason)[1])
        f_q = jax.jit(lambda v, zq: model.apply(v, zq[:, 0], method=HRM.q_from_token))
        last, q_part = f_last.lower(variables, x_s, z_s, z_s, obs).compile(), f_q.lower(variables, jax.eval_shape(
            f_last, variables, x_s, z_s, z_s, obs)).compile()
    else:
        last = f_reason.lower(variables, x_s, z_s, z_s).compile()
        q_part = jax.jit(lambda v, zh, o: model.apply(v, zh, o, method=HRM.q_values)).lower(variables, z_s, obs).compile()
    parts = [xla_flops(f_reason.lower(variables, x_s, z_s, z_s).compile()), xla_flops(last),
             xla_flops(f_embed.lower(variables, obs).compile()), xla_flops(q_part)]
    xla_act = None if None in parts else (m.segments_per_step - 1) * parts[0] + sum(parts[1:])

    # -- one 1-step-gradient update: the learner's gradient of one segment's TD loss + its optimizer
    tx = make_optimizer(cfg)
    opt_state = tx.init(params)
    obs_b, _ = reset_envs(env, env_params, B, k_obs_b)
    carry_b = seed_carry(model, variables, acting.initial_z(model, variables, B, T), B, T)
    action = jax.random.randint(k_act, (B,), 0, m.num_actions, dtype=jnp.int32)
    y = jax.random.normal(k_y, (B,), jnp.float32)

    def update(p, o_state, carry, tokens, a, yy, chunk=None):
        (loss, (new, _q)), grads = segment_td_grad(model, p, consts, tokens, carry, a, yy, t.loss, chunk)
        updates, o_state = tx.update(grads, o_state, p)
        return optax.apply_updates(p, updates), o_state, loss, new

    upd = jax.jit(update)
    u_args = (params, opt_state, carry_b, obs_b, action, y)
    upd_c, c_s = compile_fn(upd, *u_args)
    t_upd = time_call(upd_c, *u_args, repeats=reps, warmup=warm, compile_info=c_s)
    upd_analytic = grad_step_flops(m, T, B)
    xla_upd_as_compiled = xla_flops(upd_c)
    xla_upd = xla_flops(jax.jit(lambda *a: update(*a, chunk=0)).lower(*u_args).compile())

    # -- a plain GEMM of the model's shape: [N*(T+1), D] x [D, 4D], same dtype
    M_, K_, N_ = N * (T + 1), m.hidden, 4 * m.hidden
    ka, kb = jax.random.split(jax.random.fold_in(key, 7))
    a_ = jax.random.normal(ka, (M_, K_), jnp.float32).astype(dt)
    b_ = jax.random.normal(kb, (K_, N_), jnp.float32).astype(dt)
    t_gemm = time_fn(jax.jit(jnp.dot), a_, b_, repeats=args.repeats, warmup=args.warmup)
    gemm_flops = 2 * M_ * K_ * N_

    def rate(fl, tt):
        return fl / tt["median_s"]

    return {
        "preset": name, "dtype": m.dtype, "num_envs": N, "batch_size": B, "obs_len": T,
        "segments_per_step": m.segments_per_step,
        "act": {**t_act, "flops_analytic": act_analytic, "flops_xla_loop_free": xla_act,
                "flops_xla_as_compiled": xla_act_as_compiled, "flops_per_s": rate(act_analytic, t_act)},
        "update": {**t_upd, "flops_analytic": upd_analytic, "flops_xla_loop_free": xla_upd,
                   "flops_xla_as_compiled": xla_upd_as_compiled, "flops_per_s": rate(upd_analytic, t_upd)},
        "gemm": {**t_gemm, "shape": [M_, K_, N_], "label": f"(B*S) x D x 4D = {M_} x {K_} x {N_}",
                 "flops": gemm_flops, "flops_per_s": rate(gemm_flops, t_gemm)},
        "act_vs_gemm": rate(act_analytic, t_act) / rate(gemm_flops, t_gemm),
    }


@subcommand("model", "one acting step and one 1-step-gradient update per preset: time, FLOP/s vs a plain GEMM, "
                     "vs the authors' code", add_model_args)
def run_model(args) -> dict:
    key = jax.random.key(args.seed)
    presets = bench_presets()
    cases = []
    for i, name in enumerate(args.presets):
        cfg = validate(with_dtype(presets[name], args.dtype))
        reps, warm = repeats_for(name, args)
        note = f" ({reps} timed calls, {warm} warm-up: one call takes many seconds)" if name == "paper" else ""
        print(f"\n{name}: measuring{note} ...", flush=True)
        cases.append(model_case(name, cfg, args, jax.random.fold_in(key, i)))
        c = cases[-1]
        print(f"  act {c['act']['median_s']:.4f} s, update {c['update']['median_s']:.4f} s "
              f"(load {fmt_load1(c['update'])})", flush=True)

    # the square GEMM, once
    G = args.gemm_size
    ka, kb = jax.random.split(jax.random.fold_in(key, 1000))
    sq = {}
    for dt_name in sorted({c["dtype"] for c in cases}):
        dt = jnp.bfloat16 if dt_name == "bfloat16" else jnp.float32
        a_, b_ = (jax.random.normal(k, (G, G), jnp.float32).astype(dt) for k in (ka, kb))
        tg = time_fn(jax.jit(jnp.dot), a_, b_, repeats=args.repeats, warmup=args.warmup)
        sq[dt_name] = {**tg, "shape": [G, G, G], "flops": 2 * G ** 3, "flops_per_s": 2 * G ** 3 / tg["median_s"]}
    for c in cases:
        c["act_vs_square_gemm"] = c["act"]["flops_per_s"] / sq[c["dtype"]]["flops_per_s"]

    rows = []
    for c in cases:
        for what, label, n in (("act", "acting step (all segments, no grad)", c["num_envs"]),
                               ("update", "update: 1-step grad + optimizer", c["batch_size"])):
            r = c[what]
            ratio = (r["flops_xla_loop_free"] / r["flops_analytic"]) if r["flops_xla_loop_free"] else None
            rows.append([c["preset"], label, n, f"{r['compile_s']:.2f}", f"{r['first_call_s']:.3f}",
                         f"{r['median_s']:.4f}", f"{r['median_cpu_s']:.3f}", fmt_gflop(r["flops_analytic"], 3),
                         fmt_gflop(r["flops_xla_loop_free"], 3),
                         f"{ratio:.3f}" if ratio else "-", fmt_gflop(r["flops_per_s"]), r["repeats"], fmt_load1(r)])
    print_table(["preset", "what", "batch", "compile s", "first call s", "median s", "cpu s", "GFLOP analytic",
                 "GFLOP XLA", "XLA/analytic", "GFLOP/s", "repeats", "load"], rows,
                title="Model (dtype per preset; GFLOP/s = analytic FLOPs / median; XLA = compiled.cost_analysis() of "
                      "the same computation without loops (one segment x segments + embed + Q head; the update "
                      "without batch chunking), since XLA counts a loop body once; XLA also counts elementwise ops)")
    print("XLA cost analysis of the programs as timed (loop bodies counted once): " + ", ".join(
        f"{c['preset']} act {fmt_gflop(c['act']['flops_xla_as_compiled'], 3)} / update "
        f"{fmt_gflop(c['update']['flops_xla_as_compiled'], 3)} GFLOP" for c in cases), flush=True)

    gemm_rows = [[c["preset"], c["gemm"]["label"], c["dtype"], f"{c['gemm']['median_s'] * 1e3:.3f}",
                  fmt_gflop(c["gemm"]["flops_per_s"]), fmt_load1(c["gemm"])] for c in cases]
    gemm_rows += [["-", f"square {G} x {G} x {G}", d, f"{v['median_s'] * 1e3:.3f}", fmt_gflop(v["flops_per_s"]),
                   fmt_load1(v)] for d, v in sq.items()]
    print_table(["preset", "GEMM (jnp.dot, M x K x N)", "dtype", "median ms", "GFLOP/s", "load"], gemm_rows,
                title="Plain GEMMs in the same run")

    targets = []
    for c in cases:
        ok = c["act_vs_gemm"] >= TARGET_GEMM_FRACTION
        targets.append({"preset": c["preset"], "target": f"acting FLOP/s >= {TARGET_GEMM_FRACTION:.0%} of the "
                        f"model-shaped GEMM's", "value": c["act_vs_gemm"], "pass": ok,
                        "vs_square_gemm": c["act_vs_square_gemm"]})
    print_table(["preset", "acting GFLOP/s", "GEMM (B*S)xDx4D GFLOP/s", "ratio", "result",
                 f"ratio vs {G}^3 GEMM"],
                [[c["preset"], fmt_gflop(c["act"]["flops_per_s"]), fmt_gflop(c["gemm"]["flops_per_s"]), f"{c['act_vs_gemm']:.0%}",
                  pass_miss(c["act_vs_gemm"] >= TARGET_GEMM_FRACTION), f"{c['act_vs_square_gemm']:.0%}"]
                 for c in cases],
                title=f"Target: acting FLOP/s / GEMM FLOP/s >= {TARGET_GEMM_FRACTION:.0%} (GEMM of the model's "
                      f"shape, (B*S) x D x 4D; the {G}^3 ratio for reference)")

    peer = None
    paper = next((c for c in cases if c["preset"] == "paper"), None)
    if paper is None:
        print("\nPeer (authors' code) figures are at the paper preset, which was not measured (--presets).")
    else:
        ours_a, ours_u = paper["act"]["median_s"], paper["update"]["median_s"]
        act, upd = PEER["act_step_s"], PEER["update_s"]
        peer = {"dtype_ours": paper["dtype"], "act_s": ours_a, "update_s": ours_u,
                "act_speedup": {d: v / ours_a for d, v in act.items()},
                "update_speedup": {d: v / ours_u for d, v in upd.items()}}
        print_table(["what (paper config)", "authors' bf16 s", "authors' fp32 s", f"ours ({paper['dtype']}) s",
                     "speed-up vs bf16", "vs fp32"],
                    [["acting step, 256 envs, 8 segments",
                      f"{act['bfloat16']} (forward {PEER['act_forward_s']['bfloat16']} + env 0.41)", act["float32"],
                      f"{ours_a:.2f} (model only; {paper['act']['median_cpu_s']:.2f} CPU s)",
                      f"{peer['act_speedup']['bfloat16']:.1f}x", f"{peer['act_speedup']['float32']:.1f}x"],
                     ["1-step-gradient update, batch 256", upd["bfloat16"], upd["float32"],
                      f"{ours_u:.2f} ({paper['update']['median_cpu_s']:.2f} CPU s)",
                      f"{peer['update_speedup']['bfloat16']:.1f}x", f"{peer['update_speedup']['float32']:.1f}x"]],
                    title="vs the authors' PyTorch code on this CPU (their figures: idle machine, "
                          "measurements.md; ours: this run)")
    return {"cases": cases, "square_gemm": sq, "targets": targets, "peer": peer,
            "note": "flops_xla_as_compiled counts loop bodies (lax.map batch chunks, lax.scan over segments) once"}
