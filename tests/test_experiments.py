"""experiments.py / records.py / reporting/page.py: the quick end-to-end run, resuming, rendering
and crash safety."""

import json
from pathlib import Path

import pytest

import experiments as ex
import reporting.page as report
from reporting import paper, paper_tables, records, tile_report

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    ex.main(["all", "--quick", "--seeds", "1", "--out", str(out), "--device", "cpu"])
    return out


def test_quick_all_writes_every_table_and_figure(quick_run):
    tables = (quick_run / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Baselines", "Table 4", "Table 5"):
        assert title in tables
    assert "not run yet" not in tables
    for figure in (
        "fig1_density.png",
        "fig2_strategy.png",
        "fig3_per_class.png",
        "fig4_predictions.png",
        "fig5_regularised.png",
    ):
        assert (quick_run / figure).stat().st_size > 1000
    found = records.load_records(quick_run / "runs.jsonl")
    # 4 density + 6 strategy (final is the random-10 run) + dense + 4 pCE+CRF + Table 5's other
    # precision = 16; Table 5's row of the precision auto chose reuses the final run, and the
    # random-init row reuses the ImageNet-asked run when that one fell back to random init (as it
    # does offline), else it is a 17th run
    final = found[records.key(dict(paper.FINAL, precision="auto", seed=0, **records.QUICK))]
    assert len(found) == (16 if final["metrics"]["encoder_init"] == "random" else 17)
    assert {r["metrics"]["precision"] for r in found.values()} == {"fp32", "bf16"}
    assert all(r["quick"] and r["metrics"]["config"]["epochs"] == 1 for r in found.values())
    page = (quick_run / "README.md").read_text()
    assert (
        "### Table 1" in page and "## Single runs" not in page
    )  # experiments' runs are in the tables


def test_rerun_skips_finished_runs(quick_run, capsys):
    before = (quick_run / "runs.jsonl").read_text()
    ex.main(["density", "--quick", "--seeds", "1", "--out", str(quick_run), "--device", "cpu"])
    assert "0 still to train" in capsys.readouterr().out
    assert (quick_run / "runs.jsonl").read_text() == before


def test_truncated_last_record_loses_nothing_before_it(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    a, b, c, d = (records.key(dict(points=p)) for p in (1, 2, 3, 4))
    records.append_record(path, dict(key=a, metrics={}))
    records.append_record(path, dict(key=b, metrics={}))
    with open(path, "a") as f:
        f.write('{"key": "c", "metr')  # the crash happened mid-write
    assert set(records.load_records(path)) == {a, b}
    assert "skipping an unreadable record" in capsys.readouterr().err
    records.append_record(path, dict(key=d, metrics={}))  # the next run starts on a fresh line
    assert set(records.load_records(path)) == {a, b, d}


def test_records_survive_a_new_setting_but_not_a_changed_default(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    records.append_record(path, dict(key=records.key(dict(points=1)), metrics={}))
    monkeypatch.setitem(records.DEFAULTS, "new_setting", "old behaviour")  # added after the run
    assert records.key(dict(points=1)) in records.load_records(path)
    monkeypatch.setitem(records.DEFAULTS, "epochs", 50)  # a default that changed
    assert records.key(dict(points=1)) not in records.load_records(path)


def test_crf_settings_identify_only_crf_runs(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    for loss in ("pce", "pce+crf"):
        records.append_record(path, dict(key=records.key(dict(points=1, loss=loss)), metrics={}))
    # a new CRF default
    monkeypatch.setitem(records.DEFAULTS, "crf_weight", records.DEFAULTS["crf_weight"] + 1)
    found = records.load_records(path)
    assert records.key(dict(points=1)) in found  # pCE runs never used it
    # CRF runs did: they train again
    assert records.key(dict(points=1, loss="pce+crf")) not in found


def test_resume_trains_only_what_is_missing(tmp_path, capsys):
    ex.main(["final", "--quick", "--seeds", "1", "--out", str(tmp_path), "--device", "cpu"])
    ex.main(["final", "--quick", "--seeds", "2", "--out", str(tmp_path), "--device", "cpu"])
    assert "1 still to train" in capsys.readouterr().out
    assert len(records.load_records(tmp_path / "runs.jsonl")) == 2


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.9, 0.8, 0.7], "0.8000 ± 0.1000"),
        ([0.91234], "0.9123 (1 seed)"),
        ([], "not run yet"),
        ([None], "undefined"),
        ([None, 0.5], "0.5000 (1 of 2 seeds defined)"),
        ([0.9, None, 0.7], "0.8000 ± 0.1414 (2 of 3 seeds defined)"),
    ],
)
def test_mean_std_formatting(values, expected):
    assert records.mean_std(values) == expected


