"""Command-line flags generated from the config dataclasses.

Every field of EnvConfig / ModelConfig / TrainConfig becomes `--field-name` (EnvConfig.name is
`--env`), typed and documented from the field's metadata. Bad input exits with status 2 and ONE
line (`error: ...`), before anything is compiled.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields, replace
from typing import Any

from hrm_jax.config import Config, ConfigError, EnvConfig, ModelConfig, TrainConfig, PRESETS, preset, validate

SECTIONS = (("env", EnvConfig), ("model", ModelConfig), ("train", TrainConfig))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exits 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def fail(message: str, prog: str = "hrm-jax") -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


def _bound_text(x: float) -> str:
    """2**32 -> '2**32' (large powers of two read better that way), 1.0 -> '1.0', 1 -> '1'."""
    if isinstance(x, int) and x >= 2**16 and x & (x - 1) == 0:
        return f"2**{x.bit_length() - 1}"
    return str(x)


def number(kind: type = int, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, why: str = ""):
    """An argparse `type` for one int or finite float in a range; out-of-range or unparsable text
    becomes argparse's one-line error, e.g. `--seed: 'x' is not an integer`, `--p: 1.5 must be in
    [0, 1]`, `--n: 0 must be >= 1`, `--t: 0 must be > 0`, `--seed: -1 must be in [0, 2**32)`.
    `lo_open`/`hi_open` exclude that end of the range; `why`, if given, is added to the range error
    in parentheses."""
    if lo is None:
        rng = None if hi is None else f"{'<' if hi_open else '<='} {_bound_text(hi)}"
    elif hi is None:
        rng = f"{'>' if lo_open else '>='} {_bound_text(lo)}"
    else:
        rng = f"in {'(' if lo_open else '['}{_bound_text(lo)}, {_bound_text(hi)}{')' if hi_open else ']'}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        ok = (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} must be {rng}" + (f" ({why})" if why else ""))
        return v
    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


positive_int = number(int, 1)
non_negative_int = number(int, 0)
positive_float = number(float, 0, lo_open=True)
non_negative_float = number(float, 0)
probability = number(float, 0, 1)
seed_int = number(int, 0, 2**32, hi_open=True)  # jax.random.key takes a uint32
# --segments of the analysis of z (experiments.analyze, analyze_agents, reproduce)
analysis_segments = number(int, 2, why="the analysis compares z after each segment with the last")


def flag_name(section: str, name: str) -> str:
    if (section, name) == ("env", "name"):
        return "--env"
    if (section, name) == ("model", "arch"):
        return "--model"
    return "--" + name.replace("_", "-")


def _parse_bool(v: str) -> bool:
    s = v.lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


def _typed(kind):
    def parse(v: str):
        try:
            return kind(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {v!r}")
    parse.__name__ = kind.__name__
    return parse


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per config field (default: None = take the preset's value)."""
    parser.add_argument("--preset", default="cpu", choices=list(PRESETS),
                        help="named configuration: cpu (default; minutes on a 2-core CPU), paper (the authors', GPU-sized), "
                             "fixed_goal (cpu on single-goal four-rooms: learns in minutes), random_goal (cpu plus the agent-token "
                             "Q head and row/column positions: learns the paper's random-goal task, ~30 min per seed here), tiny (seconds; tests)")
    for section, cls in SECTIONS:
        group = parser.add_argument_group(f"{section} ({cls.__doc__.strip().splitlines()[0]})")
        for f in fields(cls):
            if f.name in skip:
                continue
            default = f.default
            kind = type(default)
            help_text = f.metadata.get("help", "")
            choices = f.metadata.get("choices")
            kw: dict[str, Any] = dict(default=None, dest=f"{section}__{f.name}",
                                      help=f"{help_text} [paper: {getattr(PRESETS['paper'], section).__dict__[f.name]!r}]")
            if choices:
                kw["choices"] = list(choices)
            elif kind is bool:
                kw["type"], kw["metavar"] = _parse_bool, "true|false"
            elif kind in (int, float):
                kw["type"], kw["metavar"] = _typed(kind), kind.__name__.upper()
            group.add_argument(flag_name(section, f.name), **kw)


def config_from_args(args: argparse.Namespace, prog: str = "hrm-jax") -> Config:
    """The preset with the given flags applied, validated (ConfigError -> one line, exit 2)."""
    try:
        cfg = preset(args.preset)
        for section, _ in SECTIONS:
            over = {k.split("__", 1)[1]: v for k, v in vars(args).items()
                    if k.startswith(section + "__") and v is not None}
            if over:
                cfg = replace(cfg, **{section: replace(getattr(cfg, section), **over)})
        return validate(cfg)
    except ConfigError as exc:
        fail(str(exc), prog)
        raise  # unreachable


def parse_field_values(spec: str) -> tuple[str, str, list]:
    """`FLAG=V1,V2,...` (e.g. "q-init-scale=1,0.1"; the flag with or without dashes, '_' or '-')
    -> (section, field name, [typed values]). Raises ConfigError (one line) on an unknown field, a
    value of the wrong type or outside the field's choices, a repeated value, or fewer than two."""
    name, sep, raw = spec.partition("=")
    if not sep or not name or not raw:
        raise ConfigError(f"--vary {spec!r}: expected FLAG=V1,V2 (e.g. q-init-scale=1,0.1)")
    key = name.strip().lstrip("-").replace("_", "-")
    found = [(s, f) for s, cls in SECTIONS for f in fields(cls) if flag_name(s, f.name) == "--" + key]
    if not found:
        raise ConfigError(f"--vary {spec!r}: {name!r} is not a config flag (see --help for the flags)")
    section, f = found[0]
    kind, choices = type(f.default), f.metadata.get("choices")
    parse = _parse_bool if kind is bool else _typed(kind)
    values = []
    for text in raw.split(","):
        try:
            v = parse(text.strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--vary {spec!r}: {exc}") from None
        if choices and v not in choices:
            raise ConfigError(f"--vary {spec!r}: {v!r} is not allowed; choose from: {', '.join(choices)}")
        if v in values:
            raise ConfigError(f"--vary {spec!r}: the value {v!r} is repeated")
        values.append(v)
    if len(values) < 2:
        raise ConfigError(f"--vary {spec!r}: give at least two values to compare")
    return section, f.name, values
