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
import textwrap
from pathlib import Path

import numpy as np

from lib.cli import MissingPackage, OneLineParser, atomic
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
    plan,
    run_groups,
)
from reporting.runs_report import logged_commands, processes, single_runs
from reporting.teachers_report import teachers
from reporting.tile_report import ablation, gis_example
from reporting.unclicked_report import unclicked

# The page: every result of the folder


# The topics whose tables are long: on the page a paragraph each, the tables on runs.md under the
# headings that begin with the second field
TOPICS = (
    (
        "Real tiles: what each lever of the tile recipe adds",
        "The tile recipe",
        "The tile recipe (every crop in any of the 8 orientations, 10 epochs, the 8 averaged at "
        "test time; [docs/recipe.md](../docs/recipe.md)) built up lever by lever from the "
        "report's, on the same clicks (10 random per class) and seeds, with the pixel random "
        "forest of `baseline.py` on those clicks last, and the targets it was held to.",
    ),
    (
        "Extra targets: another model's maps beside the clicks",
        "Extra targets",
        "The tile recipe with a second pCE term on dense maps of the training tiles made from the "
        "same clicks: the forest's, or the network's own confident pixels "
        "([docs/recipe.md](../docs/recipe.md#extra-targets)).",
    ),
    (
        "Learning from the unclicked pixels",
        "Learning from the unclicked pixels",
        "Each lever of `scripts/unclicked_runs.sh` alone and together ([docs/unclicked.md]"
        "(../docs/unclicked.md)): the mean teacher, consistency, grown clicks, the prior shift, "
        "test-time zoom, pasted boxes, the image at full resolution. Each set's table ends with "
        "what its val chose; the `--data` defaults at a glance above are what the sets' val "
        "chose together.",
    ),
    (
        "The labelling loop",
        "The labelling loop",
        "Rounds of `scripts/active.py`: a model trained on a few clicks, `suggest.py`'s proposals "
        "labelled from the masks, trained again, against the same number of clicks placed at "
        "random ([docs/suggest.md](../docs/suggest.md)).",
    ),
)


def anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return "#" + kept.replace(" ", "-")


def topic_sections(folder):
    """The long topics' sections, as runs.md holds them (each with its tables)."""
    return ablation(folder) + teachers(folder) + unclicked(folder) + labelling_loops(folder)


def topic_summaries(sections):
    """The page's paragraph on each long topic found in `sections`, linking to its tables."""
    found = [line[3:] for line in sections if line.startswith("## ")]
    lines = []
    for heading, begins, text in TOPICS:
        places = [h for h in found if h.startswith(begins)]
        if places:
            links = ", ".join(f"[{h.split(': ', 1)[-1]}](runs.md{anchor(h)})" for h in places)
            lines += [f"## {heading}", "", f"{text} Tables: {links}.", ""]
    return lines


def wrapped(lines, width=100):
    """Prose lines folded at `width`; tables, headings, lists and images as they are."""
    folded = []
    for line in lines:
        if len(line) <= width or line.startswith(("|", "#", "- ", "!")):
            folded.append(line)
        else:
            folded += textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
    return folded


def page(folder, tables_text, r=None):
    """README.md of a results folder, read as a report: at a glance the defaults' numbers, then the
    report's tables and figures, then a short section per topic; the long tables and the per-run
    ledger are on runs.md (`ledger`)."""
    lines = [
        "# Results",
        "",
        f"Rendered by `python -m reporting {folder.name}` from the records in this folder: the run "
        "records (`runs.jsonl`, `*/metrics.json`) and the commands' logs. Nothing here is copied "
        "by hand; every figure comes with its command, machine and date. All runs: encoder init as "
        "recorded (`random` where the ImageNet weights could not be downloaded). How to read the "
        "tables: [docs/results.md](../docs/results.md).",
        "",
    ]
    if (folder / "plan.json").is_file():  # the project's results: the README's table first
        glance = headline(folder, r).replace("results/README.md#", "#").replace("results/", "")
        lines += ["## At a glance", "", *glance.split("\n"), ""]
    experiment_logs = sorted(folder.glob("experiments*.log"))
    body = tables_text.split("\n", 2)[2] if tables_text else ""
    if body:
        lines += ["## The report's experiments", ""] + [
            f"- `{command}` — {when} ([log]({log.name}))"
            for log, when, command in map(header, experiment_logs)
        ]
        # a line each: wrapped() folds prose lines, and a table held in one string is not one
        lines += ["", *body.replace("\n## ", "\n### ").strip().split("\n"), ""]
        lines += [f"![{p.stem}]({p.name})" for p in sorted(folder.glob("fig*.png"))] + [""]
    lines += topic_summaries(topic_sections(folder))
    lines += gis_example(folder)
    lines += onnx_speed(folder)
    lines += [
        "Every single run with its per-class IoU, the long tables of the topics above, the "
        "torchrun check, the benchmark, and the wall time and peak memory of every logged command: "
        "[runs.md](runs.md).",
    ]
    return "\n".join(wrapped(lines)).rstrip() + "\n"


def ledger(folder):
    """runs.md of a results folder: every single run over seeds, and what the commands cost."""
    lines = [
        "# Runs and costs",
        "",
        f"Rendered by `python -m reporting {folder.name}` with [README.md](README.md), from the "
        "same records: the long tables of the page's topics, every run outside the report's "
        "experiments, one row per setting over seeds, and the wall time and peak memory of every "
        "logged command, each with its command, machine and date.",
        "",
    ]
    lines += topic_sections(folder)
    lines += processes(folder) + single_runs(folder) + logged_commands(folder)
    return "\n".join(lines).rstrip() + "\n"


