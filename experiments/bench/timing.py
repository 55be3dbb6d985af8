"""Timing of warm code: compile ahead of time, make the first call apart, then time `repeats`
calls, each ended by `block_until_ready`.

A freshly compiled XLA program's first call pays one-time costs (buffer allocation, thread pools,
lazy initialisation: ~44 s for the paper preset's training chunk on a 2-core CPU), so every
timing makes that call apart from the timed ones and reports it as first_call_s.

Every timing is a dict: compile_s, compile_cpu_s, first_call_s, median_s, min_s, all_s,
median_cpu_s (process CPU time per call, all threads: a cross-check on a loaded machine),
repeats, warmup, loadavg (right after the timed calls)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax

from hrm_jax.machine import load_average


def compile_fn(fn: Callable, *args) -> tuple[Callable, dict]:
    """(callable, {compile_s, compile_cpu_s}): a jitted `fn` compiled ahead of time
    (`fn.lower(*args).compile()`, so the seconds are tracing + compilation alone); any other
    callable is called once (the seconds are that first call, also its first_call_s) and returned
    as is. compile_cpu_s is the process CPU time it took (XLA compiles on one thread: about the
    wall time on an idle machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if hasattr(fn, "lower"):
        return fn.lower(*args).compile(), {"compile_s": time.perf_counter() - t0,
                                            "compile_cpu_s": time.process_time() - c0}
    jax.block_until_ready(fn(*args))
    wall = time.perf_counter() - t0
    return fn, {"compile_s": wall, "compile_cpu_s": time.process_time() - c0, "first_call_s": wall}


def first_call(call: Callable, args: tuple, compile_info: dict) -> tuple[Any, dict]:
    """(output of the first call, compile_info with first_call_s): that call, timed on its own."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(call(*args))
    return out, {**compile_info, "first_call_s": time.perf_counter() - t0}


def time_round_robin(calls: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Time several functions in turn: compile each (excluded), make each one's first call
    (excluded, reported as first_call_s), `warmup` untimed rounds, then `repeats` rounds that call
    each once. On a shared machine a change of load then hits all of them alike, so their ratios
    stay meaningful.

    calls: name -> (fn, args) or (already compiled fn, args, compile_info); a compile_info with
    first_call_s says that call was made already. Returns name -> timing dict (see the module)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    compiled = {}
    for name, spec in calls.items():
        if len(spec) > 2:
            call, args, info = spec
        else:
            call, info = compile_fn(spec[0], *spec[1])
            args = spec[1]
        if info.get("first_call_s") is None:
            _, info = first_call(call, args, info)
        compiled[name] = (call, args, info)
    for _ in range(warmup):
        for call, args, _info in compiled.values():
            jax.block_until_ready(call(*args))
    times = {n: [] for n in compiled}
    cpu = {n: [] for n in compiled}
    loads = {}
    for _ in range(repeats):
        for n, (call, args, _info) in compiled.items():
            t, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(call(*args))
            times[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
            loads[n] = load_average()
    return {n: {"compile_s": info.get("compile_s"), "compile_cpu_s": info.get("compile_cpu_s"),
                "first_call_s": info["first_call_s"], "median_s": statistics.median(times[n]),
                "min_s": min(times[n]), "all_s": times[n], "median_cpu_s": statistics.median(cpu[n]),
                "repeats": repeats, "warmup": warmup, "loadavg": loads[n], "round_robin": list(compiled)}
            for n, (_call, _args, info) in compiled.items()}


def time_call(call: Callable, *args, repeats: int = 5, warmup: int = 1, compile_info: dict | None = None) -> dict:
    """Time one already compiled `call` (compile_info: what `compile_fn` / `first_call` returned for it)."""
    timing = time_round_robin({"call": (call, args, compile_info or {})}, repeats=repeats, warmup=warmup)["call"]
    del timing["round_robin"]
    return timing


def time_fn(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """Time `fn(*args)`: compile (excluded, compile_s), the first call (excluded, first_call_s),
    `warmup` untimed calls, then `repeats` timed calls. A jitted function is compiled ahead of
    time, so compile_s is the compilation alone; for any other callable compile_s is the first
    call (trace + compile + one run)."""
    call, info = compile_fn(fn, *args)
    return time_call(call, *args, repeats=repeats, warmup=warmup, compile_info=info)
