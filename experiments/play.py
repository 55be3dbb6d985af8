"""Play a maze in the terminal, or watch a scripted policy.

    python -m experiments.play --env four_rooms [--seed S] [--p-change P]
        interactive: arrow keys or WASD (hjkl too) move, q (or Ctrl-C) quits.
    python -m experiments.play --env corridor_maze --policy shortest-path --episodes 256 [--render]
        scripted: runs the episodes vmapped inside one jit and prints the success rate, the mean
        episode length and the mean BFS-optimal length at episode start.

All randomness comes from `jax.random` keys derived from --seed.
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import envs
from envs import policies
from envs.maps import ACTION_NAMES
from envs.render import ascii_view
from hrm_jax.cli import OneLineParser, non_negative_float, positive_int, probability, seed_int

CLEAR = "\x1b[2J\x1b[H"
# key sequence -> action (0=N, 1=E, 2=S, 3=W)
KEYMAP = {
    "w": 0, "d": 1, "s": 2, "a": 3,
    "k": 0, "l": 1, "j": 2, "h": 3,
    "\x1b[A": 0, "\x1b[C": 1, "\x1b[B": 2, "\x1b[D": 3,   # arrows (normal cursor mode)
    "\x1bOA": 0, "\x1bOC": 1, "\x1bOB": 2, "\x1bOD": 3,   # arrows (application cursor mode)
}
QUIT_KEYS = {"q", "Q", "\x03", "\x04", ""}  # q, Ctrl-C, Ctrl-D, end of input
LEGEND = {
    "four_rooms": "@ you   > goal   < start   | wall or closed door",
    "corridor_maze": "@ you   > goal   < start   | wall (fixed walls too)   # closed door",
}


# ---- command line ------------------------------------------------------------------------------









def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m experiments.play", description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=envs.ENV_NAMES, default="four_rooms", help="which maze (default four_rooms)")
    p.add_argument("--seed", type=seed_int, default=0, help="root of every jax.random key (default 0)")
    p.add_argument("--p-change", type=probability, default=None,
                   help="probability that the doors change after a step (default: the env's, 0.05)")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help="episode length limit (default: the env's, 80)")
    p.add_argument("--policy", choices=("random", "shortest-path"), default=None,
                   help="watch a scripted policy instead of playing")
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="episodes for --policy (default 64)")
    p.add_argument("--render", action="store_true", help="with --policy: show the first episode(s) frame by frame")
    p.add_argument("--render-episodes", type=positive_int, default=1, help="how many episodes --render shows")
    p.add_argument("--delay", type=non_negative_float, default=0.15, help="seconds between rendered frames")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.policy is None and (args.episodes is not None or args.render):
        parser.error("--episodes and --render need --policy (without --policy you play yourself)")
    if args.episodes is None:
        args.episodes = 64
    overrides = {}
    if args.p_change is not None:
        overrides["p_change"] = args.p_change
    if args.max_steps is not None:
        overrides["max_steps_in_episode"] = args.max_steps
    try:
        args.env_obj, args.params = envs.make(args.env, **overrides)
    except ValueError as e:
        parser.error(str(e))
    return args


# ---- shared text -------------------------------------------------------------------------------

def door_cells(env, mask) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in env.maze.candidates[i]) for i in np.flatnonzero(np.asarray(mask))]


def door_change_text(env, before, after) -> str:
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    opened, closed = door_cells(env, before & ~after), door_cells(env, after & ~before)
    if not opened and not closed:
        return "doors: no change"
    fmt = lambda cells: " ".join(f"({r},{c})" for r, c in cells) or "-"
    return f"doors changed: opened {fmt(opened)}; closed {fmt(closed)}"


def path_text(opt: int) -> str:
    if opt >= 0:
        return f"optimal remaining path: {opt} steps"
    return "optimal remaining path: none (goal cut off; wait for the doors)"


def closed_text(env, mask) -> str:
    return "doors: " + (", ".join(f"({r},{c})" for r, c in door_cells(env, mask)) or "none") + " closed"


def header(args) -> str:
    p = args.params
    return (f"{args.env}  p_change={float(p.p_change):g}  doors={p.door_dynamics}  "
            f"max_steps={int(p.max_steps_in_episode)}  seed={args.seed}")


# ---- interactive -------------------------------------------------------------------------------

class Terminal:
    """Raw keyboard input on a tty (restored on exit), plain byte input otherwise."""

    def __init__(self, fd_in: int, out):
        self.fd, self.out = fd_in, out
        self.is_tty = os.isatty(fd_in)
        self.saved = None

    def __enter__(self):
        if self.is_tty:
            import termios
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        self.out.write("\x1b[?25l")  # hide the cursor
        self.out.flush()
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        self.out.write("\x1b[?25h\r\n")
        self.out.flush()
        return False

    def draw(self, lines: list[str]) -> None:
        # raw mode turns off output post-processing, so end lines with \r\n ourselves
        self.out.write(CLEAR + "\r\n".join(lines) + "\r\n")
        self.out.flush()

    def read_key(self) -> str:
        b = os.read(self.fd, 1)
        if b != b"\x1b":
            return b.decode("latin-1")
        seq = b
        while len(seq) < 3:  # escape sequences arrive together; a lone ESC times out
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                break
            seq += os.read(self.fd, 1)
        return seq.decode("latin-1")


def interactive(args, fd_in=None, out=None) -> int:
    env, params = args.env_obj, args.params
    fd_in = sys.stdin.fileno() if fd_in is None else fd_in
    out = sys.stdout if out is None else out
    out.write(f"compiling {args.env} ...\n")
    out.flush()
    reset = jax.jit(lambda k: env.reset(k, params))
    step = jax.jit(lambda k, s, a: env.step_env(k, s, a, params))
    optimal = jax.jit(env.optimal_path_length)
    root = jax.random.key(args.seed)
    shape = env.maze.obs_shape
    max_steps = int(params.max_steps_in_episode)

    with Terminal(fd_in, out) as term:
        episode = 0
        while True:
            episode += 1
            k_ep = jax.random.fold_in(root, episode)
            obs, state = reset(jax.random.fold_in(k_ep, 0))
            opt0 = int(optimal(state))
            ret, last = 0.0, "new episode: reach > (arrows/WASD move, q quits)"
            doors = closed_text(env, state.closed_doors)
            end = None
            while True:
                opt = int(optimal(state))
                lines = [f"HRM-Agent maze  {header(args)}  episode {episode}", ""]
                lines += ascii_view(np.asarray(obs), shape).splitlines()
                lines += ["", LEGEND[args.env],
                          f"step {int(state.time)}/{max_steps}   {last}   return {ret:+.2f}",
                          doors, path_text(opt)]
                if end is not None:
                    lines += ["", end, "new episode? [y/n]"]
                else:
                    lines += ["", "arrows/WASD move, q quits"]
                term.draw(lines)
                key = term.read_key()
                if key in QUIT_KEYS:
                    return 0
                if end is not None:
                    if key.lower() in ("y", "\r", "\n", " "):
                        break
                    if key.lower() == "n":
                        return 0
                    continue
                action = KEYMAP.get(key, KEYMAP.get(key.lower()))  # WASD in either case
                if action is None:
                    continue
                before = state.closed_doors
                obs, state, reward, terminated, info = step(jax.random.fold_in(k_ep, int(state.time) + 1), state,
                                                            jnp.int32(action))
                reward = float(reward)
                ret += reward
                bumped = "  (bumped)" if bool(info["blocked"]) else ""
                last = f"moved {ACTION_NAMES[action]}  reward {reward:+.2f}{bumped}"
                doors = door_change_text(env, before, state.closed_doors)
                if bool(terminated):
                    end = f"SUCCESS: reached the goal in {int(state.time)} steps (optimal at start: {opt0})"
                elif int(state.time) >= max_steps:
                    end = f"TRUNCATED: {max_steps} steps without reaching the goal (optimal at start: {opt0})"


# ---- scripted policies -------------------------------------------------------------------------

def render_episodes(args, out) -> None:
    env, params = args.env_obj, args.params
    policy = policies.as_policy(args.policy, env)
    n = min(args.render_episodes, args.episodes)
    keys = policies.episode_keys(jax.random.key(args.seed), args.episodes)[:n]
    rec = jax.jit(jax.vmap(lambda k: policies.play_episode(env, params, policy, k, record=True)))(keys)
    rec = jax.tree.map(np.asarray, rec)
    clear = CLEAR if hasattr(out, "isatty") and out.isatty() else "\n"
    for e in range(n):
        length = int(rec["length"][e])
        for t in range(length + 1):
            lines = [f"{args.policy} policy  {header(args)}  episode {e + 1}/{n}", ""]
            lines += ascii_view(rec["obs"][e, t], env.maze.obs_shape).splitlines()
            lines.append("")
            if t == 0:
                lines += [f"step 0   optimal path at start: {int(rec['optimal_start'][e])}",
                          closed_text(env, rec["closed_doors"][e, 0])]
            else:
                lines += [f"step {t}   reward {float(rec['reward'][e, t - 1]):+.2f}",
                          door_change_text(env, rec["closed_doors"][e, t - 1], rec["closed_doors"][e, t])]
            if t == length:
                lines.append("SUCCESS" if rec["success"][e] else "TRUNCATED")
            out.write(clear + "\n".join(lines) + "\n")
            out.flush()
            if args.delay:
                time.sleep(args.delay)


def summarize(res: dict) -> dict:
    res = {k: np.asarray(v) for k, v in res.items()}
    ok = res["optimal_start"] >= 0
    succ = res["success"]
    return {
        "episodes": int(len(succ)),
        "success_rate": float(succ.mean()),
        "mean_length": float(res["length"].mean()),
        "mean_length_successful": float(res["length"][succ].mean()) if succ.any() else float("nan"),
        "mean_return": float(res["return"].mean()),
        "mean_optimal_start": float(res["optimal_start"][ok].mean()) if ok.any() else float("nan"),
        "goal_cut_off_at_start": int((~ok).sum()),
    }


def watch(args, out=None) -> int:
    out = sys.stdout if out is None else out
    env, params = args.env_obj, args.params
    if args.render:
        render_episodes(args, out)
    run = policies.jit_run_episodes(env, params, policies.as_policy(args.policy, env), args.episodes)
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    compiled = run.lower(key).compile()
    t1 = time.perf_counter()
    res = jax.block_until_ready(compiled(key))
    t2 = time.perf_counter()
    s = summarize(res)
    out.write(f"{args.policy} policy on {header(args)}\n")
    out.write(f"episodes                     {s['episodes']}\n")
    out.write(f"success rate                 {s['success_rate']:.3f}\n")
    out.write(f"mean episode length          {s['mean_length']:.2f}   "
              f"(successful episodes: {s['mean_length_successful']:.2f})\n")
    out.write(f"mean return                  {s['mean_return']:+.3f}\n")
    out.write(f"mean BFS-optimal length at start {s['mean_optimal_start']:.2f}   "
              f"(goal cut off at start in {s['goal_cut_off_at_start']} of {s['episodes']} episodes)\n")
    out.write(f"time: compile {t1 - t0:.2f} s, run {t2 - t1:.3f} s ({s['episodes']} episodes vmapped in one jit)\n")
    out.flush()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.policy is not None:
            return watch(args)
        return interactive(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
