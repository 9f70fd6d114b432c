"""The report's figures, drawn from the run records (matplotlib is imported here and only here).

Figure 1: mIoU and pixel accuracy against point density, beside the report's numbers. Figure 2:
random vs stratified clicks, and their paired difference. Figure 3: per-class IoU of the final
model. Figures 4 and 5: four test scenes with their ground truth, the clicks and the seed-0
models' predictions (pCE; pCE vs pCE + CRF), drawn only where those checkpoints exist. And the
labelling loop's curves (active.py): test mIoU against clicks labelled, per strategy.
"""

from pathlib import Path

import numpy as np

from clicks import sample_points
from data import CLASSES, COLOURS, make_split
from lib.checkpoint import load_checkpoint
from lib.cli import atomic, need
from lib.evaluation import predict_tile
from reporting.paper import DENSITY_POINTS, FINAL, REPORT_DENSITY_MIOU, STRATEGY_POINTS
from reporting.records import differences


def pyplot():
    """matplotlib's pyplot, drawing to files (no display)."""
    need("matplotlib", "drawing the figures").use("Agg")
    return need("matplotlib.pyplot", "drawing the figures")


def figures(r, out):
    """Figures 1-5 into `out`, from the records in `r` (reporting.paper_tables.Results)."""
    plt = pyplot()
    density_figure(r, plt, out / "fig1_density.png")
    strategy_figure(r, plt, out / "fig2_strategy.png")
    per_class_figure(r, plt, out / "fig3_per_class.png")
    prediction_panel(r, out, plt, [("prediction", FINAL)], out / "fig4_predictions.png")
    prediction_panel(
        r,
        out,
        plt,
        [("pCE", FINAL), ("pCE + CRF", dict(FINAL, loss="pce+crf"))],
        out / "fig5_regularised.png",
        clicks=False,
    )


def density_figure(r, plt, path):
    """Figure 1: test mIoU and pixel accuracy against random points per image, beside the
    report's."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in zip(axes, ("miou", "pixel_accuracy"), ("test mIoU", "pixel accuracy")):
        points = [p for p in DENSITY_POINTS if r.values(dict(points=p), "test", metric)]
        values = [list(r.values(dict(points=p), "test", metric).values()) for p in points]
        mean_and_spread(ax, points, values, "ours")
        if metric == "miou":
            ax.plot(
                list(REPORT_DENSITY_MIOU),
                list(REPORT_DENSITY_MIOU.values()),
                "k--",
                marker="x",
                label="report",
            )
        ax.set(
            xscale="log",
            xlabel="random points per image",
            ylabel=label,
            title=f"Figure 1: {label} vs point density",
        )
        ax.legend()
    save(fig, path)


def strategy_figure(r, plt, path):
    """Figure 2: random against stratified clicks per class, and their paired difference."""
    fig, (bars, diff) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(STRATEGY_POINTS))
    for offset, strategy in ((-0.2, "random"), (0.2, "stratified")):
        v = [
            list(r.values(dict(points_per_class=k, strategy=strategy), "test", "miou").values())
            for k in STRATEGY_POINTS
        ]
        bars.bar(
            x + offset,
            [np.mean(a) if a else 0 for a in v],
            0.4,
            yerr=[std(a) for a in v],
            capsize=4,
            label=strategy,
        )
    d = [
        differences(
            r.values(dict(points_per_class=k, strategy="stratified"), "test", "miou"),
            r.values(dict(points_per_class=k, strategy="random"), "test", "miou"),
        )
        for k in STRATEGY_POINTS
    ]
    diff.bar(
        x,
        [np.mean(a) if len(a) else 0 for a in d],
        0.5,
        yerr=[std(a) for a in d],
        capsize=4,
        color="grey",
    )
    diff.axhline(0, color="k", lw=0.8)
    for ax, ylabel, title in (
        (bars, "test mIoU", "Figure 2: random vs stratified"),
        (diff, "stratified − random mIoU", "difference (paired by seed)"),
    ):
        ax.set(xticks=x, xticklabels=STRATEGY_POINTS, xlabel="points per class", ylabel=ylabel)
        ax.set_title(title)
    bars.legend()
    save(fig, path)


def per_class_figure(r, plt, path):
    """Figure 3: the final model's IoU per class."""
    fig, ax = plt.subplots(figsize=(7, 4))
    iou = [list(r.values(FINAL, "test", "per_class", c, "iou").values()) for c in CLASSES]
    ax.bar(
        CLASSES,
        [np.mean([v for v in a if v is not None]) if a else 0 for a in iou],
        yerr=[std([v for v in a if v is not None]) for a in iou],
        capsize=4,
        color=COLOURS,
    )
    miou = list(r.values(FINAL, "test", "miou").values())
    if miou:
        ax.axhline(np.mean(miou), color="k", ls="--", label=f"mIoU {np.mean(miou):.3f}")
        ax.legend()
    ax.set(
        ylabel="test IoU", ylim=(0, 1), title="Figure 3: per-class IoU, 10 random points per class"
    )
    save(fig, path)


