"""The results page's section on active.py's labelling loops: test mIoU per round and strategy
(proposed clicks against as many random ones), the targets of docs/suggest.md, the last round's
per-class IoU and the dense model of the same set beside it.

page.py renders it into <folder>/README.md from each loop's curves.json and active.log; cells are
mean ± std over seeds, differences paired by seed (records.py).
"""

import json
import re
from pathlib import Path

import numpy as np

from reporting.records import (
    as_run_today,
    differences,
    header,
    mean_std,
    paired,
    plan,
    run_groups,
)


def labelling_loops(folder):
    """scripts/active.py's loops: test mIoU per round and strategy, over seeds, and the figure
    beside it; then the loops whose rounds trained warm, against a round from scratch."""
    lines, p = [], plan(folder)
    for path in sorted(folder.glob("active/*/curves.json")):
        record = json.loads(path.read_text())
        config, curves = record.pop("config"), record
        if config.get("warm"):
            lines += warm_section(folder, path, config, curves)
            continue
        if set(curves) != {"proposed", "random"}:
            continue
        rounds = config["rounds"] + 1  # round 0 and the added rounds; seeds that finished them
        seeds = sorted(
            (
                s
                for s in curves["proposed"]
                if all(len(curves[k].get(s, [])) == rounds for k in curves)
            ),
            key=int,
        )
        if seeds:
            lines += loop_section(folder, path, config, curves, seeds, p)
    return lines


def loop_section(folder, path, config, curves, seeds, p):
    """One loop's section: its command, the rounds' table, the clicks proposals save, its target,
    the last round class by class, the figure."""
    rounds = config["rounds"] + 1
    at = lambda strategy, r, key: {int(seed): curves[strategy][seed][r][key] for seed in seeds}
    # its results/<set>/
    data = {"scenes": "synthetic"}.get(Path(config["data"]).name, Path(config["data"]).name)
    log = path.parent / "active.log"
    _, when, command = header(log) if log.exists() else (None, "", "")
    flags = loop_train_flags(path.parent, config)
    if flags != config["train_flags"]:  # the command as it repeats the loop today
        command = re.sub(r'--train-flags[= ]("[^"]*"|\S+)', f'--train-flags "{flags}"', command)
    if not config.get("warm") and "--from-scratch" not in command:  # rounds warm since
        command = command.replace(" --out ", " --from-scratch --out ")
    lines = [
        f"## The labelling loop: {path.parent.name}",
        "",
        f"`{command}` — {when} ([log]({log.relative_to(folder)})). Round 0: "
        f"{config['start_per_class']} random clicks per class per tile; each round adds "
        f"{config['clicks']} clicks, labelled from the masks, and trains again from scratch "
        f"(`{flags or 'the --data defaults'}`). Test mIoU over {len(seeds)} "
        f"seed{'s' * (len(seeds) > 1)}, paired by seed.",
        "",
        "| round | clicks | proposed mIoU | random mIoU | proposed − random |",
        "|---|---|---|---|---|",
    ]
    for r in range(rounds):
        lines.append(
            f"| {r} | {np.mean(list(at('proposed', r, 'clicks').values())):.0f} | "
            f"{mean_std(at('proposed', r, 'miou'))} | {mean_std(at('random', r, 'miou'))} | "
            f"{paired(at('proposed', r, 'miou'), at('random', r, 'miou'))} |"
        )
    lines += ["", clicks_saved(at, rounds, config["clicks"]), ""]
    # target: proposed clicks' test mIoU minus random clicks' at the last round, at least this
    goal = p.get("loop_margin_over_random", {}).get(data)
    if goal is not None:
        lines += [loop_target(at, rounds, goal, len(seeds)), ""]
    without_tta = "--no-tta" in config["train_flags"]
    dense_targets = p.get("loop_share_of_dense", {})
    lines += last_round(folder, data, curves, seeds, rounds - 1, without_tta, dense_targets)
    lines += ["", f"![{path.parent.name}]({path.parent.relative_to(folder)}/curves.png)", ""]
    return lines


