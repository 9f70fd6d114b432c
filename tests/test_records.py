"""What the results pages say a run was: its method (records.method) and its command as it repeats
the run today (records.as_run_today)."""

from reporting import records


def test_the_method_column_names_every_setting_that_moves_the_scores():
    config = dict(
        data="tiles", augment="dihedral", epochs=15, tta=True, tta_zoom_out=3, prior_shift=0.5
    )
    assert records.method(dict(config=config)) == (
        "U-Net, pce; dihedral, 15 epochs, TTA, test tiles also shrunk 3×, prior shift 0.5"
    )
    skips = dict(image_size=224, image_skip=True, standardise="window", paste=32)
    assert records.method(dict(config=skips)) == (
        "U-Net, pce; image size 224, image skip, each window standardised, 32 boxes pasted"
    )
    geometric = dict(prior_shift=0.5, prior_estimate="geometric")
    assert (
        records.method(dict(config=geometric)) == "U-Net, pce; prior shift 0.5 (geometric shares)"
    )
    levers = dict(tta=True, tta_zoom_out=3, zoom_on_val=True, photometric=0.2, forest_weight=0.25)
    assert records.method(dict(config=dict(levers, tile_prior=2))) == (
        "U-Net, pce; TTA, test tiles also shrunk 3× if val chose it, photometric ±0.2, "
        "the pixel forest fused in ×0.25, tile prior 2 if val chose it"
    )
    assert records.method(dict(config={})) == "U-Net, pce"


def test_a_logged_data_command_reads_as_it_repeats_its_run_today():
    # a record of the tile recipe, made when it was --data's default: no prior shift or zoom keys
    tile = dict(data="dd", points_per_class=10, augment="dihedral", epochs=10, tta=True)
    command = "python train.py --data dd --points-per-class 10 --seed 1 --out r"
    pins = (
        " --epochs 10 --average-last 0 --prior-shift 0 --forest-weight 0 --tta-zoom-out 1"
        " --no-zoom-on-val --tile-prior 0"
    )
    assert records.as_run_today(command, tile) == command + pins
    # the shift is pinned first, and at 0 it has no shares to pick: no --prior-estimate
    chosen = dict(tile, epochs=15, prior_shift=0.5, tta_zoom_out=3)
    # before the forest, the view on val and the tile prior
    unfused = " --forest-weight 0 --no-zoom-on-val --tile-prior 0"
    assert records.as_run_today(command, chosen) == (
        command + " --average-last 0 --prior-shift 0.5 --prior-estimate em" + unfused
    )
    averaged = dict(chosen, prior_shift=1.0, prior_estimate="mean", average_last=5)
    assert records.as_run_today(command, averaged) == command + unfused
    fused = dict(averaged, forest_weight=0.5, zoom_on_val=True)
    assert records.as_run_today(command, fused) == command + " --tile-prior 0"
    assert records.as_run_today(command, dict(fused, tile_prior=2.0)) == command
    assert records.as_run_today(command + pins, tile) == command + pins
    dense = dict(data="dd", dense=True, augment="dihedral", epochs=10, tta=True)
    dense_command = "python train.py --data dd --dense"
    assert records.as_run_today(dense_command, dense) == (
        dense_command + " --epochs 10 --average-last 0 --tta-zoom-out 1 --no-zoom-on-val"
        " --tile-prior 0"
    )
    no_tta = dict(tile, tta=False)
    assert records.as_run_today(command + " --no-tta", no_tta).endswith(
        "--epochs 10 --average-last 0 --prior-shift 0" + unfused
    )
    # neither synthetic runs nor other scripts are touched
    assert records.as_run_today("python train.py --points 200", dict(points=200)) == (
        "python train.py --points 200"
    )
    assert (
        records.as_run_today("python baseline.py --data dd", tile) == "python baseline.py --data dd"
    )
