"""The command line: `python -m experiments.bench SUBCOMMAND [SUBCOMMAND ...] [options]`, one
namespace per subcommand (each reads the options it knows, with its own defaults), the machine
printed first, and one JSON document for the whole run."""
from __future__ import annotations

import argparse
import sys
import time

# importing a subcommand's module registers it; this order is the order of --help
from experiments.bench import env, model, compile_time, train, seeds, xla_flags, learn  # noqa: F401
from experiments.bench.registry import SUBCOMMANDS, Subcommand
from experiments.bench.report import write_json
from hrm_jax.cli import OneLineParser, non_negative_int, positive_int
from hrm_jax.machine import load_average, machine_info, machine_text


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="OUT", default=None, help="also write the results as JSON to OUT")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed calls per measurement (median; default 5)")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed calls after the first call (every timing makes that one and reports it apart "
                        "as first_call_s; default 1)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="root of every random key (default 0)")


# `all` runs these, in this order (and `learn` too with --with-learn)
ALL_ORDER = ("env", "model", "compile", "train", "seeds")


def _sub_parser(sub: Subcommand, parser=None) -> argparse.ArgumentParser:
    sp = parser or OneLineParser(prog=f"python -m experiments.bench {sub.name}", description=sub.help)
    add_common_arguments(sp)
    sub.add_arguments(sp)
    return sp


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m experiments.bench",
        description="hrm-jax benchmarks (compile and first call excluded, median of repeats). Several subcommands "
                    "may be given at once (`train seeds --json OUT`); every option then goes to each subcommand that "
                    "has it.")
    subs = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for sub in SUBCOMMANDS.values():
        # argparse %-formats a subparser's help (not its description): "95%" would crash --help
        _sub_parser(sub, subs.add_parser(sub.name, help=sub.help.replace("%", "%%"), description=sub.help))
    pa = subs.add_parser("all", help=f"run {', '.join(ALL_ORDER)} (and learn with --with-learn); "
                                     "the other options go to each subcommand that has them")
    pa.add_argument("--with-learn", action="store_true", help="also run the (long) learn benchmark")
    return parser


def _split_names(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading subcommand names (and `all`), then the rest."""
    names = []
    i = 0
    while i < len(argv) and (argv[i] in SUBCOMMANDS or argv[i] == "all"):
        names.append(argv[i])
        i += 1
    return names, argv[i:]


def _parse_multi(parser: argparse.ArgumentParser, names: list[str], rest: list[str]) -> list[argparse.Namespace]:
    """One namespace per subcommand: each subcommand's parser reads the options it knows (with its
    own defaults); a token that none of them knows is an error (exit 2)."""
    rest = list(rest)
    with_learn = "--with-learn" in rest
    rest = [x for x in rest if x != "--with-learn"]
    order: list[str] = []
    for n in names:
        for m in (list(ALL_ORDER) + (["learn"] if with_learn else [])) if n == "all" else [n]:
            if m not in order:
                order.append(m)
    if with_learn and "all" not in names:
        parser.error("--with-learn goes with `all`")
    spaces, unknown = [], None
    for n in order:
        ns, extra = _sub_parser(SUBCOMMANDS[n]).parse_known_args(rest)
        ns.subcommand = n
        spaces.append(ns)
        unknown = set(extra) if unknown is None else unknown & set(extra)
    if unknown:
        bad = [x for x in rest if x in unknown]
        parser.error(f"unrecognized arguments for {' '.join(order)}: {' '.join(bad)}")
    return spaces


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    names, rest = _split_names(argv)
    if len(names) == 1 and names[0] != "all" or not names:
        spaces = [parser.parse_args(argv)]  # the single-subcommand form (and its errors / --help)
    else:
        if "-h" in rest or "--help" in rest:
            parser.parse_args([names[0] if names[0] != "all" else "all", "--help"])
        spaces = _parse_multi(parser, names, rest)
    if spaces[0].repeats < 5:
        print(f"note: --repeats {spaces[0].repeats} < 5: a quick run, not a measurement", flush=True)
    info = machine_info()
    print(machine_text(info), flush=True)
    all_results, configs = {}, {}
    for args in spaces:
        sub = SUBCOMMANDS[args.subcommand]
        args.parser = parser
        if len(spaces) > 1:
            print(f"\n===== {sub.name} =====", flush=True)
        start_load, t0, c0 = load_average(), time.perf_counter(), time.process_time()
        results = sub.run(args)
        results["loadavg_start"], results["loadavg_end"] = start_load, load_average()
        results["bench_wall_s"], results["bench_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        if len(spaces) > 1:
            print(f"({sub.name}: {results['bench_wall_s']:.0f} s wall, {results['bench_cpu_s']:.0f} s CPU)", flush=True)
        all_results[sub.name] = results
        configs[sub.name] = {k: v for k, v in vars(args).items() if k not in ("parser",)}
    end_load = load_average()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in end_load) if end_load else 'n/a'}", flush=True)
    out = spaces[0].json
    if out:
        if len(spaces) == 1:
            name = spaces[0].subcommand
            doc = {"subcommand": name, "argv": argv, "config": configs[name], "machine": info,
                   "loadavg_end": end_load, "results": all_results[name]}
        else:
            doc = {"subcommand": "+".join(all_results), "subcommands": list(all_results), "argv": argv,
                   "config": configs, "machine": info, "loadavg_end": end_load, "results": all_results}
        write_json(out, doc)
        print(f"wrote {out}", flush=True)
    return 0