def test_paired_difference_says_when_it_is_noise():
    seeds = lambda *v: dict(enumerate(v))
    assert (
        records.paired(seeds(0.80, 0.81, 0.79), seeds(0.70, 0.71, 0.69))
        == "+0.1000 ± 0.0000 (beyond noise)"
    )
    assert records.paired(seeds(0.80, 0.70, 0.75), seeds(0.75, 0.75, 0.75)).endswith(
        "(within noise)"
    )
    # paired by seed
    assert records.paired(seeds(0.8), seeds(0.7, 0.6)) == "+0.1000 (1 seed: noise unknown)"


def test_bad_options_exit_2(capsys):
    for argv in (["everything"], ["all", "--seeds", "0"], ["all", "--device", "gpu"]):
        with pytest.raises(SystemExit) as exit_info:
            ex.main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds must be at least 1, got 0" in err and "unknown device 'gpu'" in err


def test_tables_render_mean_std_and_paired_differences_from_records():
    fake = {}
    for seed, (sparse, dense) in enumerate(((0.70, 0.80), (0.72, 0.81), (0.74, 0.85))):
        for config, miou in ((dict(points=50), sparse), (dict(points=200), dense)):
            full = dict(config, precision="auto", seed=seed)
            fake[records.key(full)] = dict(
                metrics=dict(
                    test=dict(miou=miou, pixel_accuracy=miou + 0.1),
                    labeled_fraction=0.01,
                    wall_time_s=60.0,
                )
            )
    text = paper_tables.tables(paper_tables.Results(fake, seeds=3, quick=False))
    assert "| 50 | 0.0100 ± 0.0000 | 0.7200 ± 0.0200 | 0.8200 ± 0.0200 | — | 0.8151 |" in text
    assert (
        "| 200 | 0.0100 ± 0.0000 | 0.8200 ± 0.0265 | 0.9200 ± 0.0265 | +0.1000 ± 0.0100 (beyond "
        "noise) | 0.9157 |" in text
    )
    assert "| 500 | not run yet |" in text


def test_the_committed_results_page_is_what_report_py_renders():
    """results/README.md and runs.md are never edited by hand: rendering the committed records
    gives them back."""
    tables, page, ledger = report.texts(Path("results"))
    assert page == Path("results/README.md").read_text()
    # the report's tables stay tables: a row a line, not folded into the prose around them
    assert "\n| points/image | labeled fraction |" in page and "\n### Table 1" in page
    assert ledger == Path("results/runs.md").read_text()
    assert tables == Path("results/tables.md").read_text()
    readme = Path("README.md").read_text()
    # and README's table
    assert report.with_headline(readme, report.headline(Path("results"))) == readme


def test_a_failed_run_stops_the_command_and_keeps_the_runs_before_it(tmp_path, monkeypatch, capsys):
    outcomes = iter([dict(encoder_init="random", precision="fp32", wall_time_s=1.0), None])
    monkeypatch.setattr(ex, "train", lambda config: next(outcomes))
    with pytest.raises(SystemExit) as exit_info:
        ex.main(["density", "--quick", "--seeds", "1", "--out", str(tmp_path), "--device", "cpu"])
    assert "failed (its error is above); the 1 runs finished before it are kept" in str(
        exit_info.value
    )
    assert len(records.load_records(tmp_path / "runs.jsonl")) == 1


