"""The tally of the paper's claims over the agent pairs of a sweep (hrm_jax.analysis.agents)."""
from hrm_jax.analysis import agents as aa


def test_claim_tally_over_agent_pairs():
    def claim(verdict, held):  # held: {what: robust}
        return dict(verdict=verdict, checks=[dict(what=w, holds=r, robust=r) for w, r in held.items()])

    both = {"z_H changed": True, "z_H unchanged": True, "z_L changed": True, "z_L unchanged": True}
    only_h = {"z_H changed": True, "z_H unchanged": True, "z_L changed": False, "z_L unchanged": False}
    some_l = {"z_H": False, "z_L": True}
    assert aa.module_marks(claim("x", only_h)["checks"]) == "z_H yes, z_L no"
    assert aa.module_marks([dict(what="z_L changed", robust=True), dict(what="z_L unchanged", robust=False)]) == "z_L partly"
    ev = [dict(variant="carry", z_mode_kind="as trained", summary=dict(success=0.9)),
          dict(variant="carry", z_mode_kind="intervention", summary=dict(success=0.8)),
          dict(variant="reset", z_mode_kind="as trained", summary=dict(success=0.7))]
    p0 = aa.pair_summary(0, dict(evaluations=ev, claims=[claim("supported", both), claim("partly supported (1 of 2 comparisons)", some_l),
                                                         claim("not supported", {"z_H": False}), claim("supported", both)]))
    p1 = aa.pair_summary(1, dict(evaluations=ev, claims=[claim("partly supported (2 of 4 comparisons)", only_h),
                                                         claim("supported", {"z_H": True, "z_L": True}),
                                                         claim("cannot be tested", {}), claim("supported", both)]))
    assert p0["success"] == dict(carry=0.9, carry_with_z_reset=0.8, reset=0.7)
    rows = aa.tally([p0, p1])
    assert [(r["supported"], r["partly"], r["not_supported"], r["z_H_holds"], r["z_L_holds"]) for r in rows] == \
        [(1, 1, 0, 2, 1), (1, 1, 0, 1, 2), (0, 0, 1, 0, 0), (2, 0, 0, 2, 2)]
    md = aa.summary_markdown(dict(command="c", sweep_dir="s", carry="last_token", envs=4, eval_seed=1, p_change=0.05,
                                  segments=None), [p0, p1], rows)
    assert "| carry Z: smaller first-to-final distance | 1 of 2 | 1 of 2 | 0 of 2 | 2 of 2 | 1 of 2 |" in md
    assert "partly (z_H yes, z_L no)" in md
