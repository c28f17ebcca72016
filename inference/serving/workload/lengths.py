"""Token-length distributions: what ``--input-len`` / ``--output-len`` and workload files name.

Every distribution draws integers >= 1 with a numpy Generator, so a seed fixes the lengths.
The texts: ``N``, ``uniform:LO,HI``, ``normal:MEAN,STD[,LO,HI]``, ``lognormal:MEAN,STD[,LO,HI]``,
``file:PATH`` (see docs/serving-workloads.md).
"""

from __future__ import annotations

import csv
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .requests import WorkloadError

TEXTS = "N, uniform:LO,HI, normal:MEAN,STD[,LO,HI], lognormal:MEAN,STD[,LO,HI] or file:PATH"


class LengthDist(ABC):
    """A distribution of token counts."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths, int64, each >= 1."""

    @abstractmethod
    def describe(self) -> str:
        """One short phrase: ``512``, ``uniform 64..256``."""

    @property
    @abstractmethod
    def mean(self) -> float:
        """The expected length before clipping (a guide for sizing, not a promise)."""


@dataclass(frozen=True)
class Fixed(LengthDist):
    tokens: int

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.tokens, dtype=np.int64)

    def describe(self) -> str:
        return str(self.tokens)

    @property
    def mean(self) -> float:
        return float(self.tokens)


@dataclass(frozen=True)
class Uniform(LengthDist):
    low: int
    high: int  # inclusive

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high, size=n, endpoint=True, dtype=np.int64)

    def describe(self) -> str:
        return f"uniform {self.low}..{self.high}"

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


def _clip_round(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(np.rint(x), low, high).astype(np.int64)


@dataclass(frozen=True)
class Normal(LengthDist):
    mean_tokens: float
    std: float
    low: int  # clip bounds, inclusive
    high: int

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _clip_round(rng.normal(self.mean_tokens, self.std, size=n), self.low, self.high)

    def describe(self) -> str:
        return f"normal {self.mean_tokens:g}±{self.std:g} in {self.low}..{self.high}"

    @property
    def mean(self) -> float:
        return self.mean_tokens


@dataclass(frozen=True)
class LogNormal(LengthDist):
    """Given by the mean and standard deviation of the length itself (not of its logarithm):
    sigma^2 = ln(1 + (std/mean)^2), mu = ln(mean) - sigma^2/2, the moment match inference-perf
    uses (inference_perf/utils/numeric/distribution/utils.py, distribution_to_expression)."""

    mean_tokens: float
    std: float
    low: int = 1
    high: int | None = None  # None: no upper clip

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = math.log1p((self.std / self.mean_tokens) ** 2)
        mu = math.log(self.mean_tokens) - sigma2 / 2
        draws = rng.lognormal(mu, math.sqrt(sigma2), size=n)
        return _clip_round(draws, self.low, np.inf if self.high is None else self.high)

    def describe(self) -> str:
        clip = "" if (self.low, self.high) == (1, None) else f" in {self.low}..{self.high or ''}"
        return f"lognormal {self.mean_tokens:g}±{self.std:g}{clip}"

    @property
    def mean(self) -> float:
        return self.mean_tokens


@dataclass(frozen=True, eq=False)
class Empirical(LengthDist):
    """Lengths drawn with replacement from the values of a file."""

    values: np.ndarray
    path: str

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.values, size=n, replace=True)

    def describe(self) -> str:
        return f"empirical {Path(self.path).name} ({len(self.values)} values, mean {self.mean:.0f})"

    @property
    def mean(self) -> float:
        return float(self.values.mean())


