"""Scale-out with JAX's own SPMD: one `Mesh`, `NamedSharding`s on the train state, and `jit` with
in/out shardings. No `pmap` and no hand-written collectives: the compiler partitions the vmapped
trainer and inserts whatever communication the shardings imply.

The mesh always has two axes, ("seeds", "data"); one of them has size 1.

Seed sweeps (the default). The trainer is vmapped over agents, so every TrainState leaf carries
the seed axis first; it is split over "seeds", e.g. `--seeds 16` on 8 devices runs 2 seeds per
device. Seeds never exchange anything, so each device runs the single-device program on its own
seeds; the only communication is the per-chunk metrics (a few scalars per seed), which come back
replicated so every process can read them.
  If `seeds` is not a multiple of the device count, the run FALLS BACK to the largest number of
devices that divides it (the same number on every process) and prints a note saying so. It does
not pad: padded agents would cost a full agent's compute each, and the state, checkpoints and
logs would depend on the device count. With the fallback they never do, so a run can be
resumed on a different number of devices (orbax re-shards on restore).

Data parallel (`TrainConfig.data_parallel`): one agent (or a few, each on every device) uses all
devices on "data". Split along "data": the environments (env_state, obs, z, ep_return; the env
axis, after the seed axis) and every replay minibatch (a sharding constraint inside the trainer,
`make_train(shard_batch=...)`). Replicated: parameters, target network, optimiser state, RNG keys
and the replay buffer. The compiler then inserts an all-gather of each collection's transitions
(so every device adds the same rows to its buffer) and all-reduces for the minibatch means
(loss, hence the gradients). Why a replicated buffer: every device draws the same indices from
the same replicated key, so a data-parallel minibatch is exactly the single-device one (results
differ only by the order of float sums), and sampling needs no cross-device gather; a sharded
buffer would either change what is sampled (per-device local sampling) or gather B rows across
devices every gradient step. The price is memory (the buffer is held once per device) and the
small all-gather per collection. The greedy evaluation is not split (each device runs all of it).
Random numbers are the same whatever the sharding (`jax_threefry_partitionable`, on by default).
  `num_envs` and `batch_size` must divide evenly; otherwise the largest device count that does
is used, with a note, as for seeds.

Multi-host: `initialize_distributed()` (before anything touches JAX) joins the processes; the mesh
then spans every process's devices (the same number from each), host values become global arrays
with `place`, sharded results are read with `gather`. Only process 0 writes logs; orbax's
CheckpointManager is called by every process (each writes the shards it owns, process 0 the
metadata) and needs the jax.distributed client that `initialize_distributed` starts (CPU
processes exchange data with gloo, JAX's default CPU collectives). Gloo gives up when processes
reach a new collective more than ~30 s apart, so with several processes init / chunk are
compiled ahead of their first run and the processes meet at a coordination-service `barrier`
(long timeout) before running them and before every host-side collective.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from hrm_jax.config import SEED_LOOPS

SEEDS, DATA = "seeds", "data"
# TrainState fields whose leaves are [seeds, num_envs, ...] (split over "data" in data-parallel mode)
ENV_FIELDS = ("env_state", "obs", "z", "ep_return")


# -- processes ---------------------------------------------------------------------------------

def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """`jax.distributed.initialize` from flags, else JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID, else JAX's own cluster detection (SLURM, Open MPI, ...). Must run before any
    JAX computation."""
    env = os.environ
    if coordinator_address is None:
        coordinator_address = env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def is_main() -> bool:
    """True on the process that writes logs, summaries and plots (process 0)."""
    return jax.process_index() == 0


# -- the mesh ----------------------------------------------------------------------------------

def _devices_by_process(devices=None) -> list[list]:
    devices = list(jax.devices() if devices is None else devices)
    procs = sorted({d.process_index for d in devices})
    return [sorted((d for d in devices if d.process_index == p), key=lambda d: d.id) for p in procs]


def pick_devices(fits: Callable[[int], bool], devices=None) -> list:
    """The most devices m (the same number k from every process, m = k * processes) with fits(m).
    Empty if none fits."""
    by_proc = _devices_by_process(devices)
    local = min(len(ds) for ds in by_proc)
    for k in range(local, 0, -1):
        if fits(k * len(by_proc)):
            return [d for ds in by_proc for d in ds[:k]]
    return []


def make_mesh(cfg, devices=None) -> tuple[Mesh, str | None]:
    """The ("seeds", "data") mesh for this config, and a note (None if every device is used).
    Raises ValueError if no device count fits (multi-host: a count not divisible by the processes)."""
    t = cfg.train
    everything = list(jax.devices() if devices is None else devices)
    n_proc = len(_devices_by_process(everything))
    if t.data_parallel:
        fits = lambda m: t.num_envs % m == 0 and t.minibatch_rows % m == 0
        what = f"num_envs={t.num_envs} or the minibatch of {t.minibatch_rows} rows"
    else:
        fits = lambda m: t.seeds % m == 0
        what = f"seeds={t.seeds}"
    chosen = pick_devices(fits, everything)
    if not chosen:
        raise ValueError(f"{what} cannot be split evenly over {n_proc} processes; use a multiple of {n_proc}")
    note = None
    if len(chosen) < len(everything):
        per = (f"{t.seeds // len(chosen)} seed(s) each" if not t.data_parallel
               else f"{t.num_envs // len(chosen)} envs, {t.minibatch_rows // len(chosen)} minibatch rows each")
        note = (f"note: {what} is not a multiple of the {len(everything)} devices: running on {len(chosen)} "
                f"of them ({per}); use a multiple of {len(everything)} to use them all")
    shape = (1, len(chosen)) if t.data_parallel else (len(chosen), 1)
    mesh = Mesh(np.array(chosen, dtype=object).reshape(shape), (SEEDS, DATA),
                axis_types=(AxisType.Auto, AxisType.Auto))
    return mesh, note


# -- shardings ---------------------------------------------------------------------------------

def state_sharding(mesh: Mesh, state_shape: Any, data_parallel: bool) -> Any:
    """A NamedSharding per TrainState leaf (state_shape: the vmapped state or its eval_shape)."""
    if not data_parallel:
        seeds = NamedSharding(mesh, P(SEEDS))
        return jax.tree.map(lambda _: seeds, state_shape)
    rep, envs = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, DATA))
    out = jax.tree.map(lambda _: rep, state_shape)
    return out.replace(**{f: jax.tree.map(lambda _: envs, getattr(state_shape, f)) for f in ENV_FIELDS})


def batch_constraint(mesh: Mesh) -> Callable[[Any], Any]:
    """Inside the (per-agent) trainer: split the leading axis of every leaf over "data"."""
    spec = NamedSharding(mesh, P(DATA))
    return lambda tree: jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), tree)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def place(tree: Any, shardings: Any) -> Any:
    """Put host values (or arrays placed elsewhere) onto `shardings` (a matching tree, or one
    sharding for every leaf). Works with several processes: each must pass the same full values."""
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)

    def one(x, s):
        if isinstance(x, jax.Array) and x.sharding == s:
            return x
        if _is_key(x):
            data = one(jax.random.key_data(x), s)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if jax.process_count() == 1 or (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return jax.device_put(x, s)  # (a global array is re-sharded by every process together)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


def gather(tree: Any) -> Any:
    """numpy copies of (possibly sharded, possibly multi-process) arrays. With several processes
    this is a collective: every process must call it."""
    leaves = jax.tree.leaves(tree)
    if all(getattr(x, "is_fully_addressable", True) or getattr(x, "is_fully_replicated", False) for x in leaves):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    barrier("gather")
    return multihost_utils.process_allgather(tree, tiled=True)


def barrier(name: str, timeout_s: float = 1800.0) -> None:
    """Wait until every process gets here (no-op with one process). Uses the jax.distributed
    coordination service, not a device collective: CPU (gloo) collectives give up when processes
    arrive more than ~30 s apart, which compiling on loaded machines easily exceeds."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the client jax.distributed.initialize started (as orbax uses it)

    _BARRIERS[0] += 1  # every process passes the same barriers in the same order: unique ids
    distributed.global_state.client.wait_at_barrier(f"hrm_jax_{name}_{_BARRIERS[0]}", int(timeout_s * 1000))


