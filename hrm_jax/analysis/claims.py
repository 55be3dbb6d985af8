"""The paper's claims about the recurrent state (§3.2, figures 5-7), judged from the pooled
per-sample curves of carry-Z and reset-Z rollouts (hrm_jax.analysis.rollouts), each comparison
with an episode bootstrap: one verdict per claim."""
from __future__ import annotations

import numpy as np

from hrm_jax.analysis.rollouts import CONDS, ZS

MIN_SAMPLES = 20  # a verdict resting on fewer samples per condition is flagged


def pooled_samples(recs: list[dict], key: str, cond: str) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, K], episode index [n]) of one curve over several evaluations, for one change
    condition. Episode index = the environment's index in the rollout (the same environments at
    reset in every evaluation, so the bootstrap resamples environments jointly)."""
    vals, eps = [], []
    for r in recs:
        m = r["mask"] & (r["changed"] if cond == "changed" else ~r["changed"])
        vals.append(r[key][m])
        eps.append(np.nonzero(m)[1])
    if not vals:
        return np.zeros((0, 0)), np.zeros((0,), int)
    return np.concatenate(vals, axis=0), np.concatenate(eps)


def bootstrap_counts(seed: int, n_boot: int, n_env: int) -> np.ndarray:
    """int[n_boot, n_env]: how often each environment (episode) is drawn in each of n_boot
    resamples of n_env draws with replacement (each row sums to n_env), from jax.random.key(seed)."""
    import jax
    import jax.numpy as jnp

    if not n_env or not n_boot:
        return np.zeros((n_boot, n_env), np.int64)
    draws = jax.random.randint(jax.random.key(seed), (n_boot, n_env), 0, n_env)
    return np.asarray(jax.vmap(lambda d: jnp.bincount(d, length=n_env))(draws))


def bootstrap_medians(values: np.ndarray, episodes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted (lower) medians of values [n, K] for every row of counts [B, n_episodes]: sample i
    has weight counts[b, episodes[i]] (an episode bootstrap). Returns [B, K]."""
    n, K = values.shape
    order = np.argsort(values, axis=0, kind="stable")                   # [n, K]
    sorted_vals = np.take_along_axis(values, order, 0)
    out = np.empty((counts.shape[0], K))
    for b, c in enumerate(counts):
        w = c[episodes]                                                   # [n]
        cs = np.cumsum(w[order], axis=0)                                  # [n, K]
        idx = np.argmax(cs >= cs[-1] / 2.0, axis=0)
        out[b] = sorted_vals[idx, np.arange(K)]
    return out


def fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _verdict(ok: list[bool], holds: list[bool] | None = None) -> str:
    """ok: the comparisons that hold robustly (bootstrap); holds: at the point estimate."""
    if not ok:
        return "cannot be tested"
    if all(ok):
        return "supported"
    if any(ok):
        return f"partly supported ({sum(ok)} of {len(ok)} comparisons)"
    if holds and any(holds):
        return (f"not established (the direction holds at the point estimate in {sum(holds)} of {len(holds)} "
                "comparisons, but not robustly over the bootstrap)")
    return "not supported"


