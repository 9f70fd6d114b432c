"""The results page's sections on real tiles: the tile recipe's ablation, its targets against the
pixel random forest, and the GIS example's scores on reference points (the extra-target levers:
teachers_report.py).

page.py renders them into <folder>/README.md from the runs' metrics.json files
(scripts/recipe_runs.sh, scripts/gis_example.sh); cells are mean ± std over seeds, differences
paired by seed (records.py).
"""

import json

import numpy as np
import torch

from lib.evaluation import scores
from reporting.records import differences, header, mean_std, paired, plan, run_groups

# What the sections compare and aim at comes from <folder>/plan.json (records.plan): the run
# folders of the ablation (scripts/recipe_runs.sh: row, folder, scored with TTA; runs made with
# --tta were also scored without it, so one run gives two rows) and of the extra-target runs
# (scripts/teacher_runs.sh), the forest's, and the targets against the forest.


def scored(run, tta):
    """(best val mIoU, test scores, wall seconds) of a run as scored with or without TTA. The wall
    time leaves out the final scorings that the row did not need (those done for the ablation)."""
    if "method" in run:  # the forest
        return run["val_miou"], run["test"], run["wall_time_s"]
    seconds = run.get("scoring_seconds", {})
    if tta:
        val, test = run["val_miou_tta"], run["test"]
        extra = seconds.get("test_without_tta", 0) + seconds.get("val_tta", 0)
    else:
        val = max(h["val_miou"] for h in run["history"] if h["val_miou"] is not None)
        test = run.get("test_without_tta", run["test"])
        extra = (seconds["test"] + seconds.get("val_tta", 0)) if "test_without_tta" in run else 0
    return val, test, run["wall_time_s"] - extra


def table_row(label, views, cells, classes):
    """One row of a per-set table: its seeds, the cells given, per-class IoU and wall time over
    the seeds' views ({seed: (val mIoU, test scores, wall seconds)})."""
    test = {seed: v[1] for seed, v in views.items()}
    cells = cells + [
        mean_std({s: t["per_class"][k]["iou"] for s, t in test.items()}) for k in classes
    ]
    seeds = ", ".join(map(str, sorted(views)))
    wall = np.mean([v[2] for v in views.values()])
    return f"| {label} | {seeds} | " + " | ".join(cells) + f" | {wall:.0f} s |"


def machine_line(run, machine):
    """The line under a table of runs on one machine, `machine` as the table names it."""
    return (
        f"Machine: {machine}, {run['precision']}, torch {run['torch']}, {run['encoder_init']} "
        f"init. The runs shared the machine with other work: their wall times compare roughly."
    )


def ablation(folder):
    """The tile recipe's levers alone and together, beside the pixel random forest, per data set."""
    groups, p = run_groups(folder), plan(folder)
    if "tile_recipe_levers" not in p:
        return []
    LEVERS, FOREST = p["tile_recipe_levers"], p["forest"]
    sets = [
        s
        for s in ("dronedeploy", "dubai")
        if f"{s}/{LEVERS[0][1]}" in groups and f"{s}/{FOREST}" in groups
    ]
    if not sets:
        return []
    lines = [
        "## The tile recipe: each lever alone and together",
        "",
        "The runs of `scripts/recipe_runs.sh` ([docs/recipe.md](../docs/recipe.md)): the same "
        "clicks (10 random per class), splits",
        "and seeds for every row, the pixel random forest of `baseline.py` last. Val mIoU is what "
        "the recipe",
        "was chosen on; − forest is paired by seed. Wall: one run, with the scorings a row did not "
        "need",
        "left out; the network runs shared one GPU, several at a time, so their wall times compare",
        "with each other roughly, and not with the forest's, which ran on a CPU.",
        "",
    ]
    for data in sets:
        rows = [(label, groups[f"{data}/{name}"], tta) for label, name, tta in LEVERS] + [
            ("pixel random forest", groups[f"{data}/{FOREST}"], None)
        ]
        classes = rows[0][1][0]["classes"]
        forest = {run["config"]["seed"]: scored(run, None)[1]["miou"] for run in rows[-1][1]}
        lines += [
            f"**{data}**",
            "",
            "| recipe | seeds | val mIoU | test mIoU | − forest | pixel accuracy | "
            + " | ".join(classes)
            + " | wall |",
            "|---" * (len(classes) + 7) + "|",
        ]
        for label, runs, tta in rows:
            views = {run["config"]["seed"]: scored(run, tta) for run in runs}
            test = {seed: v[1] for seed, v in views.items()}
            cells = [
                mean_std({s: v[0] for s, v in views.items()}),
                mean_std({s: t["miou"] for s, t in test.items()}),
                "—" if tta is None else paired({s: t["miou"] for s, t in test.items()}, forest),
                mean_std({s: t["pixel_accuracy"] for s, t in test.items()}),
            ]
            lines.append(table_row(label, views, cells, classes))
        network, forest_run = rows[-2][1][0], rows[-1][1][0]
        lines += [
            "",
            f"Network: {network['machine']}, {network['precision']}, torch {network['torch']}, "
            f"{network['encoder_init']} init. Forest: {forest_run['machine']}, scikit-learn "
            f"{forest_run['sklearn']}.",
            "",
        ]
    return lines + targets(groups, p)


