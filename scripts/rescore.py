"""Score a finished train.py run again with what acts after its last epoch, without training it
again: test-time zoom (or val's choice of it), the tile prior, the prior shift and the shares it
shifts to, the forest fused in:
    python -m scripts.rescore RUN_FOLDER --out NEW_FOLDER [--tta-zoom-out 2] [--zoom-on-val]
                              [--tile-prior 2] [--prior-shift 0.5] [--prior-estimate geometric]
                              [--forest-weight 0.5]
A run with --tta-zoom-out K or --prior-shift S trains epoch for epoch as the same run without
them (same seed, same numbers), so RUN's saved model.pt (its best epoch) shifted by S and scored
with K is what that run gives. A run trained with a shift has it in its weights and its record:
to shift again, that shift is taken out first. NEW_FOLDER/metrics.json is RUN's with the new
flags in its config, its test and val-with-TTA scores replaced (and the shift made), the machine
that scored them, `rescored_from` naming RUN, and as its wall time RUN's training time plus the
new scoring. The same tiles and clicks are read from RUN's config, so a run whose data folder has
moved cannot be rescored. A big real set's 15-epoch run costs two hours on a 2-core CPU; its
rescoring, the scoring alone."""

import time
from pathlib import Path

from lib.checkpoint import finished_run, open_run, save_run
from lib.cli import OneLineParser, add_show_test, check_output_folder, guard, run_command
from lib.device import machine
from lib.evaluation import print_table, score_run
from lib.forest import Fusion
from lib.prior import shift_to_pixel_prior, take_out_shift
from lib.settings import add_options, as_argv

# what rescoring can change
AFTER_TRAINING = (
    "tta_zoom_out",
    "zoom_on_val",
    "tile_prior",
    "prior_shift",
    "prior_estimate",
    "forest_weight",
)


def rescore(args):
    run, out = Path(args["run"]), Path(args["out"])
    finished_run(run)  # first: one line if RUN holds no finished run
    if out.resolve() == run.resolve():
        raise ValueError(f"--out {out} is the run itself: give a new folder")
    given = {key: args[key] for key in AFTER_TRAINING if args[key] is not None}
    if not given:
        raise ValueError(
            "nothing to rescore with: give --tta-zoom-out K, --zoom-on-val, --tile-prior S, "
            "--prior-shift S, --prior-estimate E or --forest-weight W"
        )
    check_output_folder(out)
    started = time.time()
    metrics, config, precision, data, model = open_run(run, **given, out=str(out))
    flags = " ".join(as_argv(given))
    print(f"{run}, rescored with {flags} ({precision})", flush=True)
    shifting = "prior_shift" in given or "prior_estimate" in given
    if shifting:  # from the run as trained: its own shift, if any, taken out of its weights
        take_out_shift(model, metrics)
        metrics.pop("prior_shift", None)
    prior = (
        shifting
        and config["prior_shift"]
        and shift_to_pixel_prior(model, data["train"], config, precision)
    )
    fusion = Fusion.for_run(data, config)  # --forest-weight W (as the run's, if not given)

    show_test = args["show_test"]
    test, extra = score_run(model, data, config, precision, fusion, tta=True, show_test=show_test)
    say_scores(metrics, test, extra, data, out, show_test)
    old_scoring = sum(metrics.get("scoring_seconds", {}).values())
    training = metrics["wall_time_s"] - old_scoring
    metrics.update(
        config=config,
        test=test,
        **extra,
        **(dict(prior_shift=prior) if prior else {}),
        rescored_from=str(run),
        rescored_on=machine(next(model.parameters()).device),
        wall_time_s=round(training + sum(extra["scoring_seconds"].values()), 1),
    )
    metrics["rescoring_wall_time_s"] = round(time.time() - started, 1)
    save_run(out, model, data, config, metrics, show_test, fusion)  # as train.py: metrics last
    return metrics


def say_scores(metrics, test, extra, data, out, show_test):
    """val's mIoU (TTA) before and after; test's only with --show-test."""
    if show_test:
        print_table(test, data["classes"], data["scored_on"]["test"])
    if "val_miou_tta" in extra:
        print(
            f"val mIoU (TTA) {metrics.get('val_miou_tta', float('nan')):.4f} -> "
            f"{extra['val_miou_tta']:.4f}"
        )
    if show_test:
        print(f"test mIoU {metrics['test']['miou']:.4f} -> {test['miou']:.4f}", flush=True)
    else:
        print(f"test scored into {out}/metrics.json, not shown (--show-test shows it)", flush=True)


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a finished train.py run folder (metrics.json, model.pt)")
    parser.add_argument("--out", required=True, help="folder for the rescored run")
    # train.py's flags (RUN's own shift taken out); one not given (None): RUN's own, as above
    add_options(parser, names=AFTER_TRAINING)
    add_show_test(parser, "print the test split's scores too")
    run_command(parser, rescore, argv)


if __name__ == "__main__":
    guard(main)
