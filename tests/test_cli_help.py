"""Every command's --help prints its usage and exits 0 (argparse %-formats help strings, so a
stray "%" in one crashes --help with a traceback; `bench --help` did)."""
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