def clicks_saved(at, rounds, added):
    """Whether, and at which round, proposed clicks reach random clicks' last-round mIoU."""
    last = np.mean(list(at("random", rounds - 1, "miou").values()))
    reach = next(
        (r for r in range(rounds) if np.mean(list(at("proposed", r, "miou").values())) >= last),
        None,
    )
    clicks = lambda strategy, r: np.mean(list(at(strategy, r, "clicks").values()))
    return (
        f"Random clicks reach {last:.4f} with {clicks('random', rounds - 1):.0f} clicks; "
        f"proposed clicks "
        + (
            f"reach it at round {reach}, with {clicks('proposed', reach):.0f} "
            f"({clicks('proposed', reach) / clicks('random', rounds - 1):.0%} of them; of the "
            f"clicks added after round 0, {reach * added} against "
            f"{(rounds - 1) * added}, {reach / (rounds - 1):.0%})."
            if reach
            else "do not reach it."
            if reach is None
            else "are there at round 0: random clicks' last round scored below their round 0, "
            "so this says nothing about clicks saved."
        )
    )


def loop_target(at, rounds, goal, seeds):
    """The loop's target: proposed − random at the last round, met or missed."""
    gain = np.mean(
        differences(at("proposed", rounds - 1, "miou"), at("random", rounds - 1, "miou"))
    )
    return (
        f"Target: proposed − random ≥ +{goal:.2f} mIoU at the last round, {seeds} "
        f"seed{'s' * (seeds > 1)}: {gain:+.4f}, "
        + ("met" if gain >= goal else f"missed by {goal - gain:.4f}")
        + (" (one seed: noise unknown; the target is asked of 3 seeds)." if seeds == 1 else ".")
    )


def last_round(folder, name, curves, seeds, r, without_tta, dense_targets):
    """Per-class IoU of the last round by strategy, and the dense model of the same set beside it
    (scored as the loop's rounds were: without TTA if they were), against the share of its mIoU
    that `dense_targets` sets for this set (the last round's proposed clicks at least that)."""
    mean = lambda strategy, key, k=None: np.mean(
        [
            curves[strategy][s][r][key] if k is None else curves[strategy][s][r][key][k]
            for s in seeds
        ]
    )
    classes = list(curves["proposed"][seeds[0]][r]["per_class"])
    lines = [
        "Test IoU per class at the last round, proposed / random: "
        + ", ".join(
            f"{k} {mean('proposed', 'per_class', k):.3f} / {mean('random', 'per_class', k):.3f}"
            for k in classes
        )
        + "."
    ]
    dense = run_groups(folder).get(f"{name}/dense", [])
    if dense:
        test = [
            run["test_without_tta"] if without_tta and "test_without_tta" in run else run["test"]
            for run in dense
        ]
        miou, accuracy = (
            np.mean([t["miou"] for t in test]),
            np.mean([t["pixel_accuracy"] for t in test]),
        )
        lines += [
            "",
            f"Against the dense model ({name}/dense: every pixel of every training tile, "
            f"{len(dense)} seed{'s' * (len(dense) > 1)}, "
            f"{dense[0]['machine']}{', without TTA' * without_tta}): test mIoU {miou:.4f}, pixel "
            f"accuracy {accuracy:.4f}. The last round's proposed clicks: mIoU "
            f"{mean('proposed', 'miou'):.4f} ({mean('proposed', 'miou') / miou:.2f}x), pixel "
            f"accuracy {mean('proposed', 'pixel_accuracy'):.4f}; random clicks: "
            f"{mean('random', 'miou'):.4f} ({mean('random', 'miou') / miou:.2f}x), "
            f"{mean('random', 'pixel_accuracy'):.4f}.",
        ]
        if name in dense_targets:
            share, goal = mean("proposed", "miou") / miou, dense_targets[name]
            lines += [
                "",
                f"Target: proposed clicks ≥ {goal:.2f}x the dense model's mIoU: {share:.3f}x, "
                + (
                    "met."
                    if share >= goal
                    else f"missed by {goal - share:.3f}x ({(goal - share) * miou:.4f} mIoU)."
                ),
            ]
    return lines


