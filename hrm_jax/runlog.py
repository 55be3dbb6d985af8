"""What a run directory records of training: metrics.jsonl (one row per seed per evaluation
point), TensorBoard scalars (tb/), summary.json (the last point per seed) and curves.png."""
from __future__ import annotations

import json
import os
from typing import Any

METRICS = "metrics.jsonl"


class RunLog:
    """metrics.jsonl + TensorBoard scalars, one line / scalar set per seed per log point."""

    TB_KEYS = ("loss", "epsilon", "train_return", "eval_success", "eval_length", "eval_optimal", "env_steps_per_s", "q_mean")

    def __init__(self, out: str, seeds: int, truncate_after: int | None, write: bool = True, first_agent: int = 0):
        from tensorboardX import SummaryWriter

        self.path = os.path.join(out, METRICS)
        self.enabled = write  # False: a multi-host run's other processes keep the rows, write nothing
        if truncate_after is not None and os.path.exists(self.path) and write:
            # a resumed run recomputes everything after its checkpoint: drop those lines
            rows = [r for r in read_rows(self.path) if r["grad_steps"] <= truncate_after]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self.rows = read_rows(self.path) if os.path.exists(self.path) else []
        self.tb = SummaryWriter(os.path.join(out, "tb")) if write else None
        self.seeds = seeds
        self.first_agent = first_agent  # rows and TensorBoard tags name the agent index, not the position in the run

    def write(self, metrics: dict[str, Any], wall: float, sps: float) -> list[dict]:
        rows = []
        for i in range(self.seeds):
            row = {k: _py(v[i]) for k, v in metrics.items()}
            row.update(seed=self.first_agent + i, wall_time_s=round(wall, 3), env_steps_per_s=round(sps, 1))
            rows.append(row)
            for k in self.TB_KEYS if self.enabled else ():
                if k in row:
                    self.tb.add_scalar(f"seed{row['seed']}/{k}", row[k], row["grad_steps"])
        if self.enabled:
            with open(self.path, "a") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
            self.tb.flush()
        self.rows.extend(rows)
        return rows

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_rows(path: str) -> list[dict]:
    """metrics.jsonl rows; a line torn by a kill mid-write (only ever the last) is dropped."""
    rows = []
    with open(path) as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def write_atomic(path: str, text: str) -> None:
    """Write a file so that a kill at any moment leaves either the old or the new content."""
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def _py(v):
    import numpy as np

    v = np.asarray(v)
    if np.issubdtype(v.dtype, np.integer):
        iv = int(v)
        return -1 if iv == np.iinfo(np.int32).max else iv
    return round(float(v), 6)


def summarize(cfg, rows: list[dict], param_count: int, wall: float) -> dict:
    """summary.json: the last log point per seed, and their mean."""
    seeds = sorted({r["seed"] for r in rows})
    per_seed = []
    for s in seeds:
        last = [r for r in rows if r["seed"] == s][-1]
        per_seed.append(dict(seed=s, success=last["eval_success"], mean_episode_length=last["eval_length"],
                             optimal_episode_length=last["eval_optimal"], grad_steps=last["grad_steps"],
                             env_steps=last["env_steps"], wall_time_s=round(wall, 2),
                             env_steps_per_s=round(last["env_steps"] / max(wall, 1e-9), 1), params=param_count))
    keys = [k for k in per_seed[0] if k != "seed"]
    mean = {k: round(sum(p[k] for p in per_seed) / len(per_seed), 4) for k in keys}
    held = {s: held_threshold([r for r in rows if r["seed"] == s]) for s in seeds}
    return dict(env=cfg.env.name, model=cfg.model.arch, z_carry=cfg.model.z_carry, seeds=per_seed, mean=mean,
                held=dict(threshold=HELD_THRESHOLD, evaluations=HELD_EVALUATIONS,
                          by_seed={str(s): h for s, h in held.items()}))


# The learning target a run is judged by (issue "Agents that learn"): greedy success >= 0.95 at two
# consecutive evaluations, so one lucky evaluation does not count.
HELD_THRESHOLD, HELD_EVALUATIONS = 0.95, 2


def held_threshold(rows: list[dict], threshold: float = HELD_THRESHOLD, evaluations: int = HELD_EVALUATIONS) -> dict | None:
    """When one seed's greedy success first stayed >= threshold for `evaluations` consecutive
    evaluations: {grad_steps, env_steps, wall_time_s} of the evaluation that completed the run of
    them (the first moment it was known), or None."""
    from hrm_jax.comparison import CROSS_KEYS, first_crossing  # comparison imports this module

    first = first_crossing(rows, threshold, sustain=evaluations)
    if first is None:
        return None
    pts = sorted(rows, key=lambda r: r["grad_steps"])
    i = [r["grad_steps"] for r in pts].index(first["grad_steps"]) + evaluations - 1
    return {k: pts[i][k] for k in CROSS_KEYS if k in pts[i]}


def plot_curves(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        x = [r["grad_steps"] for r in rs]
        ax1.plot(x, [r["eval_success"] for r in rs], label=f"seed {s}")
        ax2.plot(x, [r["eval_length"] for r in rs], label=f"seed {s}")
    opt = [r["eval_optimal"] for r in rows]
    ax2.axhline(sum(opt) / len(opt), ls="--", color="k", label="BFS optimum (mean)")
    ax1.set(xlabel="gradient steps", ylabel="greedy success", ylim=(0, 1.02), title=title)
    ax2.set(xlabel="gradient steps", ylabel="mean episode length", title=title)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
