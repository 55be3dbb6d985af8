"""Greedy rollouts of trained agents with the trace of z (`acting.greedy_rollout(with_trace=True)`,
the same forward pass as acting), reduced on device to per-sample convergence / divergence
curves and the step flags of hrm_jax.analysis.convergence; `summarize` counts and medians them."""
from __future__ import annotations

import math

import numpy as np

ZS = ("z_L", "z_H")
CONDS = ("changed", "unchanged")


def rollout_program(tr, z_mode: str, batch: int, segments: int):
    """The jitted rollout of `rollout_records`: (params, constants, env_params, key) -> records of
    `batch` environments. Its arguments are everything that varies between agents of one run, so
    one program serves every agent pair of a sweep (hrm_jax.analysis.agents: compiled once)."""
    import jax

    from hrm_jax import acting
    from hrm_jax.analysis import convergence

    def one(p, c, env_params, key):
        ev = acting.greedy_rollout(tr.model, {"params": p, "constants": c}, tr.env, env_params, key, batch,
                                  segments, z_mode, tr.config.env.max_steps, with_trace=True)
        recs = ev["records"]
        out = convergence.convergence_and_divergence(recs["trace"])
        out["changed"] = convergence.changed_steps(tr.env, recs["state"])
        out["mask"] = convergence.step_mask(recs["active"])
        out.update(success=ev["success"], length=ev["length"], optimal=ev["optimal"])
        return out

    return jax.jit(one)


def rollout_records(tr, params, constants, env_params, z_mode: str, n_envs: int, batch: int, eval_seed: int,
                    segments: int, program=None) -> dict:
    """Greedy rollouts with the trace, reduced on device to per-sample curves and step flags.
    `program`: a `rollout_program(tr, z_mode, min(batch, n_envs), segments)` to reuse (None: built here).

    Returns numpy arrays: conv_z_H/conv_z_L f32[T, N, S-1], div_z_H/div_z_L f32[T, N, S-1],
    changed/mask bool[T, N], success bool[N], length/optimal int32[N]."""
    import jax

    batch = min(batch, n_envs)
    f = program or rollout_program(tr, z_mode, batch, segments)
    base = jax.random.key(eval_seed)
    parts = [jax.device_get(f(params, constants, env_params, jax.random.fold_in(base, b)))
             for b in range(math.ceil(n_envs / batch))]
    out = {}
    for k in parts[0]:
        axis = 0 if parts[0][k].ndim == 1 else 1
        out[k] = np.concatenate([np.asarray(p[k]) for p in parts], axis=axis)
        out[k] = out[k][:n_envs] if axis == 0 else out[k][:, :n_envs]
    return out


def summarize(rec: dict) -> dict:
    """Counts and medians of one evaluation (host side)."""
    from hrm_jax.analysis.convergence import masked_median

    mask, changed = rec["mask"], rec["changed"]
    sel = {"changed": mask & changed, "unchanged": mask & ~changed}
    T, N = mask.shape
    reachable = rec["optimal"] >= 0
    res = dict(
        counts=dict(changed=int(sel["changed"].sum()), unchanged=int(sel["unchanged"].sum()),
                    first_steps=int(N), after_termination=int(T * N - rec["length"].sum()),
                    total_steps=int(T * N), episode_steps=int(rec["length"].sum())),
        success=float(rec["success"].mean()), mean_length=float(rec["length"].mean()),
        bfs_optimal=float(rec["optimal"][reachable].mean()) if reachable.any() else float("nan"),
        medians={})
    for kind in ("conv", "div"):
        for z in ZS:
            for c in CONDS:
                res["medians"][f"{kind}_{z}_{c}"] = [float(v) for v in masked_median(rec[f"{kind}_{z}"], sel[c])]
    return res
