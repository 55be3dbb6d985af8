"""What machine a measurement ran on: CPU model, cores, load average, Python / JAX versions,
backend and devices. Benchmarks and the reproduction print it and store it with their results,
since a timing means little without the machine and its load."""
from __future__ import annotations

import datetime
import os
import platform

import jax


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """The 1/5/15-minute load average (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict:
    """CPU model, core counts, load average, Python/JAX versions, backend and devices."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import jaxlib
    devices = jax.devices()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "loadavg": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in devices],
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def machine_text(info: dict) -> str:
    """Two lines for the top of a report: the CPU and its load, then the JAX stack."""
    load = info.get("loadavg")
    load_s = " ".join(f"{x:.2f}" for x in load) if load else "n/a"
    return (f"machine: {info['cpu_model']}, {info['cpus_usable']} usable of {info['cpu_count']} cores, "
            f"load average {load_s}\n"
            f"jax {info['jax']} (jaxlib {info['jaxlib']}), backend {info['backend']}, "
            f"devices {', '.join(info['devices'])}, python {info['python']}")