def targets(groups, p):
    """The targets the tile recipe was held to, met or not: the tile recipe against the forest on
    the same clicks. (The `--data` defaults that replaced it are held to them at the page's top.)"""
    lines = [
        "### Targets: the tile recipe (the former `--data` defaults) against the pixel random "
        "forest",
        "",
        "| data | forest test mIoU | tile recipe test mIoU | tile recipe − forest | target | met | "
        "pixel accuracy, forest → tile recipe | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    LEVERS, FOREST, TIME_LIMIT = p["tile_recipe_levers"], p["forest"], p["dubai_time_limit"]
    for data, margin in p["margin_over_forest"].items():
        name = "points-per-class-10" if data != "synthetic" else "tile-recipe-points-per-class-10"
        if f"{data}/{name}" not in groups or f"{data}/{FOREST}" not in groups:
            continue
        net = {run["config"]["seed"]: scored(run, True)[1] for run in groups[f"{data}/{name}"]}
        forest = {run["config"]["seed"]: run["test"] for run in groups[f"{data}/{FOREST}"]}
        gap = differences(
            {s: t["miou"] for s, t in net.items()}, {s: t["miou"] for s, t in forest.items()}
        )
        accuracy = [np.mean([t["pixel_accuracy"] for t in side.values()]) for side in (forest, net)]
        miou = [{s: t["miou"] for s, t in side.items()} for side in (forest, net)]
        met = "yes" if np.mean(gap) >= margin else f"no, short by {margin - np.mean(gap):.4f}"
        lines.append(
            f"| {data} | {mean_std(miou[0])} | {mean_std(miou[1])} | {paired(miou[1], miou[0])} | "
            f"+{margin:.2f} | {met} | {accuracy[0]:.4f} → {accuracy[1]:.4f} | "
            f"{'yes' if accuracy[1] >= accuracy[0] else 'no'} |"
        )
    if "dubai/points-per-class-10" in groups and f"dubai/{LEVERS[0][1]}" in groups:
        tile, report = (
            np.mean([scored(run, tta)[2] for run in groups[f"dubai/{name}"]])
            for name, tta in (("points-per-class-10", True), (LEVERS[0][1], False))
        )
        missed = f"missed by {tile / report - TIME_LIMIT:.2f}x"
        lines += [
            "",
            f"Time on Dubai, same machine: the tile recipe {tile:.0f} s, the report's {report:.0f} "
            f"s: {tile / report:.2f}x (target: at most {TIME_LIMIT}x; "
            f"{'met' if tile <= TIME_LIMIT * report else missed}).",
        ]
    return lines + [""]


def bootstrap(matrix, draws=2000, seed=0):
    """95% intervals of (mIoU, pixel accuracy) from resampling the scored points of a confusion
    matrix with replacement: how far a second set of as many reference points could land."""
    m = np.asarray(matrix)
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(m.sum(), m.reshape(-1) / m.sum(), size=draws).reshape(draws, *m.shape)
    values = [scores(torch.from_numpy(s), list(range(len(m)))) for s in samples]
    return [
        np.percentile([v[key] for v in values], [2.5, 97.5]) for key in ("miou", "pixel_accuracy")
    ]


def gis_example(folder):
    """scripts/gis_example.sh: one model's test split scored on its dense masks and on reference
    points."""
    runs = {
        p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("gis/*/metrics.json"))
    }
    if set(runs) != {"dense-masks", "reference-points"}:
        return []
    points = runs["reference-points"]["test"]
    (miou_low, miou_high), (pa_low, pa_high) = bootstrap(points["confusion_matrix"])
    _, when, command = header(folder / "gis" / "reference-points" / "train.log")
    classes = runs["dense-masks"]["classes"]
    lines = [
        "## Scored on reference points: the GIS example",
        "",
        f"`bash scripts/gis_example.sh` ([docs/gis.md](../docs/gis.md)) — {when}: one model "
        f"(trained from a "
        "point layer of clicks), its test tiles scored on their dense masks and on a layer of "
        "reference points alone. The interval: 95% of bootstrap resamplings of the reference "
        "points.",
        "",
        "| test split scored on | scored pixels | mIoU | pixel (overall) accuracy | "
        + " | ".join(classes)
        + " |",
        "|---" * (len(classes) + 4) + "|",
    ]
    for name, run in runs.items():
        test = run["test"]
        n = int(np.asarray(test["confusion_matrix"]).sum())
        interval = lambda low, high: (
            f" [{low:.4f}, {high:.4f}]" if name == "reference-points" else ""
        )
        lines.append(
            f"| {name.replace('-', ' ')} | {n} | {test['miou']:.4f}{interval(miou_low, miou_high)} "
            f"| {test['pixel_accuracy']:.4f}{interval(pa_low, pa_high)} | "
            + " | ".join(
                "—" if test["per_class"][k]["iou"] is None else f"{test['per_class'][k]['iou']:.4f}"
                for k in classes
            )
            + " |"
        )
    dense = runs["dense-masks"]["test"]
    agree = miou_low <= dense["miou"] <= miou_high and pa_low <= dense["pixel_accuracy"] <= pa_high
    lines += [
        "",
        f"The dense masks' mIoU and pixel accuracy lie {'inside' if agree else 'outside'} the "
        f"reference points' intervals. Command of the second run: `{command}`; "
        f"{runs['reference-points']['machine']}.",
        "",
    ]
    return lines
