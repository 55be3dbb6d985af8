"""The subcommand interface: a subcommand is a name, a help line, a function that adds its
options to a parser, and `run(args) -> dict` (the dict lands under "results" in the JSON).
Each subcommand module registers itself with `@subcommand`; `experiments.bench.cli` imports them
all and builds the command line from `SUBCOMMANDS`."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(name: str, help: str, add_arguments: Callable, run: Callable) -> Subcommand:
    if name in SUBCOMMANDS:
        raise ValueError(f"bench subcommand {name!r} is already registered")
    SUBCOMMANDS[name] = sub = Subcommand(name, help, add_arguments, run)
    return sub


def subcommand(name: str, help: str, add_arguments: Callable = lambda p: None):
    """Decorator form of `register` for a `run(args) -> dict` function."""
    def deco(run):
        register(name, help, add_arguments, run)
        return run
    return deco


def int_list(text: str) -> list[int]:
    """argparse type: "1,64,1024" -> [1, 64, 1024] (positive integers)."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: need one or more integers >= 1")
    return vals