def parse_length(text: str, what: str, *, base: Path | None = None) -> LengthDist:
    """A length distribution from its text; ``what`` names the option or field in errors;
    ``file:`` paths are relative to ``base`` (a workload file's folder) when given."""
    text = str(text).strip()
    kind, sep, args = text.partition(":")
    if not sep:
        return Fixed(_int_at_least(text, what, 1, text))
    kind = kind.strip().lower()
    if kind == "file":
        path = Path(args.strip())
        if base is not None and not path.is_absolute():
            path = base / path
        return _read_lengths(path, what)
    parts = [p.strip() for p in args.split(",")]
    if kind == "uniform":
        if len(parts) != 2:
            raise WorkloadError(f"{what}: uniform takes LO,HI (e.g. uniform:128,1024), got {text!r}")
        low, high = (_int_at_least(p, what, 1, text) for p in parts)
        if low > high:
            raise WorkloadError(f"{what}: uniform needs LO <= HI, got {text!r}")
        return Uniform(low, high)
    if kind in ("normal", "lognormal"):
        if len(parts) not in (2, 4):
            raise WorkloadError(f"{what}: {kind} takes MEAN,STD or MEAN,STD,LO,HI (e.g. {kind}:512,128), got {text!r}")
        mean = _positive(parts[0], what, "MEAN", text)
        std = _number(parts[1], what, "STD", text)
        if std < 0:
            raise WorkloadError(f"{what}: STD must be >= 0, got {text!r}")
        if len(parts) == 4:
            low, high = (_int_at_least(p, what, 1, text) for p in parts[2:])
            if low > high:
                raise WorkloadError(f"{what}: {kind} needs LO <= HI, got {text!r}")
        elif kind == "normal":
            low, high = 1, max(1, round(2 * mean))  # symmetric about the mean: clipping keeps it
        else:
            low, high = 1, None
        return Normal(mean, std, low, high) if kind == "normal" else LogNormal(mean, std, low, high)
    raise WorkloadError(f"{what}: cannot read {text!r}; a length is {TEXTS}")


def _number(text: str, what: str, field: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WorkloadError(f"{what}: {field} must be a number, got {whole!r}") from None
    if not math.isfinite(value):
        raise WorkloadError(f"{what}: {field} must be finite, got {whole!r}")
    return value


def _positive(text: str, what: str, field: str, whole: str) -> float:
    value = _number(text, what, field, whole)
    if value <= 0:
        raise WorkloadError(f"{what}: {field} must be > 0, got {whole!r}")
    return value


def _int_at_least(text: str, what: str, least: int, whole: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise WorkloadError(f"{what}: expected a token count (an integer >= {least}) or {TEXTS}, got {whole!r}") from None
    if value < least:
        raise WorkloadError(f"{what}: token counts must be >= {least}, got {whole!r}")
    return value


def _read_lengths(path: Path, what: str) -> Empirical:
    """One integer per line (.txt and others), a JSON list (.json), or one CSV column (.csv,
    with or without a header line)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise WorkloadError(f"{what}: cannot read length file {path}: {e.strerror or e}") from None
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise WorkloadError(f"{path}: not JSON ({e.msg} at line {e.lineno}); a .json length file is a list of integers") from None
        if not isinstance(items, list):
            raise WorkloadError(f"{path}: a .json length file is a list of integers, got {type(items).__name__}")
        numbered = [(i + 1, v) for i, v in enumerate(items)]
        where = "item"
    else:
        rows = list(csv.reader(text.splitlines())) if path.suffix.lower() == ".csv" else [[ln] for ln in text.splitlines()]
        numbered = [(i + 1, r[0] if len(r) == 1 else r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)]
        if numbered and path.suffix.lower() == ".csv" and not _is_int(numbered[0][1]):
            numbered = numbered[1:]  # a header
        where = "line"
    values = []
    for at, v in numbered:
        if isinstance(v, list):
            raise WorkloadError(f"{path}: {where} {at}: a .csv length file has one column, got {len(v)}")
        if not _is_int(v) or int(v) < 1:
            raise WorkloadError(f"{path}: {where} {at}: a length must be an integer >= 1, got {v!r}")
        values.append(int(v))
    if not values:
        raise WorkloadError(f"{path}: the length file has no values")
    return Empirical(np.asarray(values, dtype=np.int64), str(path))


def _is_int(v: object) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, str):
        try:
            int(v.strip())
            return True
        except ValueError:
            return False
    return False
