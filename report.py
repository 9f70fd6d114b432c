"""The report's experiments on paper: which settings its tables compare, the records of finished
runs (<out>/runs.jsonl), and the tables and figures made from them. No training happens here:
experiments.py trains what these tables need, then calls write_all.

    python report.py results        re-render results/tables.md and the figures

Every cell is mean ± std over the seeds that finished (sample std, n - 1). Differences between
two settings are paired by seed (same scenes, same test set) and called "within noise" when
|mean| <= 2 standard errors of the paired differences; a single seed cannot say, and says so.
"""
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from data import CLASSES
from tiles import PALETTE
from train import DEFAULTS, save_atomic

# what experiments.py runs: the report's settings, and the numbers the report printed for them
OUT = "results"
DENSITY_POINTS = (50, 200, 500, 1000)
STRATEGY_POINTS = (5, 10, 20)
FINAL = dict(points_per_class=10, strategy="random")
REGULARISED = [(f"{k} pts/class", dict(points_per_class=k, strategy="random")) for k in STRATEGY_POINTS] + \
              [("200 pts/image", dict(points=200))]
QUICK = dict(train_size=8, val_size=4, test_size=4, image_size=64, epochs=1, batch_size=4)
REPORT_DENSITY_MIOU = {50: 0.8151, 200: 0.9157, 500: 0.9248, 1000: 0.9417}
REPORT_FINAL = dict(miou=0.9290, pixel_accuracy=0.9716)

COLOURS = PALETTE[:len(CLASSES)]       # Urban red, Vegetation green, Water blue, Bare Soil tan, Road grey


# The records: one JSON line per finished run in <out>/runs.jsonl, found again by `key`.

def key(config):
    """What identifies a run: its training settings, not where it writes or which device it used."""
    full = {**DEFAULTS, **config}
    unused = ("out", "device") + (() if full["loss"] == "pce+crf" else ("crf_weight", "crf_sigma_xy", "crf_sigma_band"))
    return json.dumps({k: v for k, v in sorted(full.items()) if k not in unused})


def load_records(path):
    """Finished runs by key. A line cut short by a crash is skipped, not fatal."""
    records = {}
    if path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
                # a setting added since the run was recorded takes its default, which by convention
                # is the old behaviour; a default whose value changed is still told apart
                records[key({**DEFAULTS, **json.loads(record["key"])})] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                print(f"{path}:{number}: skipping an unreadable record (interrupted write?)", file=sys.stderr)
    return records


def append_record(path, record):
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():                                   # finish a line a crash left cut short
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


# a setting asked for explicitly -> (what the run records, the value recorded when it got just that)
RESOLVED = {"weights": ("encoder_init", {"none": "random"}), "precision": ("precision", {"fp32": "fp32", "bf16": "bf16"})}


def same_as_done(config, records):
    """A run that asks for a setting explicitly needs no training when the run with that setting's
    default already got exactly it (ImageNet weights asked, unreachable, random init used; precision
    auto, bf16 chosen): that run already is it, number for number."""
    for setting, (recorded, got) in RESOLVED.items():
        if config.get(setting) in got:
            twin = records.get(key({**config, setting: DEFAULTS[setting]}))
            if twin and twin["metrics"].get(recorded) == got[config[setting]]:
                return twin
    return None


def mean_std(values):
    values = list(values.values()) if isinstance(values, dict) else values
    if not values:
        return "not run yet"
    defined = [v for v in values if v is not None]    # None: a ratio with nothing to count
    if not defined:
        return "undefined"
    note = f" ({len(defined)} of {len(values)} seeds defined)" if len(defined) < len(values) else ""
    if len(defined) == 1:
        return f"{defined[0]:.4f} ({note[2:-1] or '1 seed'})"
    return f"{np.mean(defined):.4f} ± {np.std(defined, ddof=1):.4f}{note}"


def paired(a, b):
    """a - b on the seeds both have ({seed: value} each): 'mean ± std (verdict)'."""
    d = differences(a, b)
    if len(d) < 2:
        return f"{d[0]:+.4f} (1 seed: noise unknown)" if d else "not run yet"
    mean, std = np.mean(d), np.std(d, ddof=1)
    verdict = "within noise" if abs(mean) <= 2 * std / math.sqrt(len(d)) else "beyond noise"
    return f"{mean:+.4f} ± {std:.4f} ({verdict})"


