"""The HRM core adapted to DQN (docs/reference.md §2), and the functional API the trainer uses.

Variables:
  params     trainable: `embed_tokens`, `puzzle_emb` (its own top-level leaf, shape [1, hidden], so
             the trainer can give it its own optimiser), `L_level`, `H_level`, the Q head
             (`lm_head`, or `q_mlp_1`/`q_mlp_2`) and, optionally, HRM's unused ACT head `act_head`.
  constants  `H_init`, `L_init`: fixed [hidden] vectors (truncated normal, std 1), never trained.

One segment (HRM's loop): without gradient, for h in range(H_cycles), l in range(L_cycles), every
(h, l) but the last runs `z_L = L(z_L, z_H + x)`, and every h but the last runs `z_H = H(z_H, z_L)`;
then one step with gradient, `z_L = L(z_L, z_H + x)`, `z_H = H(z_H, z_L)`. The returned carry is
detached; Q comes from the (non-detached) final z_H.

Read-out tokens: the Q heads `last_token_linear` and `agent_token_linear` read one token of the
final z_H. So the gradient path of a training segment computes the last H update at that token only
(the carry's z_H is still computed at every token, without gradient), and the last segment of acting
and of the target network computes it only at the Q token and the last token (all that replay keeps
of z in the `last_token`/`reset` modes). The values are the full computation's, up to float
rounding; the `mlp` head (a mean over all tokens) and `full` z carry always compute every token.

Batch chunking: on CPU the whole batch's activations (e.g. 256 x 122 x 512 floats for the SwiGLU
inner layer) do not fit in cache, and XLA:CPU then runs the small-K matmuls and elementwise loops
at memory speed. `segment` and `run_segments` therefore process the batch in chunks of
`chunk` sequences with `jax.lax.map` (sequences are independent, so the result is identical).
`chunk=None` picks a measured default on CPU and no chunking on accelerators; `chunk=0` disables it.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from envs.maps import AGENT
from hrm_jax.config import ModelConfig
from hrm_jax.models.layers import Linear, ReasoningModule, compute_dtype, gather_tokens, lecun_normal, rotary_tables, trunc_normal

# Sequences per chunk on CPU (see the module docstring); chosen by measurement at the paper
# configuration (hidden 64, 122 tokens) on the project's 2-core machine.
CPU_CHUNK = 16


class LearnedPositions(nn.Module):
    """A learned absolute position embedding [seq_len, hidden] (HRM's `pos_encodings="learned"`),
    created at init for the observation's sequence length."""

    hidden: int

    @nn.compact
    def __call__(self, seq_len: int) -> jax.Array:
        return self.param("embedding", trunc_normal(1.0 / math.sqrt(self.hidden)), (seq_len, self.hidden), jnp.float32)


class GridPositions(nn.Module):
    """Learned positions factored over the observation grid (option `learned2d`, not HRM's): a row
    embedding [H, hidden] plus a column embedding [W, hidden] per cell, so cells in one row or
    column share a component and a model can read row and column apart (the Q values depend on
    where the goal is *relative to* the agent); the prepended puzzle token has its own vector.
    Returns [seq_len, hidden] for seq_len = 1 + H * W tokens (row-major cells)."""

    hidden: int
    width: int

    @nn.compact
    def __call__(self, seq_len: int) -> jax.Array:
        cells = seq_len - 1
        if self.width < 1 or cells % self.width:
            raise ValueError(f"pos_encoding learned2d: {cells} observation tokens are not rows of grid_width={self.width} "
                             "(build the model with make_model(cfg, grid_width=<the observation's width>))")
        init = trunc_normal(1.0 / math.sqrt(self.hidden))
        row = self.param("row", init, (cells // self.width, self.hidden), jnp.float32)
        col = self.param("col", init, (self.width, self.hidden), jnp.float32)
        first = self.param("first", init, (1, self.hidden), jnp.float32)
        grid = 0.707106781 * (row[:, None, :] + col[None, :, :])  # the same scale as one learned vector
        return jnp.concatenate([first, grid.reshape(cells, self.hidden)], axis=0)


@flax.struct.dataclass
class Carry:
    """The recurrent state inside an environment step: z_H, z_L float32 [B, S, D]."""

    z_H: jax.Array
    z_L: jax.Array


@flax.struct.dataclass
class StoredZ:
    """What replay stores between environment steps: [B, D] each ('last_token', 'reset') or
    [B, S, D] each ('full')."""

    z_H: jax.Array
    z_L: jax.Array


def q_token(cfg: ModelConfig, tokens: jax.Array) -> jax.Array:
    """int32[B]: the token index (puzzle token = 0) a linear Q head reads: the last token, or the
    agent's cell (+1: the puzzle token is prepended; exactly one '@' per observation)."""
    if cfg.q_head == "agent_token_linear":
        return (jnp.argmax(tokens == AGENT, axis=-1) + 1).astype(jnp.int32)
    return jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32)


def reads_out(cfg: ModelConfig, keep: str = "stored") -> bool:
    """Whether `run_segments(..., keep=keep)` computes its last H update at the read-out tokens only
    (the FLOP counts, hrm_jax.models.flops, follow the same rule)."""
    return keep != "carry" and cfg.q_head != "mlp" and not (keep == "stored" and cfg.z_carry == "full")


def readout_tokens(cfg: ModelConfig, tokens: jax.Array) -> jax.Array | None:
    """int32[B, 2]: the Q head's token and the last token (what replay keeps of z and the analysis
    traces); None for the mlp head, which reads every token. tokens: uint8[B, T]."""
    if cfg.q_head == "mlp":
        return None
    return jnp.stack([q_token(cfg, tokens), jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32)], axis=1)


class HRM(nn.Module):
    cfg: ModelConfig
    grid_width: int = 0  # the observation's width in cells; only pos_encoding learned2d uses it

    def setup(self):
        cfg = self.cfg
        D = cfg.hidden
        self.embed_tokens = nn.Embed(cfg.vocab_size, D, embedding_init=trunc_normal(1.0 / math.sqrt(D)),
                                     param_dtype=jnp.float32, name="embed_tokens")
        self.puzzle_emb = self.param("puzzle_emb", nn.initializers.zeros, (1, D), jnp.float32)
        self.H_init = self.variable("constants", "H_init",
                                    lambda: trunc_normal(1.0)(self.make_rng("params"), (D,), jnp.float32))
        self.L_init = self.variable("constants", "L_init",
                                    lambda: trunc_normal(1.0)(self.make_rng("params"), (D,), jnp.float32))
        if cfg.pos_encoding.endswith("learned2d"):
            self.embed_pos = GridPositions(D, self.grid_width, name="embed_pos")
        elif "learned" in cfg.pos_encoding:
            self.embed_pos = LearnedPositions(D, name="embed_pos")
        self.L_level = ReasoningModule(cfg, cfg.L_layers, name="L_level")
        self.H_level = ReasoningModule(cfg, cfg.H_layers, name="H_level")
        if cfg.q_head in ("last_token_linear", "agent_token_linear"):
            self.lm_head = Linear(cfg.vocab_size, dtype=jnp.float32, init_scale=cfg.q_init_scale, name="lm_head")
        else:
            self.q_mlp_1 = nn.Dense(D, kernel_init=lecun_normal(D), name="q_mlp_1")
            self.q_mlp_2 = nn.Dense(cfg.num_actions, kernel_init=lecun_normal(D, cfg.q_init_scale), name="q_mlp_2")
        if cfg.build_act_head:
            # HRM's halting head: zero weight, bias -5 (built for parity of the parameter count; unused).
            self.act_head = nn.Dense(2, kernel_init=nn.initializers.zeros,
                                     bias_init=nn.initializers.constant(-5.0), name="act_head")

    # -- pieces -------------------------------------------------------------------------------

    def embed(self, tokens: jax.Array) -> jax.Array:
        """uint8 [B, T] -> [B, T+1, D] in the compute dtype: puzzle token prepended, scaled by sqrt(D)."""
        cfg = self.cfg
        B = tokens.shape[0]
        e = jnp.take(self.embed_tokens.embedding, tokens.astype(jnp.int32), axis=0)
        p = jnp.broadcast_to(self.puzzle_emb[None], (B, 1, cfg.hidden))
        x = jnp.concatenate([p, e], axis=1)
        if "learned" in cfg.pos_encoding:
            x = 0.707106781 * (x + self.embed_pos(x.shape[1]))  # as HRM's learned positions
        return (x * math.sqrt(cfg.hidden)).astype(compute_dtype(cfg))

    def rotary(self, seq_len: int):
        """cos/sin tables; identity rotation (cos 1, sin 0) when positions are learned only."""
        cfg = self.cfg
        cos, sin = rotary_tables(seq_len, cfg.head_dim, cfg.rope_theta)
        if not cfg.pos_encoding.startswith("rope"):
            cos, sin = jnp.ones_like(cos), jnp.zeros_like(sin)
        return cos, sin

    def init_vectors(self) -> tuple[jax.Array, jax.Array]:
        return self.H_init.value, self.L_init.value

    def q_values(self, z_H: jax.Array, tokens: jax.Array) -> jax.Array:
        """Q [B, num_actions] float32 from z_H [B, S, D] (tokens uint8 [B, S-1]: the observation,
        used by the agent_token_linear head to find the agent's position)."""
        if self.cfg.q_head == "mlp":
            h = jax.nn.relu(self.q_mlp_1(jnp.mean(z_H.astype(jnp.float32), axis=1)))
            return self.q_mlp_2(h)
        return self.q_from_token(gather_tokens(z_H, q_token(self.cfg, tokens)[:, None])[:, 0])

    def q_from_token(self, z: jax.Array) -> jax.Array:
        """Q [B, num_actions] float32 from z_H [B, D] at the token the (linear) Q head reads."""
        return self.lm_head(z.astype(jnp.float32))[:, : self.cfg.num_actions]

    def reason(self, x: jax.Array, carry: Carry, query_at: jax.Array | None = None,
               full_z_H: bool = True) -> tuple[Carry, jax.Array]:
        """One segment from embedded input x [B, S, D]. Returns (detached new carry float32, z_H with grad).

        With `query_at` int32[B, K] the final H update with gradient runs at those tokens only: the
        returned z_H is [B, K, D] (the full update's values there), and the backward pass skips the
        rest of that update. The carry's z_H is still computed at every token (without gradient),
        or with full_z_H=False left out (None), so the forward pass skips it too."""
        cfg = self.cfg
        dt = compute_dtype(cfg)
        S = x.shape[1]
        cos, sin = self.rotary(S)
        L = lambda z, inj: self.L_level(z, inj, cos, sin)
        H = lambda z, inj: self.H_level(z, inj, cos, sin)
        z_H = jax.lax.stop_gradient(carry.z_H).astype(dt)
        z_L = jax.lax.stop_gradient(carry.z_L).astype(dt)
        x_ng = jax.lax.stop_gradient(x)
        for h in range(cfg.H_cycles):
            for l in range(cfg.L_cycles):
                if not (h == cfg.H_cycles - 1 and l == cfg.L_cycles - 1):
                    z_L = L(z_L, z_H + x_ng)
            if h != cfg.H_cycles - 1:
                z_H = H(z_H, z_L)
        # The parameters inside the loop above still receive no gradient: its outputs are cut here.
        z_H, z_L = jax.lax.stop_gradient(z_H), jax.lax.stop_gradient(z_L)
        # The single step with gradient.
        z_L = L(z_L, z_H + x)
        new_L = jax.lax.stop_gradient(z_L).astype(jnp.float32)
        if query_at is None:
            z_H = H(z_H, z_L)
            return Carry(z_H=jax.lax.stop_gradient(z_H).astype(jnp.float32), z_L=new_L), z_H
        z_read = self.H_level(z_H, z_L, cos, sin, query_at)
        z_H_all = jax.lax.stop_gradient(H(z_H, z_L)).astype(jnp.float32) if full_z_H else None
        return Carry(z_H=z_H_all, z_L=new_L), z_read

    def segment_fn(self, tokens: jax.Array, carry: Carry) -> tuple[Carry, jax.Array]:
        at = readout_tokens(self.cfg, tokens)
        if at is None:
            new, z_H = self.reason(self.embed(tokens), carry)
            return new, self.q_values(z_H, tokens)
        new, z_q = self.reason(self.embed(tokens), carry, at[:, :1])  # the gradient path: the Q token only
        return new, self.q_from_token(z_q[:, 0])

    def __call__(self, tokens: jax.Array, carry: Carry | None = None) -> tuple[Carry, jax.Array]:
        """One segment from H_init/L_init (or `carry`): (detached new carry, q)."""
        if carry is None:
            B, T = tokens.shape
            hi, li = self.init_vectors()
            shape = (B, T + 1, self.cfg.hidden)
            carry = Carry(z_H=jnp.broadcast_to(hi, shape), z_L=jnp.broadcast_to(li, shape))
        return self.segment_fn(tokens, carry)

    def init_all(self, tokens: jax.Array) -> jax.Array:
        """Used by `init_variables`: touches every submodule once (one pass each, not a segment),
        so every parameter and constant is created cheaply."""
        cfg = self.cfg
        x = self.embed(tokens)
        cos, sin = self.rotary(x.shape[1])
        hi, li = self.init_vectors()
        z = self.H_level(jnp.broadcast_to(hi, x.shape).astype(x.dtype),
                         self.L_level(jnp.broadcast_to(li, x.shape).astype(x.dtype), x, cos, sin), cos, sin)
        q = self.q_values(z, tokens)
        if cfg.build_act_head:
            q = q + 0.0 * jnp.sum(self.act_head(z[:, 0].astype(jnp.float32)))  # HRM: on the puzzle token
        return q


# -- functional API ---------------------------------------------------------------------------

def make_model(cfg: ModelConfig, grid_width: int = 0) -> HRM:
    """`grid_width`: the observation's width in cells (env.maze.obs_shape[1]); needed by
    pos_encoding learned2d only."""
    return HRM(cfg, grid_width)


def init_variables(model: HRM, key: jax.Array, obs_len: int) -> dict[str, Any]:
    """{'params': ..., 'constants': {'H_init', 'L_init'}} for observations of `obs_len` tokens.

    Only the optional learned position embedding depends on the sequence length (obs_len + 1);
    with rotary positions (the default) a 2-token dummy input is enough and cheaper to trace."""
    n = obs_len if "learned" in model.cfg.pos_encoding else min(obs_len, 2)
    tokens = jnp.zeros((1, n), jnp.uint8)
    variables = jax.jit(lambda k: model.init({"params": k}, tokens, method=HRM.init_all))(key)
    return {"params": variables["params"], "constants": variables["constants"]}


def count_params(params: Any, exclude: tuple[str, ...] = ()) -> int:
    """Number of scalars in `params`, skipping any subtree whose key is in `exclude`."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        if keys.isdisjoint(exclude):
            total += int(math.prod(leaf.shape))
    return total


def seed_carry(model: HRM, variables: dict, stored: StoredZ | None, batch: int, obs_len: int) -> Carry:
    """The carry an environment step starts from.

    `stored is None` or z_carry == 'reset': H_init/L_init at every position. 'last_token': the
    stored [B, D] vectors broadcast to every position. 'full': the stored [B, S, D] as is.
    """
    shape = (batch, obs_len + 1, model.cfg.hidden)
    if stored is None or model.cfg.z_carry == "reset":
        hi, li = variables["constants"]["H_init"], variables["constants"]["L_init"]
        return Carry(z_H=jnp.broadcast_to(hi, shape), z_L=jnp.broadcast_to(li, shape))
    if model.cfg.z_carry == "last_token":
        return Carry(z_H=jnp.broadcast_to(stored.z_H[:, None, :], shape).astype(jnp.float32),
                     z_L=jnp.broadcast_to(stored.z_L[:, None, :], shape).astype(jnp.float32))
    assert stored.z_H.shape == shape, (stored.z_H.shape, shape)
    return Carry(z_H=stored.z_H.astype(jnp.float32), z_L=stored.z_L.astype(jnp.float32))


def to_stored(model: HRM, carry: Carry) -> StoredZ:
    """What replay keeps of a carry: the last token's vectors, or the whole z in 'full' mode."""
    if model.cfg.z_carry == "full":
        return StoredZ(z_H=carry.z_H, z_L=carry.z_L)
    return StoredZ(z_H=carry.z_H[:, -1], z_L=carry.z_L[:, -1])


def _chunk_size(batch: int, chunk: int | None) -> int:
    """Sequences per chunk (>= batch means no chunking)."""
    if chunk is None:
        chunk = CPU_CHUNK if jax.default_backend() == "cpu" else 0
    if chunk <= 0 or chunk >= batch:
        return batch
    n = -(-batch // chunk)
    return -(-batch // n)  # balance the chunks: ceil(B / n) sequences each


def _map_batch(f: Callable, chunk: int, *args):
    """f(*args) over the leading (batch) axis in chunks of `chunk` with lax.map; pads if needed."""
    B = jax.tree_util.tree_leaves(args)[0].shape[0]
    if chunk >= B:
        return f(*args)
    n = -(-B // chunk)
    pad = n * chunk - B

    def split(a):
        if pad:
            a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)], axis=0)
        return a.reshape((n, chunk) + a.shape[1:])

    out = jax.lax.map(lambda a: f(*a), jax.tree_util.tree_map(split, args))
    return jax.tree_util.tree_map(lambda o: o.reshape((n * chunk,) + o.shape[2:])[:B], out)


def segment(model: HRM, variables: dict, tokens: jax.Array, carry: Carry,
            chunk: int | None = None) -> tuple[Carry, jax.Array]:
    """One segment with HRM's 1-step gradient. Returns (detached new carry, q f32[B, num_actions]);
    differentiable w.r.t. variables['params'] (the gradient w.r.t. the incoming carry is zero)."""

    def f(tok, z_H, z_L):
        return model.apply(variables, tok, Carry(z_H, z_L), method=HRM.segment_fn)

    c = _chunk_size(tokens.shape[0], chunk)
    return _map_batch(f, c, tokens, carry.z_H, carry.z_L)


def run_segments(model: HRM, variables: dict, tokens: jax.Array, carry: Carry, n: int,
                 with_trace: bool = False, chunk: int | None = None, keep: str = "carry"):
    """n segments (lax.scan), all without gradient (acting, target network).

    `keep`: what of the final carry is returned: "carry" (the Carry, every token), "stored" (the
    StoredZ that replay keeps, `to_stored`) or "none" (None: the target network). With "stored" or
    "none" the last segment's final H update runs at the read-out tokens only (module docstring),
    unless the Q head is `mlp` or ("stored") z_carry is `full`.

    Returns (carry, q f32[B, num_actions], trace) with trace None or
    dict(z_H=f32[n, B, D], z_L=f32[n, B, D]): the last token's z after each segment.
    """
    if keep not in ("carry", "stored", "none"):
        raise ValueError(f"run_segments: keep={keep!r}; allowed: carry, stored, none")
    cfg = model.cfg
    read_out = reads_out(cfg, keep)
    variables = jax.lax.stop_gradient(variables)
    carry = jax.lax.stop_gradient(carry)

    def f(tok, z_H, z_L):
        x = model.apply(variables, tok, method=HRM.embed)

        def body(c, _):
            new, _zh = model.apply(variables, x, c, method=HRM.reason)
            out = (new.z_H[:, -1], new.z_L[:, -1]) if with_trace else None
            return new, out

        final, tr = jax.lax.scan(body, Carry(z_H, z_L), None, length=n - 1 if read_out else n)
        if read_out:
            new, z_read = model.apply(variables, x, final, readout_tokens(cfg, tok), False, method=HRM.reason)
            q = model.apply(variables, z_read[:, 0], method=HRM.q_from_token)
            last = (z_read[:, 1], new.z_L[:, -1])
            out = StoredZ(*last) if keep == "stored" else None
            if with_trace:
                tr = tuple(jnp.concatenate([a, b[None]], axis=0) for a, b in zip(tr, last))
        else:
            q = model.apply(variables, final.z_H, tok, method=HRM.q_values)
            out = final if keep == "carry" else to_stored(model, final) if keep == "stored" else None
        if with_trace:
            tr = (jnp.swapaxes(tr[0], 0, 1), jnp.swapaxes(tr[1], 0, 1))  # batch first for _map_batch
        return out, q, tr

    c = _chunk_size(tokens.shape[0], chunk)
    final, q, tr = _map_batch(f, c, tokens, carry.z_H, carry.z_L)
    trace = None
    if with_trace:
        trace = dict(z_H=jnp.swapaxes(tr[0], 0, 1), z_L=jnp.swapaxes(tr[1], 0, 1))
    return final, q, trace
