"""label.py's page in a real browser (headless Chromium through Selenium): pick a class with a key,
click a pixel, click a proposal's ring, and read back what the server wrote.

    python -m scripts.label_page            a synthetic folder, a short run and its proposals,
                                            the page driven, and docs/label.png its screenshot

tests/test_label_page.py runs `drive` on a small folder. Needs Debian's chromium and
chromium-driver (.ci/run installs them) and the selenium package.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(width=1200, height=800):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options
    )


def wait(check, seconds=30, what="the page"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready after {seconds}s")


def points(base, stem):
    with urllib.request.urlopen(f"{base}/api/tiles/{stem}/points", timeout=30) as response:
        return json.loads(response.read())


class Page:
    """The page in a headless Chromium: open a tile, press keys, click pixels, read the map."""

    def __init__(self, base):
        from selenium.webdriver.common.by import By

        self.base, self.by, self.driver = base, By, browser()
        self.driver.get(base)
        wait(self.status, what="the first tile")  # the list is drawn anew until then
        self.canvas = self.driver.find_element(By.ID, "view")

    def status(self):
        return self.driver.find_element(self.by.ID, "status").text

    def open_tile(self, stem):
        from selenium.common.exceptions import StaleElementReferenceException

        def opened():
            try:
                for li in self.driver.find_elements(self.by.CSS_SELECTOR, "#tiles li"):
                    if li.text.split()[0] == stem:
                        li.click()  # the list is drawn anew: the other items are gone
                        break
                return stem in self.status()
            except StaleElementReferenceException:  # redrawn meanwhile: try again
                return False

        wait(opened, what=f"tile {stem}")

    def key(self, key):
        self.driver.find_element(self.by.TAG_NAME, "body").send_keys(key)

    def click_at(self, x, y, dx=0):
        """Click image pixel (x, y) of the tile in view, dx screen pixels to its right."""
        from selenium.webdriver.common.action_chains import ActionChains

        sx, sy = self.driver.execute_script(
            "return window.screenOf(arguments[0], arguments[1])", x, y
        )
        offset = (
            round(sx + dx - self.canvas.size["width"] / 2),
            round(sy - self.canvas.size["height"] / 2),
        )
        ActionChains(self.driver).move_to_element_with_offset(
            self.canvas, *offset
        ).click().perform()

    def overlay(self):
        """{what, version, current, colours} of the map over the tile (label.html's overlayShown):
        version counts the changes to the clicks the map was asked after."""
        return self.driver.execute_script("return window.overlayShown()")

    def press(self, button_id):
        self.driver.find_element(self.by.ID, button_id).click()


def drive(base, stem, key, pixel, screenshot=None):
    """Open the page, go to tile `stem`, press `key`, click `pixel` (x, y) and then the ring of the
    tile's first open proposal (3 screen px off its centre); the tile's state after that."""
    page = Page(base)
    try:
        page.open_tile(stem)
        page.key(key)
        before = points(base, stem)
        proposal = before["proposals"][0]
        page.click_at(*pixel)
        wait(lambda: len(points(base, stem)["clicks"]) > len(before["clicks"]), what="the click")
        page.click_at(*proposal, dx=3)
        wait(
            lambda: len(points(base, stem)["proposals"]) < len(before["proposals"]), what="the ring"
        )
        if screenshot:
            time.sleep(3)  # the views come in
            page.driver.save_screenshot(str(screenshot))
        return points(base, stem)
    finally:
        page.driver.quit()


def drive_round(base, stem, clicks):
    """Open the page at tile `stem`; for each (key, x, y) of `clicks`, press the key, click the
    pixel and wait for the live preview of the clicks so far; then Retrain and wait for the round
    to end. The colours the preview showed after each click, and the map shown after the round."""
    page = Page(base)
    try:
        page.open_tile(stem)
        shown = []
        for key, x, y in clicks:
            before = (page.overlay() or {}).get("version", -1)
            page.key(key)
            page.click_at(x, y)
            # a preview asked after this click: until the server has taken the click, the one
            # before it still counts as current
            wait(
                lambda: (
                    (o := page.overlay())
                    and o["current"]
                    and o["version"] > before
                    and o["what"] == "preview"
                ),
                what="the preview of the new click",
            )
            shown.append(page.overlay()["colours"])
        page.press("train")
        wait(lambda: "done" in page.driver.find_element(page.by.ID, "val").text, 600, "the round")
        wait(lambda: (o := page.overlay()) and o["what"] == "prediction", what="the network's map")
        return shown, page.overlay()
    finally:
        page.driver.quit()


def main():
    """The screenshot of docs/label.png: synthetic scenes, a 3-epoch run, its 60 proposals, and
    the page serving them (built from the library pieces label.py runs)."""
    from lib.label_server import Training, serve
    from lib.labelling import Folder

    work = Path(tempfile.mkdtemp())
    scenes, round0 = str(work / "scenes"), str(work / "round0")
    for command in (
        f"export.py tiles {scenes} --train-size 8 --val-size 4 --test-size 4 --image-size 256",
        f"train.py --data {scenes} --points-per-class 5 --epochs 3 --weights none --out {round0}",
        f"suggest.py {round0} {scenes} --clicks 60",
    ):
        subprocess.run([sys.executable, *command.split()], check=True, stdout=subprocess.DEVNULL)
    folder = Folder(scenes, round0)
    server = serve(folder, Training(folder, work / "runs", "", 0), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    state = drive(f"http://{host}:{port}", "scene_0000", "3", (40, 60), Path("docs/label.png"))
    print(
        f"docs/label.png written; scene_0000 now has {len(state['clicks'])} clicks, "
        f"{len(state['proposals'])} open proposals"
    )
    server.shutdown()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