def loop_train_flags(loop, config):
    """The train.py flags of a loop's rounds as they must read today to repeat them: its
    --train-flags and, where a --data default has changed since, the value its rounds had (read
    from its first round's metrics.json: its clicks drawn, as scripts/active.py draws them)."""
    flags, first = config["train_flags"], next(loop.glob("start-seed*/metrics.json"), None)
    if first is None:
        return flags
    drawn = f"--points-per-class {config['start_per_class']}"
    command = f"train.py --data {config['data']} {drawn} {flags}"
    return (
        flags + as_run_today(command, json.loads(first.read_text())["config"])[len(command) :]
    ).strip()


def without_test(point):
    """A round's wall time less its scoring of the test split."""
    return point["wall_s"] - point["test_scoring_s"]


def warm_section(folder, path, config, curves):
    """A loop whose rounds after the first trained warm: per seed and round, the clicks, test mIoU
    and wall time; the last round from scratch on the same clicks beside it; the two targets of
    a warm round (a quarter of the time, test mIoU within 0.01 of the round from scratch)."""
    log = path.parent / "active.log"
    _, when, command = header(log) if log.exists() else (None, "", "")
    lines = [
        f"## Warm rounds: {path.parent.name}",
        "",
        f"`{command}` — {when} ([log]({log.relative_to(folder)})). Round 0 trains from scratch on "
        f"{config['start_per_class']} random clicks per class per tile; each later round adds "
        f"{config['clicks']} clicks and trains warm from the round before (`train.py --init`, "
        f"its short schedule); the last round also from scratch on the same clicks. Wall time is "
        f"the whole `train.py` process (scoring included), on the machine of the round's record; "
        f"the ratio is also given without the test split's scoring, which the simulation measures "
        f"with and a person labelling their own tiles (no test masks) does not wait for.",
        "",
        "| strategy | seed | round | clicks | test mIoU | wall | from scratch: test mIoU | wall | "
        "warm / scratch wall | the same, test scoring left out | warm − scratch mIoU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows, ratios, untested, gaps = warm_rows(curves)
    lines += rows
    if ratios:
        lines += ["", warm_targets(ratios, untested, gaps)]
    return lines + ["", f"![{path.parent.name}]({path.parent.relative_to(folder)}/curves.png)", ""]


def warm_rows(curves):
    """The table's rows, a round each, and over the rounds that have one from scratch beside them:
    the wall-time ratios, the same with the test scoring left out, and the mIoU gaps."""
    rows, ratios, untested, gaps = [], [], [], []
    for strategy, by_seed in curves.items():
        for seed, points in sorted(by_seed.items(), key=lambda item: int(item[0])):
            for r, point in enumerate(points):
                cold = point.get("scratch")
                cells = ["", "", "", "", ""]
                if cold:
                    ratio, gap = point["wall_s"] / cold["wall_s"], point["miou"] - cold["miou"]
                    ratios.append(ratio)
                    gaps.append(gap)
                    left_out = "—"
                    if "test_scoring_s" in point and "test_scoring_s" in cold:
                        untested.append(without_test(point) / without_test(cold))
                        left_out = f"{untested[-1]:.2f}"
                    cells = [
                        f"{cold['miou']:.4f}",
                        f"{cold['wall_s']:.0f} s",
                        f"{ratio:.2f}",
                        left_out,
                        f"{gap:+.4f}",
                    ]
                rows.append(
                    f"| {strategy} | {seed} | {r}{' (warm)' * bool(point.get('warm'))} | "
                    f"{point['clicks']} | {point['miou']:.4f} | {point['wall_s']:.0f} s | "
                    + " | ".join(cells)
                    + " |"
                )
    return rows, ratios, untested, gaps


def warm_targets(ratios, untested, gaps):
    """The two targets of a warm round, met or missed over the seeds."""
    met = lambda ok: "met" if ok else "missed"
    time = f"a warm round ≤ 0.25 of the round from scratch's wall time — worst {max(ratios):.2f}, "
    time += met(max(ratios) <= 0.25)
    if len(untested) == len(ratios):
        time += f" (test scoring left out: worst {max(untested):.2f}, "
        time += met(max(untested) <= 0.25) + ")"
    score = f"the last round's test mIoU within 0.01 of it or above — worst {min(gaps):+.4f}, "
    score += met(min(gaps) >= -0.01)
    seeds = f"{len(ratios)} seed{'s' * (len(ratios) > 1)}"
    return f"Targets (docs/suggest.md, Warm rounds), over {seeds}: {time}; {score}."