def headline(folder, r=None):
    """The table at the top of the results page and of README.md: the report's recipe on the
    synthetic scenes beside the report's numbers, and on every set the defaults a user gets
    (results/plan.json's "defaults") against the pixel random forest on the same clicks, each seed's
    margin, the margin aimed at, and the two's wall times. A set whose network has not run yet is
    listed with its forest. A row may be the forest's own with another setting (`--tile-prior`):
    its margin over the plain forest is shown, no target."""
    r, groups, p = r or results(folder), run_groups(folder), plan(folder)
    lines = [
        "| data | run | seeds | test mIoU | the forest, same clicks | − forest: mean (each seed) | "
        "target | wall time, network / forest | tested weights' val, last 3 epochs | "
        "the report (ImageNet init, 1 run) |",
        "|---" * 10 + "|",
    ]
    forest_runs = lambda data: groups.get(f"{data}/{p.get('forest')}", [])
    report = f"{REPORT_FINAL['miou']:.4f} / {REPORT_FINAL['pixel_accuracy']:.4f}"
    rows = [
        (
            "synthetic",
            "200 random points/image, the report's recipe",
            dict(points=200),
            f"{REPORT_DENSITY_MIOU[200]:.4f}",
        ),
        ("synthetic", "10 random points/class, the report's recipe", FINAL, report),
    ]
    shown = []
    for data, what, config, theirs in rows:
        miou = r.values(config, "test", "miou")
        forest = forest_runs(data) if "points_per_class" in config else []
        walls = list(r.values(config, "wall_time_s").values())
        lines.append(glance_row(data, what, miou, forest, None, theirs, walls, []))
    for data, name, what in p.get("defaults", []):
        runs = groups.get(f"{data}/{name}", [])
        forest_row = Path(name).name.startswith("forest-")  # baseline.py with another setting
        shown += [] if forest_row else runs
        margin = None if forest_row else p.get("unclicked_margin_over_forest", {}).get(data)
        walls = [run["wall_time_s"] for run in runs]
        if runs or forest_runs(data):
            epoch_runs = [] if forest_row else runs  # the forest has no epochs
            row = glance_row(
                data, what, by_seed(runs), forest_runs(data), margin, "—", walls, epoch_runs
            )
            lines.append(row)
    networks = [rec["metrics"] for rec in r.records.values()] + shown
    machines = sorted({run["machine"] + ", " + run["precision"] for run in networks})
    inits = sorted({run["encoder_init"] for run in networks})
    return "\n".join(
        lines
        + [
            "",
            f"Mean ± std over seeds; − forest paired by seed; wall times are means over seeds, "
            f"each as its record has it. Computed on: {'; '.join(machines)}. The network's "
            f"encoder init: {', '.join(inits)}.",
        ]
    )


def by_seed(runs):
    """{seed: test mIoU} of a run's seeds."""
    return {run["config"]["seed"]: run["test"]["miou"] for run in runs}


def val_swing(runs):
    """How far the tested weights' val mIoU (over the classes val holds) moved over the last three
    epochs, the most of any run: with --average-last the average's after each, else the epochs'
    own (the best of them is tested). "—" for no run with three epochs."""
    swings = []
    for run in runs:
        key = "val_miou_average" if run["config"].get("average_last") else "val_miou"
        last = [h.get(f"{key}_in_truth", h.get(key)) for h in run["history"][-3:]]
        if len(last) == 3 and None not in last:
            swings.append(max(last) - min(last))
    return f"moves ≤ {max(swings):.3f}" if swings else "—"


def glance_row(data, what, miou, forest_runs, margin, theirs, walls, runs):
    """One row of the headline table: the network's {seed: test mIoU} ({}: not run yet), the
    forest's runs ([] for a row without one), margin None for none, the network's wall times and
    its run records ([] for a row that has none: the synthetic tables' experiments)."""
    forest = by_seed(forest_runs)
    gap = {s: miou[s] - forest[s] for s in miou if s in forest}
    each = ", ".join(f"{gap[s]:+.4f}" for s in sorted(gap))
    target = "—"
    if margin is not None and gap:
        mean = float(np.mean(list(gap.values())))
        short = f"not met, short by {margin - mean:.4f}"
        target = f"+{margin:.2f}: " + ("met" if mean >= margin else short)
        lowest = min(gap.values())
        target += "" if lowest >= 0 else f"; below the forest on a seed ({lowest:+.4f})"
    elif margin is not None:
        target = f"+{margin:.2f}"
    network = f"{np.mean(walls):.0f} s" if walls else "—"
    forest_wall = [run["wall_time_s"] for run in forest_runs if "wall_time_s" in run]
    wall = f"{network} / {np.mean(forest_wall):.0f} s" if forest_wall else network
    return (
        f"| {data} | {what} | {len(miou)} | {mean_std(miou) if miou else 'not run yet'} | "
        f"{mean_std(forest) if forest else '—'} | "
        f"{f'{np.mean(list(gap.values())):+.4f} ({each})' if gap else '—'} | {target} | "
        f"{wall} | {val_swing(runs)} | {theirs or '—'} |"
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
