import os
import tempfile

# Tests run on the CPU build of JAX.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests compile the same tiny programs, often in subprocesses (the CLI): a persistent XLA
# compilation cache shared by the whole session turns the repeats into cache hits. The cache only
# stores compiled executables, so results are unchanged.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hrm-jax-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
