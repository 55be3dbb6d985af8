"""How benchmark results are shown and kept: plain-text tables, short number formats, JSON files."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any

import jax
import numpy as np


def fmt_rate(x: float | None) -> str:
    """12345678 -> '12.35M'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.1f}"


def fmt_gflop(x: float | None, digits: int = 2) -> str:
    """FLOPs (or FLOP/s) in units of 1e9; '-' when unknown."""
    return "-" if x is None else f"{x / 1e9:.{digits}f}"


def fmt_load1(timing: dict) -> str:
    """The 1-minute load average recorded with a timing."""
    la = timing.get("loadavg")
    return f"{la[0]:.1f}" if la else "-"


def pass_miss(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def is_num(s):  # "12.3", "-0.5", ".5", "1.04x", "1,186x"; not "-", "--flag" or "(none)"
        return re.match(r"[-+]?(\d|\.\d)", s) is not None

    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(s.rjust(w) if (k and is_num(s)) else s.ljust(w) for s, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(format_table(headers, rows), flush=True)


def _jsonable(x):
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic, jax.Array, np.ndarray)):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str, obj: dict) -> None:
    """Write obj (numpy/JAX values converted, NaN -> null) as indented JSON; creates parent dirs."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)
        f.write("\n")
