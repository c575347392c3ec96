"""The run's results as bench/results/latest.md (table, machine, growth, notes) and growth.png."""

import json
import time
from collections import defaultdict
from pathlib import Path

from bench.core import (
    GrowthPoint,
    Report,
    console_table,
    fmt,
    growth_exponent,
    growth_verdict,
    machine_description,
    table_lines,
)

# Why a row may fall short, as far as the run itself can tell (the file's notes add the analysis).
STATUS_WORDS = {"pass": "met", "short": "short", "not available": "not available", "error": "error"}


def growth_groups(report):
    groups = defaultdict(list)
    for point in report.growth:
        groups[point.workload].append(point)
    return {name: sorted(points, key=lambda p: p.size) for name, points in groups.items()}


def growth_lines(report):
    groups = growth_groups(report)
    if not groups:
        return []
    lines = [
        "| workload | size | ours | baseline | ratio | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, points in groups.items():
        for point in points:
            ratio = f"{point.ours_seconds / point.baseline_seconds:.2f}" if point.baseline_seconds else "—"
            short = "tenants" not in name or name.startswith("11 ")  # row 11's ticks are milliseconds
            unit = "ms" if point.ours_seconds < 1 and short and "import" not in name else "s"
            scale = 1000 if unit == "ms" else 1
            lines.append(
                f"| {name} | {point.size:,} | {fmt(point.ours_seconds * scale, unit)} | "
                f"{fmt(None if point.baseline_seconds is None else point.baseline_seconds * scale, unit)} | "
                f"{ratio} | {fmt(point.peak_rss_mb, 'MB')} |"
            )
    lines += ["", "| workload | growth between the two largest sizes | verdict |", "|---|---|---|"]
    for name, points in groups.items():
        exponent = growth_exponent(points)
        described = "—" if exponent is None else f"time ∝ size^{exponent:.2f}"
        lines.append(f"| {name} | {described} | {growth_verdict(exponent)} |")
    return lines


def chart(report, path):
    """Time against size for each growing workload (log-log: a straight line of slope 1 is linear)."""
    groups = growth_groups(report)
    if not groups:
        return None
    import matplotlib  # noqa: PLC0415  (heavy, only when a chart is drawn)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (after matplotlib.use() above)

    tenant_groups = {k: v for k, v in groups.items() if "tenant" in k}
    data_groups = {k: v for k, v in groups.items() if "tenant" not in k}
    panels = [(data_groups, "customers"), (tenant_groups, "tenants")]
    panels = [(g, label) for g, label in panels if g]
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 7), squeeze=False)
    for axis, (group, label) in zip(axes[0], panels, strict=True):
        for index, (name, points) in enumerate(group.items()):
            color = f"C{index}"
            sizes = [p.size for p in points]
            axis.plot(sizes, [p.ours_seconds for p in points], "o-", color=color, label=f"{name} (ours)")
            if all(p.baseline_seconds for p in points):
                axis.plot(
                    sizes,
                    [p.baseline_seconds for p in points],
                    "x--",
                    color=color,
                    alpha=0.6,
                    label=f"{name} (baseline)",
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("seconds")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        axis.set_title(f"How time grows with {label} (log-log; slope 1 = linear)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write(report, ctx, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    png = chart(report, out_dir / "growth.png")
    met = [row.key for row in report.rows if row.status == "pass"]
    short = [row for row in report.rows if row.status == "short"]
    missing = [row for row in report.rows if row.status in ("not available", "error")]
    lines = [
        "# Benchmark results",
        "",
        f"Scale `{report.scale}`, run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(report.started))}, "
        f"{report.seconds / 60:.1f} minutes. Written by `make bench` (bench/); what each row measures and "
        "why is in bench/README.md.",
        "",
        "Machine: "
        + ", ".join(
            [
                f"{machine['cores']} cores ({machine['cpu']})",
                f"{machine['memory_gb']} GB memory",
                f"PostgreSQL {machine['postgresql']}",
                f"Python {machine['python']}",
                machine["os"],
            ]
        )
        + ".",
        "",
        *table_lines(report.rows),
        "",
        f"Targets met: {', '.join(met) or 'none'}. Short: {', '.join(row.key for row in short) or 'none'}."
        + (f" Not measured: {', '.join(row.key for row in missing)}." if missing else ""),
        "",
        "Notes per row (what the run itself recorded):",
        "",
    ]
    for row in report.rows:
        if row.note:
            lines.append(f"- **{row.key}** ({row.status}): {row.note}")
    for note in report.notes:
        lines.append(f"- {note}")
    growth = growth_lines(report)
    if growth:
        lines += ["", "## Growth", "", *growth]
        if png:
            lines += ["", f"![growth]({png.name})"]
    if ctx.facts:
        lines += ["", "## Other figures", ""]
        lines += [f"- {key}: {value}" for key, value in ctx.facts.items()]
    (out_dir / "latest.md").write_text("\n".join(lines) + "\n")
    (out_dir / "latest.json").write_text(
        json.dumps(
            {
                "scale": report.scale,
                "machine": machine,
                "rows": [
                    {
                        "key": r.key,
                        "workload": r.workload,
                        "unit": r.unit,
                        "ours": r.ours,
                        "baseline": r.baseline,
                        "ratio": r.ratio,
                        "target": r.target,
                        "status": r.status,
                        "note": r.note,
                    }
                    for r in report.rows
                ],
                "growth": [p.__dict__ for p in report.growth],
                "facts": ctx.facts,
            },
            indent=2,
            default=str,
        )
    )
    print(console_table(report.rows))
    print(f"\nwritten: {out_dir / 'latest.md'}" + (f", {png}" if png else ""))


def redraw(out_dir, *extra_dirs):
    """Draw growth.png again from latest.json, adding the growth points of other runs' results
    (e.g. a separate run of the largest import and tenant counts): `python -m bench.results DIR [DIR...]`."""
    report = Report(scale="")
    for directory in (out_dir, *extra_dirs):
        saved = json.loads((Path(directory) / "latest.json").read_text())
        report.growth += [GrowthPoint(**point) for point in saved["growth"]]
    unique = {(p.workload, p.size): p for p in report.growth}
    report.growth = list(unique.values())
    return chart(report, Path(out_dir) / "growth.png")


if __name__ == "__main__":
    import sys

    print(redraw(*sys.argv[1:]))