_BARRIERS = [0]


def local_mean(x: jax.Array) -> float:
    """Mean over this process's shards of `x` (no communication): equals the global mean for
    values every seed shares (e.g. env_steps, which all agents advance in lockstep)."""
    return float(np.mean([np.asarray(s.data) for s in x.addressable_shards]))


def any_process(flag: bool) -> bool:
    """True if `flag` is true on any process (a collective with several processes; else `flag`).
    Used so that a Ctrl-C delivered to one process stops every process after the same chunk."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils
    barrier("any_process")
    return bool(np.any(multihost_utils.process_allgather(np.array([bool(flag)]))))


# -- the sharded trainer -----------------------------------------------------------------------

class Sharded(NamedTuple):
    mesh: Mesh
    note: str | None
    state_sharding: Any            # NamedSharding per TrainState leaf
    key_sharding: NamedSharding    # for the [seeds] keys given to init
    init: Callable                 # keys [seeds] -> TrainState (jitted; places host keys first)
    chunk: Callable                # TrainState -> (TrainState, metrics: replicated [seeds] arrays)


class _Placed:
    """A jitted function whose (host) inputs are placed onto its input shardings first, so it can
    be called with ordinary arrays on one or many processes. Under tracing (eval_shape) it is the
    jitted function itself. With several processes it is compiled ahead of its first call and the
    processes meet at a barrier before running it, so that its collectives start together."""

    def __init__(self, fn, shardings, name: str):
        self.fn, self.shardings, self.name, self.compiled = fn, shardings, name, None

    def __call__(self, x):
        if any(isinstance(l, jax.core.Tracer) for l in jax.tree.leaves(x)):
            return self.fn(x)
        x = place(x, self.shardings)
        if jax.process_count() == 1:
            return self.fn(x)
        if self.compiled is None:
            self.compiled = self.fn.lower(x).compile()
            barrier(f"compiled_{self.name}")
        return self.compiled(x)

    def lower(self, *args, **kw):
        return self.fn.lower(*args, **kw)


def over_seeds(fn: Callable, seed_loop: str, mesh: Mesh | None = None) -> Callable:
    """`fn` (one agent's state -> outputs) over the leading seed axis of a stacked state.

    vmap: one batched program for all the seeds. map: `lax.map`, the seeds one after another in a
    loop of the single-agent program (TrainConfig.seed_loop; a CPU runs it faster, measured by
    `experiments.bench seeds`). Both take and give the same stacked layout, so checkpoints do not
    depend on the loop. With the seeds split over several devices, each device loops over its own
    block of them (shard_map); a scan over an axis split by the compiler would gather it first.
    One seed (per device) is not looped: vmap of one is the single-agent program, so a one-seed
    run gives the same bits with either loop."""
    # spmd_axis_name: inside vmap, sharding constraints put the (vmapped) seed axis on "seeds"
    batched = jax.vmap(fn, spmd_axis_name=SEEDS)
    if seed_loop == "vmap":
        return batched
    if seed_loop != "map":
        raise ValueError(f"seed_loop={seed_loop!r}: choose one of {', '.join(SEED_LOOPS)}")

    def loop(one_seed: Callable) -> Callable:
        def run(state):
            seeds = jax.tree.leaves(state)[0].shape[0]  # on this device
            return one_seed(state) if seeds == 1 else jax.lax.map(fn, state)
        return run

    if mesh is None or mesh.shape[SEEDS] == 1:
        return loop(batched)
    # inside shard_map "seeds" is a manual axis: the one-seed case is a plain vmap.
    # check_vma=False: the trainer's inner while loops start from constants (not varying over
    # "seeds") that the check would ask to pcast one by one; the body has no collectives to check
    return jax.shard_map(loop(jax.vmap(fn)), mesh=mesh, in_specs=P(SEEDS), out_specs=P(SEEDS), check_vma=False)


def make_sharded_train(cfg, devices=None, quiet: bool = False):
    """(Trainer, Sharded): the trainer for `cfg` and its init / chunk jitted over the mesh.

    init is always vmapped (it runs once); chunk loops over the seeds as cfg.train.seed_loop says.
    With one device and seed_loop="vmap" this compiles the same program as
    `jax.jit(jax.vmap(tr.init))` / `jax.jit(jax.vmap(tr.chunk))` (the shardings are trivial), so
    results are bit-identical."""
    from hrm_jax.algos import make_train, seed_keys

    mesh, note = make_mesh(cfg, devices)
    if note and not quiet and is_main():
        print(note, file=sys.stderr)
    dp = cfg.train.data_parallel
    tr = make_train(cfg, shard_batch=batch_constraint(mesh) if dp else None)
    vinit = over_seeds(tr.init, "vmap")
    vchunk = over_seeds(tr.chunk, cfg.train.seed_loop, mesh)
    keys_like = jax.eval_shape(lambda: seed_keys(cfg.train.seed, cfg.train.seeds, cfg.train.first_agent))
    state_sh = state_sharding(mesh, jax.eval_shape(vinit, keys_like), dp)
    key_sh = NamedSharding(mesh, P() if dp else P(SEEDS))
    rep = NamedSharding(mesh, P())
    init = jax.jit(vinit, in_shardings=(key_sh,), out_shardings=state_sh)
    chunk = jax.jit(vchunk, in_shardings=(state_sh,), out_shardings=(state_sh, rep))
    return tr, Sharded(mesh=mesh, note=note, state_sharding=state_sh, key_sharding=key_sh,
                       init=_Placed(init, key_sh, "init"), chunk=_Placed(chunk, state_sh, "chunk"))