class Results:
    def __init__(self, records, seeds, quick, precision="auto"):
        self.records, self.seeds, self.extra = records, seeds, QUICK if quick else {}
        self.precision = precision          # as experiments.py was asked: the runs' keys hold it

    def values(self, config, *path):
        """{seed: metrics[path[0]][path[1]]...} over the finished seeds of a configuration."""
        found = {}
        for seed in range(self.seeds):
            full = {"precision": self.precision, **config, **self.extra, "seed": seed}
            record = self.records.get(key(full)) or same_as_done(full, self.records)
            if record:
                value = record["metrics"]
                for step in path:
                    value = value[step]
                found[seed] = value
        return found


def tables(r):
    lines = ["# Results", "", "Mean ± std over seeds; differences paired by seed. Generated by report.py from runs.jsonl.", ""]
    lines += ["## Table 1 — point density (random points per image)", "",
              "| points/image | labeled fraction | test mIoU | pixel accuracy | mIoU gain over previous row | report mIoU (1 run) |",
              "|---|---|---|---|---|---|"]
    previous = None
    for p in DENSITY_POINTS:
        c = dict(points=p)
        miou = r.values(c, "test", "miou")
        gain = paired(miou, previous) if previous is not None else "—"
        lines.append(f"| {p} | {mean_std(r.values(c, 'labeled_fraction'))} | {mean_std(miou)} | "
                     f"{mean_std(r.values(c, 'test', 'pixel_accuracy'))} | {gain} | {REPORT_DENSITY_MIOU[p]:.4f} |")
        previous = miou
    lines += ["", "## Table 2 — sampling strategy (points per class)", "",
              "| points/class | random mIoU | stratified mIoU | random pixel acc. | stratified pixel acc. | stratified − random mIoU |",
              "|---|---|---|---|---|---|"]
    for k in STRATEGY_POINTS:
        rnd, strat = dict(points_per_class=k, strategy="random"), dict(points_per_class=k, strategy="stratified")
        lines.append(f"| {k} | {mean_std(r.values(rnd, 'test', 'miou'))} | {mean_std(r.values(strat, 'test', 'miou'))} | "
                     f"{mean_std(r.values(rnd, 'test', 'pixel_accuracy'))} | "
                     f"{mean_std(r.values(strat, 'test', 'pixel_accuracy'))} | "
                     f"{paired(r.values(strat, 'test', 'miou'), r.values(rnd, 'test', 'miou'))} |")
    lines += ["", "## Table 3 — final model (10 random points per class)", "",
              "| class | IoU | precision | recall |", "|---|---|---|---|"]
    for c in CLASSES:
        lines.append(f"| {c} | " + " | ".join(mean_std(r.values(FINAL, "test", "per_class", c, m))
                                               for m in ("iou", "precision", "recall")) + " |")
    lines += ["", f"mIoU {mean_std(r.values(FINAL, 'test', 'miou'))}, pixel accuracy "
              f"{mean_std(r.values(FINAL, 'test', 'pixel_accuracy'))} "
              f"(report, 1 run: mIoU {REPORT_FINAL['miou']:.4f}, pixel accuracy {REPORT_FINAL['pixel_accuracy']:.4f})."]
    lines += ["", "## Baselines (not in the report)", "",
              "| supervision | encoder init used | test mIoU | pixel accuracy | share of dense mIoU |", "|---|---|---|---|---|"]
    dense_miou = r.values(dict(dense=True), "test", "miou")
    rows = [("full masks (dense CE)", dict(dense=True)), ("10 pts/class, ImageNet weights asked", FINAL),
            ("10 pts/class, random init", dict(FINAL, weights="none"))]
    for label, c in rows:
        inits = sorted(set(r.values(c, "encoder_init").values()))
        miou = r.values(c, "test", "miou")
        if c is FINAL and inits and inits != ["imagenet"]:
            lines.append(f"| {label} | {', '.join(inits)} | ImageNet weights unavailable on this machine: "
                         f"not measured (these runs fell back to random init) | — | — |")
            continue
        share = {s: miou[s] / dense_miou[s] for s in miou if dense_miou.get(s)}
        lines.append(f"| {label} | {', '.join(inits) or '—'} | {mean_std(miou)} | "
                     f"{mean_std(r.values(c, 'test', 'pixel_accuracy'))} | {mean_std(share)} |")
    lines += regularised_table(r)
    lines += ["", "## Table 5 — arithmetic precision (final model, 10 random points per class)", "",
              "| precision | test mIoU | pixel accuracy | wall time per run |", "|---|---|---|---|"]
    runs = {p: dict(FINAL, precision=p) for p in ("fp32", "bf16")}
    for p, c in runs.items():
        wall = list(r.values(c, "wall_time_s").values())
        lines.append(f"| {p} | {mean_std(r.values(c, 'test', 'miou'))} | {mean_std(r.values(c, 'test', 'pixel_accuracy'))} "
                     f"| {f'{np.mean(wall):.0f} s' if wall else 'not run yet'} |")
    lines += ["", "bf16 − fp32: mIoU " + paired(*(r.values(runs[p], "test", "miou") for p in ("bf16", "fp32"))) +
              ", pixel accuracy " + paired(*(r.values(runs[p], "test", "pixel_accuracy") for p in ("bf16", "fp32"))) + "."]
    seconds = [rec["metrics"]["wall_time_s"] for rec in r.records.values()]
    lines += ["", f"{len(seconds)} runs recorded, {sum(seconds) / 60:.1f} min of training in total.", ""]
    return "\n".join(lines)


