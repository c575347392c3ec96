"""What every workload shares: the result rows, timing helpers, the machine's description, the table."""

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import psutil
from django.db import connection

# How a row's ratio is read against its target.
HIGHER_IS_BETTER = "higher"  # throughput: ours / baseline must reach the target
LOWER_IS_BETTER = "lower"  # time: ours / baseline must stay under the target


@dataclass
class Check:
    """A count that must add up (the smoke test asserts these, never timings)."""

    name: str
    got: object
    expected: object

    @property
    def ok(self):
        return self.got == self.expected


@dataclass
class Row:
    """One line of the table: our figure, the baseline's, their ratio and the verdict."""

    key: str  # "1", "6a", "7b" ...
    workload: str
    unit: str = ""
    ours: float | None = None
    baseline: float | None = None
    sense: str = LOWER_IS_BETTER
    target: str = ""
    # Verdict function of (ours, baseline, ratio) -> bool; None when the row has no pass/short rule.
    rule: object = None
    status: str = ""  # pass | short | not available | error | info
    note: str = ""
    checks: list = field(default_factory=list)

    @property
    def ratio(self):
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    def decide(self):
        if self.status in ("not available", "error"):
            return self
        if any(not check.ok for check in self.checks):
            self.status = "error"
            bad = "; ".join(f"{c.name}: {c.got} != {c.expected}" for c in self.checks if not c.ok)
            self.note = f"counts do not add up: {bad}" + (f"; {self.note}" if self.note else "")
            return self
        if self.rule is None or self.ours is None:
            self.status = self.status or "info"
            return self
        self.status = "pass" if self.rule(self.ours, self.baseline, self.ratio) else "short"
        return self


@dataclass
class GrowthPoint:
    """One workload at one size: our time and the baseline's, for the growth table and chart."""

    workload: str
    size: int
    ours_seconds: float
    baseline_seconds: float | None = None
    peak_rss_mb: float | None = None


@dataclass
class Report:
    scale: str
    rows: list = field(default_factory=list)
    growth: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, row):
        self.rows.append(row.decide())
        return row


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def percentile(values, fraction):
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def alternate(ours, baseline, *, runs, warmup=1):
    """Time two callables alternately (same noise for both); returns (our times, baseline times)."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_times, baseline_times = [], []
    for _ in range(runs):
        ours_times.append(timed(ours)[0])
        baseline_times.append(timed(baseline)[0])
    return ours_times, baseline_times


def median(values):
    return statistics.median(values) if values else None


def growth_exponent(points):
    """The slope of log(time) over log(size) between the two largest sizes: 1 is linear."""
    points = sorted(points, key=lambda p: p.size)
    if len(points) < 2:
        return None
    small, large = points[-2], points[-1]
    if small.ours_seconds <= 0 or large.ours_seconds <= 0 or small.size == large.size:
        return None
    return math.log(large.ours_seconds / small.ours_seconds) / math.log(large.size / small.size)


def growth_verdict(exponent):
    if exponent is None:
        return "n/a"
    if exponent < 0.9:
        return "sub-linear"
    if exponent <= 1.15:
        return "linear"
    return "super-linear"


def machine_description():
    """Cores, memory, CPU model, OS, Python and PostgreSQL versions of this run."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        shared_buffers = cursor.fetchone()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": f"{pg_version} (shared_buffers {shared_buffers})",
    }


def fmt(value, unit=""):
    if value is None:
        return "—"
    if unit in ("ms",):
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "%":
        return f"{value:,.3f} %"
    if unit:
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f}"


def table_lines(rows):
    """The one table: workload, ours, baseline, ratio, target, pass/short."""
    header = ["#", "workload", "ours", "baseline", "ratio", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            "| "
            + " | ".join(
                [
                    row.key,
                    row.workload,
                    fmt(row.ours, row.unit),
                    fmt(row.baseline, row.unit),
                    ratio,
                    row.target,
                    row.status,
                ]
            )
            + " |"
        )
    return lines


def console_table(rows):
    """The same table aligned for a terminal."""
    cells = [["#", "workload", "ours", "baseline", "ratio", "target", "result"]]
    for row in rows:
        cells.append(
            [
                row.key,
                row.workload,
                fmt(row.ours, row.unit),
                fmt(row.baseline, row.unit),
                "—" if row.ratio is None else f"{row.ratio:.2f}",
                row.target,
                row.status,
            ]
        )
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(cells[0]))]
    out = []
    for index, line in enumerate(cells):
        out.append("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)