def test_ablation_rows_read_a_tta_run_both_ways_and_leave_out_the_scorings_they_did_not_need():
    run = dict(
        config=dict(seed=0),
        history=[dict(val_miou=0.3), dict(val_miou=0.5), dict(val_miou=None)],
        val_miou_tta=0.55,
        test=dict(miou=0.6),
        test_without_tta=dict(miou=0.58),
        wall_time_s=100.0,
        scoring_seconds=dict(test=8.0, test_without_tta=1.0, val_tta=4.0),
    )
    # without the plain test and val TTA
    assert tile_report.scored(run, True) == (0.55, dict(miou=0.6), 95.0)
    # without the TTA scorings
    assert tile_report.scored(run, False) == (0.5, dict(miou=0.58), 88.0)
    plain = dict(run, test_without_tta=None, scoring_seconds=dict(test=1.0))
    del plain["test_without_tta"]
    # a run that did not use TTA
    assert tile_report.scored(plain, False) == (0.5, dict(miou=0.6), 100.0)


@pytest.mark.parametrize("tile_seconds, verdict", [(200.0, "met"), (202.0, "missed by 0.02x")])
def test_dubai_time_target_says_met_or_by_how_much_it_is_missed(tile_seconds, verdict):
    plan = records.plan(Path(__file__).parents[1] / "results")

    def run(seconds):
        return dict(
            config=dict(seed=0),
            history=[dict(val_miou=0.5)],
            val_miou_tta=0.5,
            test=dict(miou=0.5),
            wall_time_s=seconds,
        )

    groups = {
        "dubai/points-per-class-10": [run(tile_seconds)],
        f"dubai/{plan['tile_recipe_levers'][0][1]}": [run(100.0)],
    }
    lines = tile_report.targets(groups, plan)
    time_line = [line for line in lines if line.startswith("Time on Dubai")]
    assert time_line == [
        f"Time on Dubai, same machine: the tile recipe {tile_seconds:.0f} s, the report's 100 s: "
        f"{tile_seconds / 100:.2f}x (target: at most 2x; {verdict})."
    ]


def test_the_headline_says_how_far_the_tested_weights_val_moved_at_the_end():
    def run(average_last, epochs, averages):
        history = [
            dict(val_miou_in_truth=v, val_miou_average_in_truth=a) for v, a in zip(epochs, averages)
        ]
        return dict(config=dict(average_last=average_last), history=history)

    best_epoch = run(0, [0.1, 0.50, 0.40, 0.45], [None] * 4)  # the epochs' own: 0.10
    averaged = run(3, [0.1, 0.50, 0.40, 0.45], [None, 0.44, 0.45, 0.46])  # the average's: 0.02
    assert report.val_swing([best_epoch]) == "moves ≤ 0.100"
    assert report.val_swing([averaged]) == "moves ≤ 0.020"
    assert report.val_swing([averaged, best_epoch]) == "moves ≤ 0.100"  # the most of any seed
    assert report.val_swing([run(0, [0.5, 0.6], [None] * 2)]) == "—"  # fewer than 3 epochs


def test_a_headline_row_of_the_forests_own_setting_has_no_target_and_no_epochs(tmp_path):
    plan = dict(
        forest="forest-points-per-class-10",
        defaults=[["gid", "forest-tile-prior-2", "the forest with the tile prior"]],
        unclicked_margin_over_forest=dict(gid=0.05),
    )
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    for name, miou in (("forest-points-per-class-10", 0.40), ("forest-tile-prior-2", 0.46)):
        (tmp_path / "gid" / name).mkdir(parents=True)
        forest = dict(config=dict(seed=0), test=dict(miou=miou), wall_time_s=100.0, machine="m")
        (tmp_path / "gid" / name / "metrics.json").write_text(json.dumps(forest))
    (row,) = [line for line in report.headline(tmp_path).splitlines() if "| gid |" in line]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    # its margin over the plain forest, and no target (the target is the network's)
    assert cells[3:7] == ["0.4600 (1 seed)", "0.4000 (1 seed)", "+0.0600 (+0.0600)", "—"]
    assert cells[8] == "—"  # no epochs to move
