"""The argparse types of hrm_jax.cli: a bad number is refused in one line that says why."""
import argparse

import pytest

from hrm_jax import cli


@pytest.mark.parametrize("parse, text, expected", [
    (cli.positive_int, "3", 3),
    (cli.positive_int, "0", "0 must be >= 1"),
    (cli.positive_int, "2.5", "'2.5' is not an integer"),
    (cli.non_negative_int, "0", 0),
    (cli.non_negative_int, "-1", "-1 must be >= 0"),
    (cli.positive_float, "1e-9", 1e-9),
    (cli.positive_float, "0", "0 must be > 0"),
    (cli.positive_float, "inf", "'inf' is not a finite number"),
    (cli.positive_float, "nan", "'nan' is not a finite number"),
    (cli.non_negative_float, "0", 0.0),
    (cli.probability, "1", 1.0),
    (cli.probability, "1.5", "1.5 must be in [0, 1]"),
    (cli.probability, "-0.1", "-0.1 must be in [0, 1]"),
    (cli.probability, "x", "'x' is not a number"),
    (cli.seed_int, str(2**32 - 1), 2**32 - 1),
    (cli.seed_int, str(2**32), "4294967296 must be in [0, 2**32)"),
    (cli.number(int, 0, 10, lo_open=True), "0", "0 must be in (0, 10]"),
    (cli.number(float, hi=1, hi_open=True), "1", "1 must be < 1"),
    (cli.number(int, 2, why="two at least"), "1", "1 must be >= 2 (two at least)"),
])
def test_number_types(parse, text, expected):
    if isinstance(expected, str):
        with pytest.raises(argparse.ArgumentTypeError) as exc:
            parse(text)
        assert str(exc.value) == expected
    else:
        value = parse(text)
        assert value == expected and type(value) is type(expected)
