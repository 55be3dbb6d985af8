"""The command lines: every command's --help prints its usage and exits 0 (argparse %-formats help
strings, so a stray "%" in one crashes --help with a traceback; `bench --help` did), every flag is
explained there, and a bad value is refused at parse time in one line with exit status 2."""
import argparse
import importlib

import pytest

from experiments import bench

COMMANDS = ["run", "sweep", "analyze", "analyze_agents", "reproduce", "evaluate", "parity", "play", "probe",
            "scale", "bench"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_exits_0_with_usage(name, capsys):
    mod = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and f"experiments.{name}" in out, out[:200]


@pytest.mark.parametrize("sub", sorted(bench.SUBCOMMANDS))
def test_bench_subcommand_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([sub, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m experiments.bench {sub}")


def _actions(parser: argparse.ArgumentParser):
    """Every option of a parser and of its subcommands' parsers: (prog, action)."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _actions(sub)
        else:
            yield parser.prog, a


@pytest.mark.parametrize("name", COMMANDS)
def test_every_flag_has_help(name):
    parser = importlib.import_module(f"experiments.{name}").build_parser()
    undocumented = [(prog, a.option_strings or a.dest) for prog, a in _actions(parser)
                    if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS and not a.help]
    assert not undocumented



@pytest.mark.parametrize("name, argv, message", [
    ("play", ["--seed", "x"], "argument --seed: 'x' is not an integer"),
    ("play", ["--p-change", "1.5"], "argument --p-change: 1.5 must be in [0, 1]"),
    ("play", ["--delay", "-1"], "argument --delay: -1 must be >= 0"),
    ("parity", ["--seed", "-1"], "argument --seed: -1 must be in [0, 2**31)"),
    ("parity", ["--episodes", "0"], "argument --episodes: 0 must be >= 1"),
    ("bench", ["env", "--minihack-seconds", "0"], "argument --minihack-seconds: 0 must be > 0"),
    ("bench", ["train", "--repeats", "0"], "argument --repeats: 0 must be >= 1"),
    ("scale", ["--devices", "2", "0"], "argument --devices: 0 must be >= 1"),
    ("analyze", ["RUN", "--bootstrap", "-1"], "argument --bootstrap: -1 must be >= 0"),
    ("analyze", ["RUN", "--segments", "1"], "argument --segments: 1 must be >= 2 (the analysis compares z"),
    ("analyze_agents", ["SWEEP", "--eval-seed", "-5"], "argument --eval-seed: -5 must be in [0, 2**32)"),
    ("evaluate", ["RUN", "--gif-episodes", "0"], "argument --gif-episodes: 0 must be >= 1"),
    ("evaluate", ["RUN", "--p-change", "2"], "argument --p-change: 2 must be in [0, 1]"),
    ("probe", ["--steps", "0"], "argument --steps: 0 must be >= 1"),
    ("reproduce", ["--analysis-envs", "0"], "argument --analysis-envs: 0 must be >= 1"),
    ("sweep", ["--sustain", "x"], "argument --sustain: 'x' is not an integer"),
    ("run", ["--seeds", "0"], "seeds=0 must be >= 1"),
    ("run", ["--blocked-reward", "0.5"], "blocked_reward=0.5 must be a finite number <= 0"),
    ("sweep", ["--blocked-reward", "nan"], "blocked_reward=nan must be a finite number"),
])
def test_bad_value_one_line_exit_2(name, argv, message, capsys):
    mod = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit) as exc:
        mod.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