def prediction_panel(r, out, plt, runs, path, clicks=True):
    """image | dense ground truth | [clicks, as sampled for training] | each run's prediction, for
    four test scenes; runs = [(title, config)], their seed-0 models."""
    from matplotlib.colors import ListedColormap

    models = []
    for title, config in runs:
        checkpoint_path = (
            Path(r.values(config, "config", "out").get(0) or out / "runs" / "missing") / "model.pt"
        )
        if not checkpoint_path.exists():
            print(f"no {checkpoint_path}: {path.name} skipped (train {config}, seed 0, to draw it)")
            return
        model, checkpoint = load_checkpoint(checkpoint_path)
        models.append((title, model))
    size = checkpoint["image_size"]
    images, masks = make_split("test", 4, seed=0, image_size=size)
    cmap = ListedColormap(COLOURS)
    columns = 2 + clicks + len(models)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.5 * columns, 2.6 * len(images)))
    for row, (image, mask) in enumerate(zip(images, masks)):
        panels = [("image", image.transpose(1, 2, 0), None), ("dense ground truth", mask, cmap)]
        if clicks:
            panels.append(("clicks (10/class)", image.transpose(1, 2, 0) / 255 * 0.5, None))
        panels += [
            (title, predict_tile(model, image, size).argmax(0).numpy(), cmap)
            for title, model in models
        ]
        for ax, (title, picture, colours) in zip(axes[row], panels):
            ax.imshow(picture, cmap=colours, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(title if row == 0 else "")
        if clicks:
            shown = sample_points(mask, np.random.default_rng(row), **FINAL)
            axes[row][2].scatter(
                shown.cols,
                shown.rows,
                c=[COLOURS[c] for c in shown.classes],
                s=12,
                edgecolors="white",
                linewidths=0.5,
            )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS]
    fig.legend(handles, CLASSES, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(CLASSES))
    save(fig, path)


def loop_curves(curves, path):
    """Test mIoU against clicks labelled, one line per strategy, mean ± std over seeds
    (active.py)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, by_seed in curves.items():
        rounds = max(len(points) for points in by_seed.values())
        # finished seeds
        by_seed = {seed: points for seed, points in by_seed.items() if len(points) == rounds}
        clicks = [
            np.mean([points[r]["clicks"] for points in by_seed.values()]) for r in range(rounds)
        ]
        miou = [[points[r]["miou"] for points in by_seed.values()] for r in range(rounds)]
        seeds = f"{len(by_seed)} seed{'s' * (len(by_seed) > 1)}"
        mean_and_spread(ax, clicks, miou, f"{strategy} clicks ({seeds})")
    ax.set_xlabel("clicks labelled (training tiles)")
    ax.set_ylabel("test mIoU")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, path)


def mean_and_spread(ax, xs, values, label):
    """The mean of each x's values (one per seed), with their standard deviation as error bars."""
    means, spreads = [np.mean(v) for v in values], [std(v) for v in values]
    ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=4, label=label)


def std(values):
    """Sample standard deviation (n - 1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
