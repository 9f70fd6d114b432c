"""lib/settings.py: one table of a run's settings, and what is derived from it — the command line,
the checks, a run's full config, the argv that repeats it and its folder's name."""

import argparse
import json

import pytest

from lib.settings import (
    DATA_DEFAULTS,
    DEFAULTS,
    FLEXIBLE,
    SETTINGS,
    WARM_DEFAULTS,
    add_options,
    as_argv,
    check_config,
    run_name,
    settings,
)


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(points=10, learning_rate=0.1), "unknown config keys ['learning_rate']"),
        (dict(points=10, lr=0.0), "--lr must be > 0, got 0.0"),
        (dict(points=10, weight_decay=-1.0), "--weight-decay must be >= 0, got -1.0"),
        (dict(points=10, loss="crf"), "unknown loss 'crf': use pce or pce+crf"),
        (dict(points=10, loss="pce+crf", crf_weight=-1.0), "--crf-weight must be >= 0, got -1.0"),
        (dict(points=10, loss="pce+crf", crf_sigma_xy=0.0), "--crf-sigma-xy must be > 0, got 0.0"),
        (dict(points=10, crf_sigma_band=-2.0), "--crf-sigma-band must be > 0, got -2.0"),
        (dict(points=10, strategy="grid"), "unknown strategy 'grid': use random or stratified"),
        (dict(points=10, tta="yes"), "tta must be True or False, got 'yes'"),
    ],
)
def test_config_checks_name_the_bad_value(config, message):
    with pytest.raises(ValueError) as error:
        check_config({**DEFAULTS, **config})
    assert message in str(error.value)


def test_the_parser_is_the_table():
    parser = add_options(argparse.ArgumentParser())
    given = vars(parser.parse_args([]))
    assert set(given) == set(DEFAULTS)
    # a --data or --init default is left unset, so that settings() can tell it was not given
    assert {k: v for k, v in given.items() if k not in FLEXIBLE} == {
        k: v for k, v in DEFAULTS.items() if k not in FLEXIBLE
    }
    assert all(given[k] is None for k in FLEXIBLE)
    assert settings(given) == DEFAULTS
    drawn = {**given, "data": "d", "points_per_class": 10}  # clicks the program draws
    assert {k: settings(drawn)[k] for k in DATA_DEFAULTS} == DATA_DEFAULTS
    assert all(s.help for s in SETTINGS)


@pytest.mark.parametrize(
    "config",
    [
        dict(points=200),
        dict(points_per_class=10, strategy="stratified", loss="pce+crf", lr=5e-4, seed=2),
        dict(data="tiles", points_per_class=10, tta=False, prior_shift=0.0, epochs=10),
        dict(data="tiles", points_file=["a.gpkg", "b.gpkg"], ema=True, paste=4),
    ],
)
def test_the_argv_repeats_the_config(config):
    parser = add_options(argparse.ArgumentParser())
    full = settings(config)
    assert settings(vars(parser.parse_args(as_argv(full)))) == full


def test_a_run_is_named_by_its_labels_what_differs_from_its_defaults_and_its_seed():
    assert run_name(settings(dict(points=200))) == "points200-seed0"
    crf = settings(dict(points_per_class=10, loss="pce+crf", seed=1))
    assert run_name(crf) == "10perclass-random-loss-pce+crf-seed1"
    # a --data run against the --data defaults; its folder is not in the name
    assert run_name(settings(dict(data="tiles", points_per_class=10))) == "10perclass-random-seed0"
    tile_recipe = settings(dict(data="tiles", points_per_class=10, epochs=10))
    assert run_name(tile_recipe) == "10perclass-random-epochs-10-seed0"
    # every setting that is not the default names the run: two such runs never share a folder
    fp32 = settings(dict(points_per_class=10, precision="fp32", weights="none"))
    assert run_name(fp32) == "10perclass-random-precision-fp32-weights-none-seed0"


def test_a_warm_round_sees_test_as_its_starts_val_chose(tmp_path):
    given = vars(add_options(argparse.ArgumentParser()).parse_args(["--data", "d"]))
    start = tmp_path / "start"
    start.mkdir()
    (start / "metrics.json").write_text(json.dumps(dict(tta_zoom_out_chosen=1)))
    for init in (start, start / "model.pt"):  # the run's folder, or its model.pt
        warm = settings({**given, "init": str(init)})
        assert (warm["tta_zoom_out"], warm["zoom_on_val"]) == (1, False)
        assert run_name({**warm, "points_per_class": 2}) == "2perclass-random-warm-seed0"
    told = settings({**given, "init": str(start), "tta_zoom_out": 3})  # a flag given wins
    assert (told["tta_zoom_out"], told["zoom_on_val"]) == (3, DATA_DEFAULTS["zoom_on_val"])
    (start / "metrics.json").write_text(json.dumps(dict(test={})))  # its start chose no view
    assert settings({**given, "init": str(start)})["zoom_on_val"] == DATA_DEFAULTS["zoom_on_val"]
    # and its start's tile prior: none before there was one, else as its val chose it
    assert settings({**given, "init": str(start)})["tile_prior"] == 0.0
    chose = dict(config=dict(tile_prior=2.0), tile_prior_chosen=0.0)
    (start / "metrics.json").write_text(json.dumps(chose))
    assert settings({**given, "init": str(start)})["tile_prior"] == 0.0
    (start / "metrics.json").write_text(json.dumps(dict(chose, tile_prior_chosen=2.0)))
    assert settings({**given, "init": str(start)})["tile_prior"] == 2.0
    assert settings({**given, "init": str(start), "tile_prior": 1.0})["tile_prior"] == 1.0
    (start / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json is not a run's metrics.json"):
        settings({**given, "init": str(start)})


def test_a_warm_round_takes_the_warm_schedule_unless_a_flag_says_otherwise():
    given = vars(add_options(argparse.ArgumentParser()).parse_args(["--data", "d"]))
    warm = settings({**given, "init": "runs/round1"})
    assert {k: warm[k] for k in WARM_DEFAULTS} == WARM_DEFAULTS
    assert warm["epochs"] < settings(given)["epochs"] and warm["lr"] < DEFAULTS["lr"]
    assert warm["tta"] == DATA_DEFAULTS["tta"]  # the rest: the --data defaults
    told = settings({**given, "init": "runs/round1", "epochs": 7, "lr": 1e-3})
    assert (told["epochs"], told["lr"]) == (7, 1e-3)
    assert run_name({**warm, "points_per_class": 2}) == "2perclass-random-warm-seed0"
    assert run_name({**told, "points_per_class": 2}) == "2perclass-random-epochs-7-warm-seed0"
