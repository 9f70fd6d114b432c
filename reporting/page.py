"""Render a results folder: its run records into tables, figures and a page. No training here.

    python -m reporting results     re-render results/README.md, results/tables.md and the figures

experiments.py calls it when it has trained what the tables need. The page, <folder>/README.md,
holds every result of the folder and nothing copied by hand: the report's experiments (from
runs.jsonl), every other run that left a metrics.json (grouped over seeds), the benchmark's
output, and the wall time and peak memory of every logged command, each with its command,
machine and date. Every cell is mean ± std over the seeds that finished (sample std, n - 1).
Differences between two settings are paired by seed (same scenes, same test set) and called
"within noise" when |mean| <= 2 standard errors of the paired differences; a single seed cannot
say, and says so. The rest of reporting/ are the pieces: paper_tables.py the report's tables,
figures.py the figures; the sections on real tiles (tile_report.py), on extra targets
(teachers_report.py), on the unclicked pixels (unclicked_report.py), on labelling loops
(loop_report.py) and on single runs and logs (runs_report.py).
"""

import json
from pathlib import Path

from lib.cli import MissingPackage, OneLineParser, atomic
from lib.settings import DEFAULTS, label_mode
from reporting.figures import figures, loop_curves
from reporting.loop_report import labelling_loops
from reporting.onnx_report import onnx_speed
from reporting.paper import (
    FINAL,
    REPORT_DENSITY_MIOU,
    REPORT_FINAL,
)
from reporting.paper_tables import results, tables
from reporting.records import (
    header,
    mean_std,
    over_seeds,
    run_groups,
)
from reporting.runs_report import logged_commands, processes, single_runs
from reporting.teachers_report import teachers
from reporting.tile_report import ablation, gis_example
from reporting.unclicked_report import unclicked

# The page: every result of the folder


def page(folder, tables_text, r=None):
    """README.md of a results folder: the report's tables and figures, and per data set the
    sections on real tiles and labelling loops; the per-run ledger is on runs.md (`ledger`)."""
    lines = [
        "# Results",
        "",
        f"Rendered by `python -m reporting {folder.name}` from the records in this folder: the run "
        f"records",
        "(`runs.jsonl`, `*/metrics.json`) and the commands' logs. Nothing here is copied by hand; "
        "every",
        "figure comes with its command, machine and date. All runs: encoder init as recorded "
        "(`random` where",
        "the ImageNet weights could not be downloaded). How to read the tables: "
        "[docs/results.md](../docs/results.md).",
        "",
    ]
    if (folder / "plan.json").is_file():  # the project's results: the README's table first
        glance = headline(folder, r).replace("results/README.md#", "#").replace("results/", "")
        lines += ["## At a glance", "", glance, ""]
    experiment_logs = sorted(folder.glob("experiments*.log"))
    body = tables_text.split("\n", 2)[2] if tables_text else ""
    if body:
        lines += ["## The report's experiments", ""] + [
            f"- `{command}` — {when} ([log]({log.name}))"
            for log, when, command in map(header, experiment_logs)
        ]
        lines += ["", body.replace("\n## ", "\n### ").strip(), ""]
        lines += [f"![{p.stem}]({p.name})" for p in sorted(folder.glob("fig*.png"))] + [""]
    lines += ablation(folder)
    lines += teachers(folder)
    lines += unclicked(folder)
    lines += gis_example(folder)
    lines += onnx_speed(folder)
    lines += labelling_loops(folder)
    lines += [
        "Every single run with its per-class IoU, the torchrun check, the benchmark, and the wall "
        "time and peak memory of every logged command: [runs.md](runs.md).",
    ]
    return "\n".join(lines).rstrip() + "\n"


def ledger(folder):
    """runs.md of a results folder: every single run over seeds, and what the commands cost."""
    lines = [
        "# Runs and costs",
        "",
        f"Rendered by `python -m reporting {folder.name}` with [README.md](README.md), from the "
        "same records: every run outside the report's experiments, one row per setting over seeds, "
        "and the wall time and peak memory of every logged command, each with its command, "
        "machine and date.",
        "",
    ]
    lines += processes(folder) + single_runs(folder) + logged_commands(folder)
    return "\n".join(lines).rstrip() + "\n"


