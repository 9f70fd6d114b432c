"""label.py's page in headless Chromium (scripts/label_page.py): a key picks the class, a click on
a pixel adds a click, a click on a proposal's ring answers it, and the CSV holds both. Skipped
where Chromium or selenium is missing, except in CI (CI=true), where .ci/run installs them."""

import os
import shutil
import threading

import pytest

import export
import label

if not os.environ.get("CI") and not (
    shutil.which("chromium") and shutil.which("chromedriver")
):  # pragma: no cover
    pytest.skip(
        "no chromium and chromedriver here (apt install chromium chromium-driver)",
        allow_module_level=True,
    )
if not os.environ.get("CI"):
    pytest.importorskip("selenium")

from scripts.label_page import drive, drive_round  # noqa: E402

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers


def test_the_page_labels_a_pixel_and_answers_a_proposal(tmp_path):
    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(2, 1, 1), image_size=96)
    (root / "train" / "points").mkdir()
    csv = root / "train" / "points" / "scene_0001.csv"
    csv.write_text("x,y,class\n5,5,Urban\n70,30,\n20,80,\n")
    servers = []
    thread = threading.Thread(
        target=label.main, args=([str(root), "--port", "0"], servers.append), daemon=True
    )
    thread.start()
    try:
        while not servers:
            thread.join(0.1)
        host, port = servers[0].server_address[:2]
        state = drive(f"http://{host}:{port}", "scene_0001", "3", (40, 50))
    finally:
        if servers:
            servers[0].shutdown()
    assert [40, 50, "Water"] in state["clicks"]  # key 3: the third class
    assert [70, 30, "Water"] in state["clicks"] and state["proposals"] == [[20, 80]]
    assert csv.read_text().splitlines() == [
        "x,y,class",
        "5,5,Urban",
        "70,30,Water",
        "20,80,",
        "40,50,Water",
    ]


def test_the_preview_follows_each_click_and_a_warm_round_brings_the_network_s_map(tmp_path):
    import json

    import train

    root, round0 = tmp_path / "scenes", tmp_path / "round0"
    export.export_tiles(root, sizes=(1, 1, 1), image_size=96)
    tiny = ["--image-size", "64", "--batch-size", "2", "--weights", "none", "--no-tta"]
    train.main(
        ["--data", str(root), "--points-per-class", "1", "--epochs", "1", *tiny]
        + ["--out", str(round0)]
    )
    servers = []
    argv = [str(root), "--run", str(round0), "--runs", str(tmp_path / "runs"), "--port", "0"]
    argv += ["--suggest", "0", "--train-flags", " ".join(tiny)]
    thread = threading.Thread(target=label.main, args=(argv, servers.append), daemon=True)
    thread.start()
    try:
        while not servers:
            thread.join(0.1)
        host, port = servers[0].server_address[:2]
        shown, after = drive_round(
            f"http://{host}:{port}", "scene_0000", [("1", 10, 10), ("3", 70, 70)]
        )
    finally:
        if servers:
            servers[0].shutdown()
    # one class clicked: the forest paints it everywhere; two: both, the preview refitted
    assert len(shown[0]) == 1 and len(shown[1]) == 2
    metrics = json.loads((tmp_path / "runs" / "round1" / "metrics.json").read_text())
    assert metrics["config"]["init"] == str(round0)  # warm, from label.py's --run
    assert after["what"] == "prediction" and after["colours"]
