"""Fast kernels behind the gridworld's semantics (`envs.gridworld`).

Each computes exactly what a plain jax formulation of the same thing computes (tests/envs check
bit for bit), only cheaper on CPU, where the environment step is most of a training run:

* `threefry`   -- jax.random's split and bits as one fused, unrolled Threefry kernel.
* `bitsets`    -- door sets as two uint32 words: uniform picks by counting, no sort or cumsum.
* `room_graph` -- the corridor maze's reachability check as a flood over one uint32 of rooms.
* `auto_reset` -- `env.step` (gymnax's auto-reset step) with a custom vmap rule that resamples
  doors and resets episodes only for the envs that need it.
"""
