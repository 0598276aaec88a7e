"""Hardware specs as data, and cluster topology.

Accelerators, links and systems are TOML files under ``hardware/data`` (every number cited),
loaded strictly into the frozen dataclasses of ``hardware.types``. A ``Cluster`` is a system x
a number of nodes; it answers bandwidth/latency questions about its topology (``hardware.topology``).
"""

from hardware.loader import get_accelerator, get_any, get_link, get_system, list_catalog
from hardware.types import Accelerator, EfficiencyModel, Link, ScaleOut, System
from hardware.writer import to_toml

__all__ = [
    "Accelerator", "Cluster", "EfficiencyModel", "Link", "ScaleOut", "System",
    "get_accelerator", "get_any", "get_link", "get_system", "list_catalog", "to_toml",
]


def __getattr__(name):  # Cluster pulls in networkx lazily; keep `import hardware` light
    if name == "Cluster":
        from hardware.topology import Cluster

        return Cluster
    raise AttributeError(f"module 'hardware' has no attribute {name!r}")