def headline(folder, r=None):
    """The short table README.md shows: the report's main settings on the synthetic scenes, and
    clicks against full masks on the real sets, each linking to its place on the results page."""
    r, groups = r or results(folder), run_groups(folder)
    lines = [
        "| data | labels, method | seeds | test mIoU | pixel accuracy | the report (ImageNet init, "
        "1 run) |",
        "|---|---|---|---|---|---|",
    ]
    for config, theirs in (
        (dict(points=200), f"{REPORT_DENSITY_MIOU[200]:.4f}"),
        (FINAL, f"{REPORT_FINAL['miou']:.4f} / {REPORT_FINAL['pixel_accuracy']:.4f}"),
        (dict(dense=True), "—"),
    ):
        miou = r.values(config, "test", "miou")
        lines.append(
            f"| synthetic ([tables](results/README.md#the-reports-experiments)) | "
            f"{label_mode({**DEFAULTS, **config})[1]}, U-Net | {len(miou)} | {mean_std(miou)} | "
            f"{mean_std(r.values(config, 'test', 'pixel_accuracy'))} | {theirs} |"
        )
    shown = {}
    for name, runs in groups.items():
        c = {**DEFAULTS, **runs[0]["config"]}
        if (
            (c["data"] or name.startswith("synthetic/"))
            and c["loss"] == "pce"
            and name.count("/") == 1
            and "recipe-" not in name
        ):  # not the ablations' runs (recipe-*, teachers/)
            shown[name] = runs
            lines.append(
                f"| {c['data'] or 'synthetic'} ([runs](results/runs.md#single-runs)) | "
                f"{label_mode(c)[1]}, {runs[0].get('method', 'U-Net')} | {len(runs)} | "
                f"{mean_std(over_seeds(runs, 'test', 'miou'))} | "
                f"{mean_std(over_seeds(runs, 'test', 'pixel_accuracy'))} | — |"
            )
    networks = [rec["metrics"] for rec in r.records.values()] + [
        run for runs in shown.values() for run in runs if "encoder_init" in run
    ]
    machines = sorted(
        {run["machine"] + ", " + run["precision"] for run in networks}
        | {
            run["machine"] + ", " + run["method"]
            for runs in shown.values()
            for run in runs
            if "method" in run
        }
    )
    inits = sorted({run["encoder_init"] for run in networks})
    return "\n".join(
        lines
        + [
            "",
            f"Computed on: {'; '.join(machines)}. The network's encoder init: {', '.join(inits)}.",
        ]
    )


README = Path(__file__).resolve().parents[1] / "README.md"
HEADLINE = (
    "<!-- headline results: rendered by `python -m reporting results`, do not edit -->",
    "<!-- end of headline results -->",
)


def with_headline(readme, table):
    """README.md's text with the table between the HEADLINE markers replaced."""
    start, end = readme.index(HEADLINE[0]) + len(HEADLINE[0]), readme.index(HEADLINE[1])
    return readme[:start] + "\n" + table + "\n" + readme[end:]


def texts(folder, r=None):
    """(tables.md, README.md, runs.md) of a results folder, as text; no tables where it has no
    experiment records."""
    r = r or results(folder)
    table_text = tables(r) if r.records else ""
    return table_text, page(folder, table_text, r), ledger(folder)


def main(argv=None):
    parser = OneLineParser(prog="python -m reporting", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", nargs="?", default="results", help="a results folder (default results)"
    )
    folder = Path(parser.parse_args(argv).folder)
    if not folder.is_dir():
        parser.error(f"{folder}: not a folder; give a results folder, e.g. results")
    r = results(folder)
    table_text, page_text, ledger_text = texts(folder, r)
    if table_text:
        with atomic(folder / "tables.md") as tmp:
            tmp.write_text(table_text)
    try:  # the figures need matplotlib; the tables do not
        if table_text:
            figures(r, folder)
        for path in sorted(folder.glob("active/*/curves.json")):
            curves = {k: v for k, v in json.loads(path.read_text()).items() if k != "config"}
            loop_curves(curves, path.parent / "curves.png")
    except MissingPackage as error:
        print(f"reporting: figures skipped: {error}", flush=True)
    for name, text in (("README.md", page_text), ("runs.md", ledger_text)):
        with atomic(folder / name) as tmp:
            tmp.write_text(text)
    if folder.resolve() == README.parent / "results" and HEADLINE[0] in README.read_text():
        with atomic(README) as tmp:  # the project's README shows the headline table
            tmp.write_text(with_headline(README.read_text(), headline(folder, r)))
    print(
        f"{folder / 'README.md'}, {folder / 'runs.md'}"
        + (
            f", {folder / 'tables.md'}; figures: "
            f"{', '.join(sorted(p.name for p in folder.glob('fig*.png')))}"
            if table_text
            else ""
        )
    )
