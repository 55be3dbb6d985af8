"""Processes side by side on a small CPU, one per share of the cores (hrm_jax.sweep and
hrm_jax.analysis.agents: the --parallel of experiments.sweep and experiments.analyze_agents).

Why: on this 2-core CPU one XLA program of the sizes here uses a second core poorly, so two
programs pinned to one core each finish sooner than one after the other on both cores. Each child
is a fresh interpreter ("spawn") pinned before JAX starts (XLA sizes its thread pool from the
cores it may use), with its output in its own log file.
"""
from __future__ import annotations

import os
import sys
from typing import Callable


def core_groups(cores: list[int], n: int) -> list[list[int]]:
    """Split the CPU cores this process may use into n contiguous groups, as even as possible."""
    q, r = divmod(len(cores), n)
    out, i = [], 0
    for k in range(n):
        size = q + (k < r)
        out.append(cores[i:i + size])
        i += size
    return out


def _child(fn: Callable[..., int], args: tuple, cores: list[int], log_path: str) -> None:
    os.sched_setaffinity(0, cores)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        print(f"pinned to CPU cores {','.join(map(str, sorted(os.sched_getaffinity(0))))}", file=sys.stderr, flush=True)
        sys.exit(fn(*args))


def start(fn: Callable[..., int], args: tuple, cores: list[int], log_path: str, name: str):
    """A started child process that runs fn(*args) (a module-level function returning an exit
    status) pinned to `cores`, its stdout and stderr appended to log_path."""
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=_child, args=(fn, args, cores, log_path), name=name)
    proc.start()
    return proc


def wait(proc, on_interrupt: str) -> int:
    """Wait for a child; Ctrl-C reaches the children too (same process group), so an interrupt here
    prints `on_interrupt` and goes on waiting for the child to stop by itself. Returns its exit
    status (128 + N if a signal N ended it)."""
    while proc.is_alive():
        try:
            proc.join()
        except KeyboardInterrupt:
            print(on_interrupt, file=sys.stderr)
    return proc.exitcode if proc.exitcode >= 0 else 128 - proc.exitcode