def regularised_table(r):
    crf = lambda c: dict(c, loss="pce+crf")
    lines = ["", "## Table 4 — pCE vs pCE + CRF (the regularised loss of crf.py)", "",
             "| labels | pCE mIoU | pCE + CRF mIoU | CRF − pCE mIoU | wall time per run, pCE → pCE + CRF |",
             "|---|---|---|---|---|"]
    for label, c in REGULARISED:
        wall = [np.mean(list(r.values(x, "wall_time_s").values()) or [np.nan]) for x in (c, crf(c))]
        lines.append(f"| {label} | {mean_std(r.values(c, 'test', 'miou'))} | {mean_std(r.values(crf(c), 'test', 'miou'))} | "
                     f"{paired(r.values(crf(c), 'test', 'miou'), r.values(c, 'test', 'miou'))} | "
                     f"{wall[0]:.0f} s → {wall[1]:.0f} s |")
    lines += ["", "At 10 random points per class, per class (pCE → pCE + CRF):", "",
              "| class | IoU, pCE | IoU, pCE + CRF | CRF − pCE IoU | precision | recall |", "|---|---|---|---|---|---|"]
    for k in CLASSES:
        v = {(m, x): r.values(c, "test", "per_class", k, m) for m in ("iou", "precision", "recall")
             for x, c in (("pce", FINAL), ("crf", crf(FINAL)))}
        mean = lambda d: f"{np.mean([x for x in d.values() if x is not None]):.3f}" if d else "—"
        lines.append(f"| {k} | {mean_std(v['iou', 'pce'])} | {mean_std(v['iou', 'crf'])} | "
                     f"{paired(v['iou', 'crf'], v['iou', 'pce'])} | {mean(v['precision', 'pce'])} → "
                     f"{mean(v['precision', 'crf'])} | {mean(v['recall', 'pce'])} → {mean(v['recall', 'crf'])} |")
    return lines


