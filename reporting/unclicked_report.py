"""The results page's section on learning from the unclicked pixels (lib/teacher.py,
lib/prior.py): each lever of scripts/unclicked_runs.sh alone and together, beside the tile recipe
and the pixel random forest on the same clicks and seeds, and the issue's targets, met or not.

page.py renders it into <folder>/README.md from the runs' metrics.json files; which runs are
rows comes from <folder>/plan.json ("unclicked": [label, folder] pairs, the tile recipe first),
the forest's folder and the margin aimed at from its "forest" and
"unclicked_margin_over_forest".
"""

import numpy as np

from reporting.records import beyond_noise, differences, mean_std, paired, plan, run_groups
from reporting.tile_report import machine_line, scored, table_row


def unclicked(folder):
    groups, p = run_groups(folder), plan(folder)
    levers, lines = p.get("unclicked", []), []
    for data in sorted({name.split("/")[0] for name in groups if "/unclicked/" in name}):
        if not levers or f"{data}/unclicked/{levers[0][1]}" not in groups:  # the base row
            continue
        rows = [
            (label, groups[f"{data}/unclicked/{name}"])
            for label, name in levers
            if f"{data}/unclicked/{name}" in groups
        ]
        if not lines:
            lines += [
                "## Learning from the unclicked pixels",
                "",
                "The runs of `scripts/unclicked_runs.sh` (`lib/teacher.py`, `lib/prior.py`): the "
                "tile recipe alone, each lever alone and all",
                "together, on the same clicks (10 random per class) and seeds. Val mIoU (with TTA) "
                "is what a lever is kept",
                "on; − tile recipe and − forest are paired by seed; wall ×: against the tile "
                "recipe's mean, same machine.",
                "",
            ]
        lines += set_section(data, rows, groups, p)
    return lines


def set_section(data, rows, groups, p):
    """One set's table of levers, the machine it ran on, and what its val chose."""
    classes = rows[0][1][0]["classes"]
    views = {label: {r["config"]["seed"]: scored(r, True) for r in runs} for label, runs in rows}
    base = views[rows[0][0]]
    forest_runs = groups.get(f"{data}/{p.get('forest')}", [])
    forest = {r["config"]["seed"]: r["test"]["miou"] for r in forest_runs}
    base_wall = np.mean([v[2] for v in base.values()])
    lines = [
        f"**{data}**",
        "",
        "| run | seeds | val mIoU | val − tile recipe | test mIoU | test − forest | pixel "
        "accuracy | " + " | ".join(classes) + " | wall | wall × |",
        "|---" * (len(classes) + 9) + "|",
    ]
    for label, _ in rows:
        seen = views[label]
        val = {s: v[0] for s, v in seen.items()}
        miou = {s: v[1]["miou"] for s, v in seen.items()}
        cells = [
            mean_std(val),
            "—" if seen is base else paired(val, {s: v[0] for s, v in base.items()}),
            mean_std(miou),
            paired(miou, forest) if set(miou) <= set(forest) else "—",
            mean_std({s: v[1]["pixel_accuracy"] for s, v in seen.items()}),
        ]
        wall = np.mean([v[2] for v in seen.values()]) / base_wall
        # runs scored again with other test-time settings (scripts/rescore.py) say so
        again = sorted(r["config"]["seed"] for r in dict(rows)[label] if "rescored_from" in r)
        named = label + (
            f" (rescored: seed{'s' * (len(again) > 1)} {', '.join(map(str, again))})"
            if again
            else ""
        )
        lines.append(table_row(named, seen, cells, classes) + f" {wall:.2f} |")
    run = rows[0][1][0]
    lines += ["", machine_line(run, run["machine"]) + made_elsewhere(rows, run)]
    margin = p.get("unclicked_margin_over_forest", {}).get(data)
    chosen = margin is not None and choice(rows, views, base, forest, margin)
    if chosen:
        lines.append(chosen)
    lines.append("")
    return lines


def made_elsewhere(rows, run):
    """A run made elsewhere (another CPU, precision or thread count) is named under the table: the
    same seed gives other numbers there."""
    setting = lambda r: (r["machine"], r["precision"])
    elsewhere = {}
    for label, runs in rows:
        for r in runs:
            if setting(r) != setting(run):
                elsewhere.setdefault((label, *setting(r)), []).append(str(r["config"]["seed"]))
    elsewhere = [
        f"{label}, seed{'s' * (len(seeds) > 1)} {', '.join(seeds)}: {where}, {precision}"
        for (label, where, precision), seeds in elsewhere.items()
    ]
    return f" Made elsewhere: {'; '.join(elsewhere)}." if elsewhere else ""


def choice(rows, views, base, forest, margin):
    """The lever kept: the best mean val mIoU over the seeds the tile recipe has, among those that
    beat the tile recipe on val beyond noise (none: the tile recipe); its test margin over the
    forest against the one aimed at ("" without a forest on those seeds)."""
    full = [label for label, _ in rows[1:] if set(views[label]) >= set(base)]
    val = lambda label: {s: views[label][s][0] for s in base}
    gain = {label: differences(val(label), val(rows[0][0])) for label in full}
    top = max(full, key=lambda label: np.mean(gain[label]), default=None)
    kept = [label for label in full if np.mean(gain[label]) > 0 and beyond_noise(gain[label])]
    best = max(kept, key=lambda label: np.mean(gain[label]), default=rows[0][0])
    gap = differences({s: views[best][s][1]["miou"] for s in base}, forest)
    if not gap:
        return ""
    met = "met" if np.mean(gap) >= margin else f"not met, short by {margin - np.mean(gap):.4f}"
    why = (
        f"it beats the tile recipe on val beyond noise, by {np.mean(gain[best]):+.4f}"
        if best != rows[0][0]
        else "no lever beats it on val beyond noise"
        + (f"; the closest, {top}, by {np.mean(gain[top]):+.4f}" if top else "")
    )
    return (
        f"Chosen on this set's val over seeds {', '.join(map(str, sorted(base)))}: "
        f"**{best}** ({why}), test − forest {np.mean(gap):+.4f} (target +{margin:.2f}: {met})."
    )
