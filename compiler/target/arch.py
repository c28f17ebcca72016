"""Architecture descriptions: a schema (pydantic) and the files that fill it.

An architecture is a TOML or YAML file validated against :class:`RduArch` or
:class:`GpuArch` (chosen by its ``kind``). Presets live in ``presets/*.toml``; every number
in them cites its source and says whether it is disclosed or assumed. A user file may start
from a preset (``base = "sn40l"``) and change only some fields, and :func:`load_arch`
accepts dotted overrides (``{"memory.hbm.bandwidth_gb_s": 1600}``) for sweeps.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from rduflow.ir.dtypes import DType

from rduflow.compiler.loading import read_mapping

from .errors import ArchError

_PRESETS = "presets"


class _Model(BaseModel):
    # strict: a number must be written as a number (rows = "40" or rows = true are refused, not coerced);
    # an integer is still accepted where a float is expected (clock_ghz = 2).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Per-dtype throughput (flops per cycle of one unit, or TFLOP/s of a GPU): plausible from a
# thousandth to ten million; outside that a figure is a typo, and it would reach the report.
RATE_RANGE = (1e-3, 1e7)


def _check_rates(table: dict[str, float]) -> dict[str, float]:
    """A per-dtype throughput table: IR element types as keys, f32 required (the fallback)."""
    names = {d.value for d in DType}
    for k, v in table.items():
        if k not in names:
            raise ValueError(f"'{k}' is not an element type (one of {', '.join(sorted(names))})")
        if isinstance(v, bool) or not RATE_RANGE[0] <= v <= RATE_RANGE[1]:
            raise ValueError(f"rate for {k} is {v!r}; allowed: {RATE_RANGE[0]:g} to {RATE_RANGE[1]:.0f}")
    if "f32" not in table:
        raise ValueError("needs an 'f32' entry (element types without an entry use it)")
    return table


# -- power and cost (both kinds) ------------------------------------------------------------
# Energy per unit of work: plausible from a thousandth of a pJ to a microjoule (1e6 pJ).
ENERGY_RANGE = (0.0, 1e6)
# Activity tiers a step reports bytes for (inference/backends.py Step.bytes): off-chip memory,
# on-chip SRAM (RDU PMUs), byte-hops on the on-chip mesh (RDU), and device-to-device links.
POWER_TIERS = ("hbm", "ddr", "sram", "mesh", "links")


class Power(_Model):
    """The power model of one device (inference/energy.py uses it; docs/energy.md)."""

    tdp_w: float = Field(gt=0, le=1e5, description="device power limit (TDP or board power)")
    idle_w: float = Field(ge=0, le=1e5, description="device power with no work in flight")
    pj_per_flop: dict[str, float] = Field(description="per dtype of the matrix units; f32 is the fallback")
    pj_per_byte: dict[str, float] = Field(description="per byte moved at each tier: " + ", ".join(POWER_TIERS))
    host_w: float = Field(ge=0, le=1e5, description="each device's share of the host and system around it")
    pue: float = Field(1.0, ge=1, le=5, description="facility power usage effectiveness (1: none counted)")

    @field_validator("pj_per_flop")
    @classmethod
    def _flops(cls, table: dict[str, float]) -> dict[str, float]:
        names = {d.value for d in DType}
        for k, v in table.items():
            if k not in names:
                raise ValueError(f"'{k}' is not an element type (one of {', '.join(sorted(names))})")
            _check_energy(k, v)
        if "f32" not in table:
            raise ValueError("needs an 'f32' entry (element types without an entry use it)")
        return table

    @field_validator("pj_per_byte")
    @classmethod
    def _bytes(cls, table: dict[str, float]) -> dict[str, float]:
        for k, v in table.items():
            if k not in POWER_TIERS:
                raise ValueError(f"'{k}' is not a tier (one of {', '.join(POWER_TIERS)})")
            _check_energy(k, v)
        return table

    @model_validator(mode="after")
    def _idle_below_tdp(self) -> Power:
        if self.idle_w >= self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w:g}) must be below tdp_w ({self.tdp_w:g})")
        return self

    def flop_pj(self, dtype: str) -> float:
        return self.pj_per_flop.get(dtype, self.pj_per_flop["f32"])

    def check_tiers(self, tiers: tuple[str, ...]) -> None:
        """Every tier the target moves bytes on needs an energy per byte, or its traffic would cost nothing."""
        missing = [t for t in tiers if t not in self.pj_per_byte]
        if missing:
            raise ValueError(f"power.pj_per_byte needs an entry for {', '.join(missing)} (the tiers this target has)")


def _check_energy(key: str, v: float) -> None:
    if isinstance(v, bool) or not ENERGY_RANGE[0] <= v <= ENERGY_RANGE[1]:
        raise ValueError(f"energy for {key} is {v!r}; allowed: {ENERGY_RANGE[0]:g} to {ENERGY_RANGE[1]:g} pJ")


class Price(_Model):
    usd_per_device_hour: float = Field(gt=0, le=1e5, description="rental price of one device for an hour")


# -- RDU --------------------------------------------------------------------------------------
class Grid(_Model):
    rows: int = Field(ge=1, le=1024, description="tile rows (switch mesh rows)")
    cols: int = Field(ge=1, le=1024, description="tile columns")
    arrangement: Literal["checkerboard"] = Field(description="PCU at (r+c) even, PMU at (r+c) odd")
    dies: int = Field(1, ge=1, le=16)


class Pcu(_Model):
    count: int = Field(ge=1, le=1 << 20)
    lanes: int = Field(ge=1, le=1024, description="SIMD lanes = systolic array columns")
    stages: int = Field(ge=1, le=64, description="pipeline stages = systolic array rows")
    clock_ghz: float = Field(ge=0.01, le=10)
    systolic_flops_per_cycle: dict[str, float] = Field(description="per dtype, full array (matmul)")
    simd_flops_per_cycle: dict[str, float] = Field(description="per dtype, pipelined SIMD mode")
    tail_ops_per_cycle: float = Field(ge=0.01, le=1 << 16, description="transcendental results per cycle")
    tail_functions: tuple[str, ...] = Field(strict=False, description="IR ops executed by the tail unit")  # a list

    _rates = field_validator("systolic_flops_per_cycle", "simd_flops_per_cycle")(_check_rates)

    @field_validator("tail_functions")
    @classmethod
    def _known_ops(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from rduflow.ir import all_opdefs

        known = all_opdefs()
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown IR op(s) {', '.join(bad)}")
        return names


class Pmu(_Model):
    count: int = Field(ge=1, le=1 << 20)
    capacity_kib: float = Field(ge=1, le=1 << 20)
    banks: int = Field(ge=1, le=1024)
    read_bytes_per_cycle: float = Field(ge=1, le=1 << 16)
    write_bytes_per_cycle: float = Field(ge=1, le=1 << 16)


class Mesh(_Model):
    link_bytes_per_cycle: float = Field(ge=1, le=1 << 16)
    hop_latency_cycles: float = Field(ge=0, le=1000)
    routing: Literal["dimension_order"]


class Agcu(_Model):
    count: int = Field(ge=1, le=4096)
    placement: Literal["top_bottom", "left_right"] = Field(description="grid edges the AGCUs sit on, alternating")
    bytes_per_cycle: float = Field(ge=1, le=1 << 16)


class MemoryTier(_Model):
    capacity_gib: float = Field(ge=1e-6, le=1 << 30)
    bandwidth_gb_s: float = Field(gt=0, le=1e7)
    latency_ns: float = Field(ge=0, le=1e6)


class Memory(_Model):
    hbm: MemoryTier | None = None
    ddr: MemoryTier | None = None

    @model_validator(mode="after")
    def _some_tier(self) -> Memory:
        if self.hbm is None and self.ddr is None:
            raise ValueError("needs at least one off-chip tier: [memory.hbm] or [memory.ddr]")
        return self

    @property
    def main(self) -> MemoryTier:
        """The tier weights and KV caches live in: HBM where the chip has it, else DDR."""
        return self.hbm or self.ddr


class Sockets(_Model):
    per_node: int = Field(ge=1, le=1024)
    max_sockets: int = Field(ge=1, le=1 << 16)
    link_bandwidth_gb_s: float = Field(ge=0.01, le=1e6, description="per socket, per direction")
    link_latency_ns: float = Field(ge=0, le=1e7)
    topology: Literal["ring", "fully_connected", "switch"]

    @model_validator(mode="after")
    def _max(self) -> Sockets:
        if self.max_sockets < self.per_node:
            raise ValueError(f"max_sockets ({self.max_sockets}) is below per_node ({self.per_node})")
        return self


class Launch(_Model):
    orchestration: Literal["hardware", "software"]
    hardware_launch_us: float = Field(ge=0, le=1e6)
    software_launch_us: float = Field(ge=0, le=1e6)
    program_load_us: float = Field(ge=0, le=1e6)


class RduArch(_Model):
    kind: Literal["rdu"]
    name: str
    description: str = ""
    grid: Grid
    pcu: Pcu
    pmu: Pmu
    mesh: Mesh
    agcu: Agcu
    memory: Memory
    sockets: Sockets
    launch: Launch
    power: Power | None = None  # no power model: the report has no energy figures
    price: Price | None = None  # no price: the report has no cost figures

    @model_validator(mode="after")
    def _consistent(self) -> RduArch:
        if self.power is not None:
            self.power.check_tiers(self.activity_tiers)
        g = self.grid
        if g.rows * g.cols != self.pcu.count + self.pmu.count or self.pcu.count != self.pmu.count:
            raise ValueError(
                f"grid.rows x grid.cols = {g.rows} x {g.cols}: a checkerboard holds {g.rows * g.cols // 2} PCUs and "
                f"{g.rows * g.cols - g.rows * g.cols // 2} PMUs, not pcu.count = {self.pcu.count} and "
                f"pmu.count = {self.pmu.count}")
        edge = 2 * (g.cols if self.agcu.placement == "top_bottom" else g.rows)
        if self.agcu.count > edge:
            raise ValueError(f"agcu.count = {self.agcu.count} AGCUs do not fit on the {self.agcu.placement} "
                             f"edges ({edge} places)")
        return self

    # -- derived figures -------------------------------------------------------------------
    @property
    def clock_ghz(self) -> float:
        return self.pcu.clock_ghz

    @property
    def activity_tiers(self) -> tuple[str, ...]:
        """The tiers a step moves bytes on (Step.bytes keys): what the power model prices."""
        mem = tuple(t for t in ("hbm", "ddr") if getattr(self.memory, t) is not None)
        return mem + ("sram", "mesh", "links")

    def systolic_rate(self, dtype: DType) -> float:
        t = self.pcu.systolic_flops_per_cycle
        return t.get(dtype.value, t["f32"])

    def simd_rate(self, dtype: DType) -> float:
        t = self.pcu.simd_flops_per_cycle
        return t.get(dtype.value, t["f32"])

    def peak_flops(self, dtype: DType) -> float:
        return self.pcu.count * max(self.systolic_rate(dtype), self.simd_rate(dtype)) * self.clock_ghz * 1e9

    @property
    def sram_bytes(self) -> int:
        return int(self.pmu.count * self.pmu.capacity_kib * 1024)

    @property
    def pmu_bytes(self) -> int:
        return int(self.pmu.capacity_kib * 1024)

    def is_pcu_site(self, row: int, col: int) -> bool:
        return (row + col) % 2 == 0

    def agcu_coord(self, index: int) -> tuple[int, int]:
        """The mesh switch AGCU ``index`` attaches to: alternate edges, evenly spaced along them."""
        g, n = self.grid, self.agcu.count
        side, slot = index % 2, index // 2
        per_side = (n - side + 1) // 2
        if self.agcu.placement == "top_bottom":
            return (0 if side == 0 else g.rows - 1, (2 * slot + 1) * g.cols // (2 * per_side))
        return ((2 * slot + 1) * g.rows // (2 * per_side), 0 if side == 0 else g.cols - 1)


# -- GPU --------------------------------------------------------------------------------------
class GpuArch(_Model):
    kind: Literal["gpu"]
    name: str
    description: str = ""
    sms: int = Field(ge=1, le=100_000)
    clock_ghz: float = Field(ge=0.01, le=10, description="boost clock")
    tensor_tflops: dict[str, float] = Field(description="dense tensor-core throughput per dtype")
    vector_tflops: dict[str, float] = Field(description="CUDA-core (non-tensor) throughput per dtype")
    hbm: MemoryTier
    l2_mib: float = Field(ge=0.01, le=1 << 20)
    nvlink_gb_s: float = Field(ge=0, le=1e6, description="total, both directions; 0 for a PCIe-only card")
    pcie_gb_s: float = Field(ge=0.01, le=1e6, description="per direction")
    launch_overhead_us: float = Field(ge=0, le=1e6)
    stream_efficiency: float = Field(gt=0, le=1, description="share of the HBM bandwidth a long weight stream sustains")
    decode_kv_efficiency: float = Field(gt=0, le=1, description="share of the HBM bandwidth decode attention sustains "
                                                                 "reading the KV cache")
    power: Power | None = None  # no power model: the report has no energy figures
    price: Price | None = None  # no price: the report has no cost figures

    _rates = field_validator("tensor_tflops", "vector_tflops")(_check_rates)

    @model_validator(mode="after")
    def _priced(self) -> GpuArch:
        if self.power is not None:
            self.power.check_tiers(self.activity_tiers)
        return self

    @property
    def activity_tiers(self) -> tuple[str, ...]:
        """The tiers a step moves bytes on (Step.bytes keys): what the power model prices."""
        return ("hbm", "links")

    @property
    def peer_link_gb_s(self) -> float:
        """GPU-to-GPU bandwidth per direction: NVLink's where the GPU has it, else its PCIe link
        (a PCIe-only card such as the L40S exchanges tensor-parallel traffic peer to peer over PCIe)."""
        return self.nvlink_gb_s / 2 if self.nvlink_gb_s > 0 else self.pcie_gb_s


Arch = Annotated[RduArch | GpuArch, Field(discriminator="kind")]
_ADAPTER: TypeAdapter = TypeAdapter(Arch)


# -- loading ----------------------------------------------------------------------------------
def list_arches() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath(_PRESETS).iterdir()
                  if p.name.endswith(".toml"))


def load_arch(name_or_path: str | Path | RduArch | GpuArch,
              overrides: Mapping[str, Any] | None = None) -> RduArch | GpuArch:
    """A preset by name, or a TOML/YAML file, validated; ``overrides`` set dotted fields."""
    if isinstance(name_or_path, (RduArch, GpuArch)):
        if not overrides:
            return name_or_path
        raw, source = name_or_path.model_dump(), name_or_path.name
    else:
        raw, source = _raw(str(name_or_path))
    if overrides:
        raw = copy.deepcopy(raw)
        for dotted, value in overrides.items():
            _set(raw, dotted, value, source)
    return _validate(raw, source)


@functools.cache
def _raw_cached(spec: str) -> tuple[dict, str]:
    return _resolve(spec, set())


def _raw(spec: str) -> tuple[dict, str]:
    raw, source = _raw_cached(spec)
    return copy.deepcopy(raw), source


def _resolve(spec: str, seen: set[str]) -> tuple[dict, str]:
    """Raw data of a preset or file, with its ``base`` chain merged in."""
    path = _find(spec)
    source = str(path) if not _is_preset(spec) else f"preset {spec}"
    if source in seen:
        raise ArchError(f"{source}: 'base' chain loops back to itself")
    data = _read(path, source)
    base = data.pop("base", None)
    if base is None:
        data.setdefault("name", Path(spec).stem if not _is_preset(spec) else spec)
        return data, source
    if not isinstance(base, str):
        raise ArchError(f"{source}: field 'base': must be a preset name or a file path, got {base!r}")
    if not _is_preset(base) and not Path(base).is_absolute():
        rel = path.parent / base
        base = str(rel) if rel.exists() else base
    try:
        merged, _ = _resolve(base, seen | {source})
    except ArchError as e:
        raise ArchError(f"{source}: field 'base': {e}") from None
    merged.pop("name", None)
    merged.setdefault("description", "")
    merged["description"] = f"{Path(spec).stem}: based on {base}"
    _merge(merged, data)
    merged.setdefault("name", Path(spec).stem)
    return merged, source


def _is_preset(spec: str) -> bool:
    return spec in list_arches()


def _find(spec: str):
    if _is_preset(spec):
        return resources.files(__package__).joinpath(_PRESETS, f"{spec}.toml")
    p = Path(spec)
    if p.suffix.lower() in (".toml", ".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ArchError(f"{spec}: no such architecture file")
        return p
    raise ArchError(f"unknown architecture '{spec}': not a preset ({', '.join(list_arches())}) "
                    "nor a .toml/.yaml file")


def _read(path, source: str) -> dict:
    return read_mapping(path, source, ArchError, "architecture file")


def _merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _set(raw: dict, dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ArchError(f"{source}: override '{dotted}': '{k}' is a value, not a table")
        node = nxt
    node[keys[-1]] = value


def _validate(raw: dict, source: str) -> RduArch | GpuArch:
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as e:
        raise ArchError(_describe(e, raw, source)) from None


def _describe(err: ValidationError, raw: dict, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        if loc and loc[0] == raw.get("kind"):
            loc = loc[1:]  # the discriminator tag pydantic puts first
        where = ".".join(str(x) for x in loc) or "(whole file)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_fields(raw.get("kind"), loc[:-1])
            msg = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif e["type"] == "union_tag_invalid" or (e["type"] == "union_tag_not_found"):
            where, msg = "kind", "must be 'rdu' or 'gpu'"
        elif e["type"] != "missing" and not isinstance(e.get("input"), dict):
            msg += f" (got {e['input']!r})"
            allowed = _allowed_range(raw.get("kind"), loc)
            if allowed:
                msg += f"; allowed: {allowed}"
        lines.append(f"field '{where}': {msg}")
    return f"{source}: invalid architecture: " + "; ".join(lines)


def _allowed_fields(kind: str | None, loc: list) -> list[str]:
    model = _model_at(kind, loc)
    return sorted(model.model_fields) if model is not None else []


def _allowed_range(kind: str | None, loc: list) -> str:
    """A numeric field's range as the schema states it ("0.01 to 10"), or "" if it has none."""
    model = _model_at(kind, loc[:-1]) if loc else None
    info = model.model_fields.get(loc[-1]) if model is not None and isinstance(loc[-1], str) else None
    if info is None:
        return ""
    bounds = {a: getattr(m, a) for m in info.metadata for a in ("ge", "gt", "le") if hasattr(m, a)}
    if "ge" in bounds:
        low = _number(bounds["ge"])
    elif "gt" in bounds:
        low = f"above {_number(bounds['gt'])}"
    else:
        return ""
    high = _number(bounds["le"]) if "le" in bounds else "any"
    return f"{low} to {high}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _model_at(kind: str | None, loc: list) -> Any:
    """The schema class of the table at ``loc`` (a field path), or None where it is not a table."""
    model: Any = {"rdu": RduArch, "gpu": GpuArch}.get(kind or "")
    for k in loc:
        if model is None or not isinstance(k, str):
            return None
        ann = model.model_fields.get(k)
        if ann is None:
            return None
        t = ann.annotation
        options = getattr(t, "__args__", (t,))  # Optional[Model] -> (Model, None)
        model = next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model