def judge_claims(carry: list[dict], reset: list[dict], carry_reset_eval: list[dict], env_name: str,
                 n_boot: int = 200, seed: int = 0, level: float = 0.95) -> list[dict]:
    """One verdict per paper claim, from the pooled per-sample curves of the carry-Z and reset-Z
    evaluations (as trained). A comparison counts as holding when it holds in at least `level` of
    `n_boot` bootstrap resamples of the environments (episodes; the steps of one episode are not
    independent); the point estimate (plain median) and that fraction are both reported.
    Returns dicts: claim, verdict, evidence (a sentence with the numbers)."""
    groups = {}
    n_env = 0
    for label, recs in (("carry", carry), ("reset", reset), ("carry_as_reset", carry_reset_eval)):
        for r in recs:
            n_env = max(n_env, r["mask"].shape[1])
        for kind in ("conv", "div"):
            for z in ZS:
                for c in CONDS:
                    if recs:
                        v, e = pooled_samples(recs, f"{kind}_{z}", c)
                        if len(v):
                            groups[label, kind, z, c] = (v, e)
    counts = bootstrap_counts(seed, n_boot, n_env)
    point = {k: np.median(v, axis=0) for k, (v, e) in groups.items()}
    boot = {k: bootstrap_medians(v, e, counts) for k, (v, e) in groups.items()}
    n = {(lab, c): len(groups[lab, "conv", ZS[0], c][0]) if (lab, "conv", ZS[0], c) in groups else 0
         for lab in ("carry", "reset") for c in CONDS}
    few = [f"{lab} {c}: n={n[lab, c]}" for lab in ("carry", "reset") for c in CONDS
           if n[lab, c] < MIN_SAMPLES and (carry if lab == "carry" else reset)]
    caveat = f" Caveat: few samples ({'; '.join(few)})." if few else ""

    def have(*keys):
        return all(k in groups for k in keys)

    def test(pred):
        """(holds at the point estimate, fraction of bootstrap resamples where it holds)."""
        frac = float(np.mean([pred(lambda k: boot[k][b]) for b in range(n_boot)])) if n_boot else float("nan")
        return bool(pred(lambda k: point[k])), frac

    def record(checks, ev, what, holds, frac, detail):
        """One comparison of a claim: `checks` gets what was compared ("z_H changed"), whether it holds at
        the point estimate and whether robustly (in >= level of the resamples); `ev` its sentence."""
        checks.append(dict(what=what, holds=bool(holds), robust=bool(frac >= level) if n_boot else bool(holds),
                           resamples_holding=frac if n_boot else None))
        ev.append(f"{what}: {detail} [{'holds' if holds else 'does not hold'}" + (f"; in {frac:.0%} of resamples]" if n_boot else "]"))

    def verdict(checks):
        return _verdict([c["robust"] for c in checks], [c["holds"] for c in checks])

    claims = []
    # 1. initial-to-final distance smaller with carry Z
    ok, ev = [], []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("reset", "conv", z, c)
            if have(a, b):
                h, f = test(lambda m: m(a)[0] < m(b)[0])
                record(ok, ev, f"{z} {c}", h, f, f"carry {fmt(point[a][0])} vs reset {fmt(point[b][0])}")
    claims.append(dict(claim="With Carry Z the distance from the first to the final z (median MSE(z_1, z_S)) is smaller than with Reset Z.",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run."))
    # 2. with carry Z, the initial distance is larger when the environment changed
    ok, ev = [], []
    for z in ZS:
        a, b = ("carry", "conv", z, "changed"), ("carry", "conv", z, "unchanged")
        if have(a, b):
            h, f = test(lambda m: m(a)[0] > m(b)[0])
            record(ok, ev, z, h, f, f"changed {fmt(point[a][0])} vs unchanged {fmt(point[b][0])}")
    claims.append(dict(claim="With Carry Z the initial distance MSE(z_1, z_S) is larger when the environment changed than when it did not.",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z run with changed and unchanged steps."))
    # 3. faster convergence with carry Z (paper: in the maze), changed and unchanged
    ok, ev = [], []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("reset", "conv", z, c)
            if have(a, b) and point[a].shape == point[b].shape:
                h, f = test(lambda m: bool(np.all(m(a) < m(b))))
                record(ok, ev, f"{z} {c}", h, f, f"carry/reset ratio per k = {', '.join(fmt(x) for x in point[a] / point[b])}")
    where = "" if env_name == "corridor_maze" else f" (the paper makes this claim for the corridor maze; this is {env_name})"
    claims.append(dict(claim="The recurrent process converges faster with Carry Z, both when the environment changed and when not "
                             "(read here as: the carry-Z median curve MSE(z_k, z_S) lies below the reset-Z one at every k)" + where + ".",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run with equal segments."))
    # 4. divergence: carry Z reduces it, by more than the environment change does
    ok, ev = [], []
    for z in ZS:
        keys = {(v, c): (v, "div", z, c) for v in ("carry", "reset") for c in CONDS}
        if not have(*keys.values()):
            continue

        def effects(m):
            last = {vc: m(k)[-1] for vc, k in keys.items()}
            lower = all(last["carry", c] < last["reset", c] for c in CONDS)
            carry_eff = np.mean([abs(np.log10(last["reset", c] / last["carry", c])) for c in CONDS])
            change_eff = np.mean([abs(np.log10(last[v, "changed"] / last[v, "unchanged"])) for v in ("carry", "reset")])
            return last, lower, carry_eff, change_eff

        last, _, ce, che = effects(lambda k: point[k])
        h, f = test(lambda m: (lambda r: r[1] and r[2] > r[3])(effects(m)))
        record(ok, ev, z, h, f, f"MSE(z_S, z_1) carry {fmt(last['carry', 'changed'])}/{fmt(last['carry', 'unchanged'])} "
                             f"vs reset {fmt(last['reset', 'changed'])}/{fmt(last['reset', 'unchanged'])} (changed/unchanged); "
                             f"|log10| effect of carrying {ce:.2f} vs of the change {che:.2f}")
    claims.append(dict(claim="Divergence (figure 7): Carry Z has a smaller MSE(z_k, z_1) than Reset Z, and carrying z changes it by more "
                             "than whether the environment changed (compared at the last segment, in log10 ratio).",
                       verdict=verdict(ok), checks=ok, evidence="; ".join(ev) + "." + caveat if ev else "needs a carry-Z and a reset-Z run."))
    # intervention (not a paper claim): carry checkpoint evaluated with reset z
    ev = []
    for z in ZS:
        for c in CONDS:
            a, b = ("carry", "conv", z, c), ("carry_as_reset", "conv", z, c)
            if have(a, b):
                ev.append(f"{z} {c}: carried {fmt(point[a][0])} vs reset {fmt(point[b][0])}")
    if ev:
        claims.append(dict(claim="(Not a paper claim) Intervention: the carry-Z checkpoint evaluated with z reset at every step; "
                                 "median MSE(z_1, z_S) with the carried z vs with z reset.",
                           verdict="observation", evidence="; ".join(ev) + "."))
    return claims