def figures(r, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in zip(axes, ("miou", "pixel_accuracy"), ("test mIoU", "pixel accuracy")):
        points = [p for p in DENSITY_POINTS if r.values(dict(points=p), "test", metric)]
        values = [list(r.values(dict(points=p), "test", metric).values()) for p in points]
        ax.errorbar(points, [np.mean(v) for v in values], yerr=[std(v) for v in values], marker="o", capsize=4, label="ours")
        if metric == "miou":
            ax.plot(list(REPORT_DENSITY_MIOU), list(REPORT_DENSITY_MIOU.values()), "k--", marker="x", label="report")
        ax.set(xscale="log", xlabel="random points per image", ylabel=label, title=f"Figure 1: {label} vs point density")
        ax.legend()
    save(fig, out / "fig1_density.png")

    fig, (bars, diff) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(STRATEGY_POINTS))
    for offset, strategy in ((-0.2, "random"), (0.2, "stratified")):
        v = [list(r.values(dict(points_per_class=k, strategy=strategy), "test", "miou").values())
             for k in STRATEGY_POINTS]
        bars.bar(x + offset, [np.mean(a) if a else 0 for a in v], 0.4, yerr=[std(a) for a in v], capsize=4, label=strategy)
    d = [differences(r.values(dict(points_per_class=k, strategy="stratified"), "test", "miou"),
                     r.values(dict(points_per_class=k, strategy="random"), "test", "miou")) for k in STRATEGY_POINTS]
    diff.bar(x, [np.mean(a) if len(a) else 0 for a in d], 0.5, yerr=[std(a) for a in d], capsize=4, color="grey")
    diff.axhline(0, color="k", lw=0.8)
    bars.set(xticks=x, xticklabels=STRATEGY_POINTS, xlabel="points per class", ylabel="test mIoU",
             title="Figure 2: random vs stratified")
    bars.legend()
    diff.set(xticks=x, xticklabels=STRATEGY_POINTS, xlabel="points per class", ylabel="stratified − random mIoU",
             title="difference (paired by seed)")
    save(fig, out / "fig2_strategy.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    iou = [list(r.values(FINAL, "test", "per_class", c, "iou").values()) for c in CLASSES]
    ax.bar(CLASSES, [np.mean([v for v in a if v is not None]) if a else 0 for a in iou],
           yerr=[std([v for v in a if v is not None]) for a in iou], capsize=4, color=COLOURS)
    miou = list(r.values(FINAL, "test", "miou").values())
    if miou:
        ax.axhline(np.mean(miou), color="k", ls="--", label=f"mIoU {np.mean(miou):.3f}")
        ax.legend()
    ax.set(ylabel="test IoU", ylim=(0, 1), title="Figure 3: per-class IoU, 10 random points per class")
    save(fig, out / "fig3_per_class.png")
    prediction_panel(r, out, plt, [("prediction", FINAL)], out / "fig4_predictions.png")
    prediction_panel(r, out, plt, [("pCE", FINAL), ("pCE + CRF", dict(FINAL, loss="pce+crf"))],
                     out / "fig5_regularised.png", clicks=False)


def prediction_panel(r, out, plt, runs, path, clicks=True):
    """image | dense ground truth | [clicks, as sampled for training] | each run's prediction, for
    four test scenes; runs = [(title, config)], their seed-0 models."""
    import torch
    from matplotlib.colors import ListedColormap
    from data import make_split, sample_points
    from train import predict_tile
    from unet import UNet

    models = []
    for title, config in runs:
        checkpoint_path = Path(r.values(config, "config", "out").get(0) or out / "runs" / "missing") / "model.pt"
        if not checkpoint_path.exists():
            print(f"no {checkpoint_path}: {path.name} skipped (train {describe(config)}, seed 0, to draw it)")
            return
        checkpoint = torch.load(checkpoint_path, weights_only=True)
        models.append((title, UNet(len(checkpoint["classes"]), weights=None)))
        models[-1][1].load_state_dict(checkpoint["state_dict"])
    size = checkpoint["image_size"]
    images, masks = make_split("test", 4, seed=0, image_size=size)
    cmap = ListedColormap(COLOURS)
    columns = 2 + clicks + len(models)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.5 * columns, 2.6 * len(images)))
    for row, (image, mask) in enumerate(zip(images, masks)):
        panels = [("image", image.transpose(1, 2, 0), None), ("dense ground truth", mask, cmap)]
        if clicks:
            panels.append(("clicks (10/class)", image.transpose(1, 2, 0) / 255 * 0.5, None))
        panels += [(title, predict_tile(model.eval(), image, size).argmax(0).numpy(), cmap) for title, model in models]
        for ax, (title, picture, colours) in zip(axes[row], panels):
            ax.imshow(picture, cmap=colours, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(title if row == 0 else "")
        if clicks:
            shown = sample_points(mask, np.random.default_rng(row), **FINAL)
            axes[row][2].scatter(shown.cols, shown.rows, c=[COLOURS[c] for c in shown.classes], s=12,
                                 edgecolors="white", linewidths=0.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS]
    fig.legend(handles, CLASSES, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(CLASSES))
    save(fig, path)


def describe(config):
    return " ".join(f"{k}={v}" for k, v in config.items())


def differences(a, b):
    return [a[s] - b[s] for s in sorted(a) if s in b]


def std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def save(fig, path):
    fig.tight_layout()
    save_atomic(lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), path)
    import matplotlib.pyplot as plt
    plt.close(fig)


def write_all(out, records, seeds, quick, precision="auto"):
    r = Results(records, seeds, quick, precision)
    text = tables(r)
    save_atomic(lambda f: f.write(text.encode()), out / "tables.md")
    figures(r, out)
    print(f"tables: {out / 'tables.md'}; figures: {', '.join(sorted(p.name for p in out.glob('fig*.png')))}")


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else OUT)
    records = load_records(folder / "runs.jsonl")
    quick = any(rec.get("quick") for rec in records.values())
    asked = [rec["config"].get("precision", "auto") for rec in records.values()]
    write_all(folder, records, max([rec["config"]["seed"] + 1 for rec in records.values()] or [1]), quick,
              max(set(asked), key=asked.count) if asked else "auto")
