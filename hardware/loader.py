"""Strict loader: catalog TOML files -> frozen ``hardware.types`` dataclasses.

The catalog lives in ``hardware/data/{accelerators,links,systems}/<name>.toml``, one file per
item, the file stem being the item's name. ``get_accelerator``/``get_link``/``get_system`` take a
catalog name or a path to a ``.toml`` file in the same format. A system file names its
accelerator and links by catalog name, or holds them as inline tables (the self-contained form
``hardware.to_toml`` writes, e.g. for a profile measured by ``clustersim calibrate``). Every
mistake in a file raises ``HardwareError`` naming the file and the key (see ``hardware.schema``).
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from pathlib import Path

from hardware import kernel_models as K
from hardware import schema as S
from hardware.types import (
    Accelerator,
    EfficiencyModel,
    FrozenMap,
    Link,
    ScaleOut,
    System,
)
from sim.errors import HardwareError, UnknownNameError

DATA = Path(__file__).parent / "data"
MAX_FILE_BYTES = 1 << 20  # a hardware file is a page of TOML
FOLDERS = {"accelerator": "accelerators", "link": "links", "system": "systems"}


# --- catalog ------------------------------------------------------------------------------------
def catalog_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (DATA / FOLDERS[kind]).glob("*.toml"))


def list_catalog() -> list[dict]:
    """Every catalog item as {"name", "kind"}, accelerators then links then systems."""
    return [{"name": n, "kind": k} for k in FOLDERS for n in catalog_names(k)]


def _is_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or "\\" in name


TYPES = {"accelerator": Accelerator, "link": Link, "system": System}


def _get(kind: str, name_or_path):
    if isinstance(name_or_path, TYPES[kind]):  # already loaded: pass through
        return name_or_path
    if isinstance(name_or_path, Path) or _is_path(str(name_or_path)):
        return load_file(Path(name_or_path), kind)
    if not isinstance(name_or_path, str):
        raise HardwareError(f"expected a {kind} name or .toml path, got "
                            f"{type(name_or_path).__name__}")
    return _load_catalog(kind, name_or_path)


@functools.cache
def _load_catalog(kind: str, name: str):
    path = DATA / FOLDERS[kind] / f"{name}.toml"
    if not path.is_file():
        raise UnknownNameError("hardware", name, catalog_names(kind))
    return load_file(path, kind)


def get_accelerator(name_or_path) -> Accelerator:
    return _get("accelerator", name_or_path)


def get_link(name_or_path) -> Link:
    return _get("link", name_or_path)


def get_system(name_or_path) -> System:
    return _get("system", name_or_path)


def get_any(name: str):
    """A catalog item of any kind by name (accelerator, link or system)."""
    for kind in FOLDERS:
        if name in catalog_names(kind):
            return _load_catalog(kind, name)
    if _is_path(name):
        raw = _read(Path(name))
        kind = raw.get("kind", "system")
        if not isinstance(kind, str) or kind not in FOLDERS:
            raise S.fail(name, "kind", f"must be one of {', '.join(FOLDERS)}, got {kind!r}"[:200])
        return load_file(Path(name), kind)
    raise UnknownNameError("hardware", name, [d["name"] for d in list_catalog()])


# --- files --------------------------------------------------------------------------------------
def _read(path: Path) -> dict:
    if not path.is_file():
        raise HardwareError(f"{path}: no such hardware file; pass a catalog name "
                            f"(`clustersim hardware list`) or an existing .toml path")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise HardwareError(f"{path}: {path.stat().st_size} bytes is too large for a "
                                f"hardware file (limit {MAX_FILE_BYTES})", field=str(path))
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{path}: not valid TOML: {exc}", field=str(path)) from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise HardwareError(f"{path}: cannot read it as UTF-8 TOML ({why}); give a hardware "
                            ".toml file", field=str(path)) from None


def load_file(path: Path, kind: str):
    raw = _read(path)
    where = str(path)
    if raw.get("kind", kind) != kind:
        raise S.fail(where, "kind", f"this file holds a {S._short(raw.get('kind'))}, expected "
                                    f"{kind!r}")
    if "kind" not in raw:
        raise S.fail(where, "kind", f"missing (required): add kind = \"{kind}\"")
    return build(kind, raw, where, base=path.parent)


def build(kind: str, raw: dict, where: str, base: Path | None = None):
    """Validate a parsed table of ``kind`` and build its dataclass."""
    checked = S.check_table(raw, S.SCHEMAS[kind], where)
    sources = checked.get("sources", {})
    S.check_sources(raw, S.SCHEMAS[kind], sources, where)
    maker = {"accelerator": _accelerator, "link": _link, "system": _system}[kind]
    return maker(checked, FrozenMap(sorted(sources.items())), where, base)


def _accelerator(c: dict, sources: FrozenMap, where: str, base) -> Accelerator:
    e = c["efficiency"]
    eff = EfficiencyModel(
        matmul_max=e["matmul_max"], matmul_half_flops=e["matmul_half_flops"],
        attention_max=e["attention_max"], memory_bandwidth=e["memory_bandwidth"],
        kernel_overhead_s=e["kernel_overhead"], source=_efficiency_source(sources),
        matmul_half_dim=e.get("matmul_half_dim", 0.0),
        matmul_memory_bandwidth=e.get("matmul_memory_bandwidth"),
        gemv_memory_bandwidth=e.get("gemv_memory_bandwidth"),
        gemv_row_s=e.get("gemv_row", 0.0), repeat_call_s=e.get("repeat_call", 0.0),
        attention_memory_bandwidth=e.get("attention_memory_bandwidth", 0.0),
        gemm=_gemm(e.get("gemm")), memory=_memory(e.get("memory")),
        attention=_attention(e.get("attention"), where),
    )
    return Accelerator(
        name=c["name"], vendor=c["vendor"], peak_flops=FrozenMap(c["peak_flops"]),
        memory_bytes=int(round(c["memory"])), memory_bandwidth=c["memory_bandwidth"],
        efficiency=eff, sources=sources, compute_units=c.get("compute_units"),
    )


def _gemm(t: dict | None) -> K.GemmModel | None:
    if t is None:
        return None
    return K.GemmModel(tiles=t["tiles"], tile_k=t.get("tile_k", 32),
                       k_overhead=t.get("k_overhead", 0.0), min_wave=t.get("min_wave", 0.0),
                       sharpness=t.get("sharpness", 0.0), fixed_s=t.get("fixed", 0.0))


def _memory(t: dict | None) -> K.MemoryKernelModel | None:
    if t is None:
        return None
    fractions = FrozenMap(sorted((c, t[c]) for c in K.MEMORY_CLASSES if c in t))
    floors = FrozenMap(sorted((c, t[f"{c}_floor"]) for c in K.MEMORY_CLASSES
                              if f"{c}_floor" in t))
    return K.MemoryKernelModel(fractions=fractions, floors=floors, floor_s=t.get("floor", 0.0),
                               cache_bytes=t.get("cache_bytes", 0.0),
                               cache_speedup=t.get("cache_speedup", 0.0),
                               sharpness=t.get("sharpness", 0.0))


def _attention(t: dict | None, where: str) -> K.AttentionKernelModel | None:
    if t is None:
        return None
    backends = tuple(sorted((b, _attention_one(t[b], b)) for b in K.ATTENTION_BACKENDS
                            if b in t))
    kernel = t.get("kernel", "fa2")
    if any(b == kernel for b, _ in backends):
        raise S.fail(where, f"efficiency.attention.{kernel}", "repeats the default model's "
                     f"kernel = \"{kernel}\": put that model's keys in [efficiency.attention]")
    return dataclasses.replace(_attention_one(t, kernel), backends=backends)


def _attention_one(t: dict, kernel: str) -> K.AttentionKernelModel:
    return K.AttentionKernelModel(
        block_q=t.get("block_q", 128), block_k=t.get("block_k", 64),
        kv_block=t.get("kv_block", 16), prefill_seq_s=t.get("prefill_seq_overhead", 0.0),
        decode_seq_s=t.get("decode_seq_overhead", 0.0),
        decode_memory_bandwidth=t.get("decode_memory_bandwidth", 1.0),
        floor_s=t.get("floor", 0.0), sharpness=t.get("sharpness", 0.0), kernel=kernel,
        attention_max=t.get("attention_max"))


def _nccl(t: dict | None) -> K.NcclModel | None:
    if t is None:
        return None
    return K.NcclModel(
        ll_latency_s=t["ll_latency"], ll_step_s=t["ll_step_latency"],
        ll_bandwidth=t["ll_bandwidth"], simple_latency_s=t["simple_latency"],
        simple_step_s=t["simple_step_latency"], simple_bandwidth=t["simple_bandwidth"],
        nvls_bandwidth=t.get("nvls_bandwidth", 0.0), nvls_latency_s=t.get("nvls_latency", 0.0),
        group_half=t.get("group_half", 0.0), p2p_latency_s=t.get("p2p_latency", 0.0),
        p2p_bandwidth=t.get("p2p_bandwidth", 0.0))


def _efficiency_source(sources) -> str:
    return "; ".join(f"{k}: {v}" if k != "efficiency" else v
                     for k, v in sources.items() if k.split(".")[0] == "efficiency")


def _link(c: dict, sources: FrozenMap, where: str, base) -> Link:
    return Link(name=c["name"], bandwidth=c["bandwidth_per_direction"], latency=c["latency"],
                sources=sources, nccl=_nccl(c.get("nccl")))


def _ref(kind: str, value, where: str, key: str, base):
    """A catalog name, a path relative to the file, or an inline table."""
    if isinstance(value, dict):
        return build(kind, value, f"{where} [{key}]", base)
    if _is_path(value) and base is not None:
        return load_file((base / value).resolve(), kind)
    try:
        return _get(kind, value)
    except UnknownNameError as exc:
        raise S.fail(where, key, str(exc)) from None


def _system(c: dict, sources: FrozenMap, where: str, base) -> System:
    intra, inter, so = c["intra_node"], c["inter_node"], c["scale_out"]
    topology = intra.get("topology", "switch")
    mesh = intra.get("mesh", ())
    _check_intra(topology, mesh, c["gpus_per_node"], intra["links_per_gpu"], where)
    if c["gpus_per_node"] % inter["nics_per_node"]:
        raise S.fail(where, "inter_node.nics_per_node", f"{inter['nics_per_node']} NICs cannot "
                     f"be shared evenly by {c['gpus_per_node']} GPUs; use a divisor of "
                     f"gpus_per_node")
    return System(
        name=c["name"], accelerator=_ref("accelerator", c["accelerator"], where, "accelerator",
                                         base),
        gpus_per_node=c["gpus_per_node"],
        intra_link=_ref("link", intra["link"], where, "intra_node.link", base),
        intra_links_per_gpu=intra["links_per_gpu"],
        nic_link=_ref("link", inter["nic_link"], where, "inter_node.nic_link", base),
        nics_per_node=inter["nics_per_node"],
        scale_out=ScaleOut(topology=so["topology"], nodes_per_leaf=so["nodes_per_leaf"],
                           oversubscription=so.get("oversubscription", 1.0),
                           switch_latency=so.get("switch_latency", 0.0)),
        price_per_gpu_hour=c.get("price_per_gpu_hour"), sources=sources,
        intra_topology=topology, intra_mesh=tuple(sorted(mesh)),
    )


def _check_intra(topology: str, mesh, gpus: int, links: int, where: str) -> None:
    if topology == "mesh" and not mesh:
        raise S.fail(where, "intra_node.mesh", "missing: topology 'mesh' needs the list of "
                                               "[gpu_a, gpu_b, ports] edges")
    if topology != "mesh" and mesh:
        raise S.fail(where, "intra_node.mesh", "only allowed with topology = \"mesh\"")
    if topology == "full-mesh" and gpus > 1 and links % (gpus - 1):
        raise S.fail(where, "intra_node.links_per_gpu", f"{links} ports cannot be split evenly "
                                                        f"over the {gpus - 1} peers of a full mesh")
    ports = [0] * gpus
    for a, b, n in mesh:
        if not (0 <= a < gpus and 0 <= b < gpus) or a == b or n < 1:
            raise S.fail(where, "intra_node.mesh", f"edge [{a}, {b}, {n}] needs two distinct "
                                                   f"GPUs in 0..{gpus - 1} and ports >= 1")
        ports[a] += n
        ports[b] += n
    if mesh and max(ports) > links:
        raise S.fail(where, "intra_node.mesh", f"a GPU uses {max(ports)} ports but "
                                               f"links_per_gpu is {links}")
