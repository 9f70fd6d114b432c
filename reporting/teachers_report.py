"""The results page's section on the extra-target levers (scripts/teacher_runs.sh): the tile
recipe trained beside another model's maps of the training tiles (the forest's, or its own sure
pixels: self-training), against the tile recipe alone, each run on the same machine.

page.py renders it into <folder>/README.md from the runs' metrics.json files; which runs are
rows comes from <folder>/plan.json ("teachers"); cells are mean ± std over seeds, differences
paired by seed (records.py).
"""

from reporting.records import mean_std, paired, plan, run_groups
from reporting.tile_report import machine_line, scored, table_row


def teachers(folder):
    """The extra-target levers against the tile recipe alone, each run on the same machine."""
    groups, lines, p = run_groups(folder), [], plan(folder)
    levers = p.get("teachers", [])
    for data in sorted({name.split("/")[0] for name in groups if "/teachers/" in name}):
        rows = [
            (label, groups[f"{data}/teachers/{name}"])
            for label, name in levers
            if f"{data}/teachers/{name}" in groups
        ]
        if not rows or rows[0][0] != "tile recipe":
            continue
        if not lines:
            lines += [
                "## Extra targets: another model's maps beside the clicks",
                "",
                "The runs of `scripts/teacher_runs.sh` "
                "([docs/recipe.md](../docs/recipe.md#extra-targets)): the tile",
                "recipe alone, and with a second pCE term (weight 0.5) on dense maps of the "
                "training tiles made",
                "from the same clicks: the pixel forest's, or the tile recipe's own pixels where "
                "its top class is",
                "at least 0.9 probable. Val mIoU (with TTA) is what a lever is kept on; − tile "
                "recipe is paired by seed.",
                "",
            ]
        forest = groups.get(f"{data}/teachers/forest", [])
        lines += set_table(data, rows, forest)
    return lines


def set_table(data, rows, forest_runs):
    """One set's table of the extra-target levers, and the machine it ran on."""
    classes = rows[0][1][0]["classes"]
    base = {run["config"]["seed"]: scored(run, True)[0] for run in rows[0][1]}
    forest = {run["config"]["seed"]: run["test"]["miou"] for run in forest_runs}
    lines = [
        f"**{data}**"
        + (
            " (the scenes as a folder, `python export.py tiles scenes`)"
            if data == "synthetic"
            else ""
        ),
        "",
        "| run | seeds | val mIoU | val − tile recipe | test mIoU | test − forest | pixel "
        "accuracy | " + " | ".join(classes) + " | wall |",
        "|---" * (len(classes) + 8) + "|",
    ]
    for label, runs in rows:
        views = {run["config"]["seed"]: scored(run, "method" not in run) for run in runs}
        test = {seed: v[1] for seed, v in views.items()}
        val = {s: v[0] for s, v in views.items()}
        miou = {s: t["miou"] for s, t in test.items()}
        cells = [
            mean_std(val),
            "—" if label == "tile recipe" else paired(val, base),
            mean_std(miou),
            "—" if "method" in runs[0] else paired(miou, forest),
            mean_std({s: t["pixel_accuracy"] for s, t in test.items()}),
        ]
        lines.append(table_row(label, views, cells, classes))
    run = rows[0][1][0]
    lines += [
        "",
        machine_line(run, run["machine"].split(",")[0]),
        "",
    ]
    return lines
