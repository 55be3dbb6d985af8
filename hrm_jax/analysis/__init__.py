"""Analyses of trained agents.

  convergence.py  did the environment change at a step; how z converges / diverges over segments
  rollouts.py     greedy rollouts with the trace of z, reduced to per-sample curves
  claims.py       the paper's claims about z (§3.2), judged with an episode bootstrap
  report.py       the analysis of z of run directories: figures, report.md, analysis.json
  agents.py       that analysis for every carry/reset agent pair of a sweep, and the tally
  failures.py     why greedy episodes fail (stuck, waiting at a door, oscillating, wandering)
"""
