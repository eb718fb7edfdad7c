"""The dashboard in a real headless browser (Debian's chromium, Selenium with chromium-driver) over
a real ``mmops trade --api-port`` process replaying two symbols (BTCUSDT and ETHUSDT minutes):
every panel shows data for both, a press of stop stops that symbol (in the page and in the
journal), and a screenshot is saved (``MMOPS_DOCS_SCREENSHOT=1`` also writes docs/dashboard.png).

Skipped when chromium is missing, except under ``CI=true``, where it fails: ``make test``
installs chromium and chromium-driver when it runs as root.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
OPERATOR = "operator-token-browser-test"
FEATHERS = {
    "BTCUSDT": "binance_BTC_USDT-1m_2025-05-20_2025-08-18.feather",
    "ETHUSDT": "binance_ETH_USDT-1m_2025-05-20_2025-08-18.feather",
}
SPEED = "300"  # x real time: a 1m bar every 0.2 s, so the 600-bar replay is still running at the end
WINDOW = ("--start", "2025-08-17T18:28", "--end", "2025-08-18T04:27")
NUMBER = re.compile(r"^[+-]?[\d,]+(\.\d+)?")


@pytest.fixture(scope="module")
def webdriver() -> Any:
    """Selenium's webdriver module, once chromium and chromium-driver are there (first: skip early)."""
    return browser_or_skip()


def browser_or_skip() -> Any:
    """Skip without the browser, the driver or selenium; fail instead under ``CI=true``."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"{' and '.join(missing)} missing (make test installs chromium chromium-driver as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the browser test must run; {why}")
        pytest.skip(why)
    from selenium import webdriver

    return webdriver


@pytest.fixture(scope="module")
def home(webdriver: Any, source_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MMOPS_HOME whose store holds two days of real BTCUSDT and ETHUSDT minutes."""
    from features.pipeline import ingest_source
    from flows.params import load_params

    home = tmp_path_factory.mktemp("home")
    validation = load_params(REPO / "params.yaml").validation
    for symbol, name in FEATHERS.items():
        path = source_data / "ohlcv" / name
        if not path.exists():
            pytest.skip(f"shared data not found at {path}")
        csv = home / "src" / f"{symbol}.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        pd.read_feather(path).tail(2 * 1440).to_csv(csv, index=False)
        ingest_source(
            "file",
            csv,
            store_root=home / "data" / "bars",
            quarantine_root=home / "data" / "quarantine",
            gx_root=None,
            validation=validation,
            now=pd.Timestamp.now(tz="UTC"),
            symbol=symbol,
            interval="1m",
            venue="binance",
        )
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def worker(home: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``mmops trade`` on the two symbols with the API on a free loopback port: (URL, journal)."""
    port, journal = _free_port(), tmp_path / "journal.db"
    env = {**os.environ, "MMOPS_HOME": str(home), "MMOPS_API_OPERATOR_TOKEN": OPERATOR}
    env.pop("MMOPS_API_VIEWER_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "flows",
        "trade",
        "--replay",
        "store",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        *WINDOW,
    ]
    cmd += ["--speed", SPEED, "--journal", str(journal), "--api-port", str(port)]
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(
            lambda: _answers(url),
            120,
            lambda: f"no API at {url}: {(tmp_path / 'worker.log').read_text()[-2000:]}",
            proc,
        )
        yield url, journal
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        return (
            httpx.get(f"{url}/maker/whoami", headers={"Authorization": f"Bearer {OPERATOR}"}).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def _until(
    ok: Callable[[], Any], seconds: float, why: Callable[[], str], proc: subprocess.Popen | None = None
) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}): {why()}")
        got = ok()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(why())


def _ticks(journal: Path) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        row = db.execute("select tick from books where book = 'live'").fetchone()
    return 0 if row is None else int(row[0])


def test_the_dashboard_shows_both_symbols_and_stops_one(
    webdriver: Any, worker: tuple[str, Path], tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    def settled(read: Callable[[], Any]) -> Any:
        """``read()`` again when the page re-rendered a card under it (each poll redraws the cards,
        so an element found a moment ago can be gone: seen on a slow machine)."""
        for _ in range(20):
            try:
                return read()
            except StaleElementReferenceException:
                time.sleep(0.1)
        return read()

    url, journal = worker
    _until(
        lambda: _ticks(journal) >= 60, 60, lambda: f"the worker is at tick {_ticks(journal)}"
    )  # charts to draw
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1480,1400"):
        options.add_argument(flag)
    # chromium's crash reporter writes under $HOME/.config whatever the profile: a HOME of the test's own
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    service = Service(executable_path=str(CHROMEDRIVER), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(f"{url}/dashboard")
        driver.find_element(By.ID, "token").send_keys(OPERATOR)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()

        def card(sym: str) -> Any:
            found = driver.find_elements(By.ID, f"card-{sym}")
            return found[0] if found else None

        def panels_full(sym: str) -> bool:
            c = card(sym)
            if c is None:
                return False
            texts = [
                c.find_element(By.CSS_SELECTOR, k).text
                for k in (".quote-bid", ".quote-ask", ".inventory", ".pnl")
            ]
            points = [
                int(c.find_element(By.CSS_SELECTOR, f"svg.chart-{k}").get_attribute("data-points") or 0)
                for k in ("price", "inventory", "pnl")
            ]
            return all(NUMBER.match(t.replace("−", "-")) for t in texts) and min(points) >= 30

        def check_card(sym: str) -> None:
            c = card(sym)
            assert "bps" in c.find_element(By.CSS_SELECTOR, ".quote-spread").text  # the spread quoted
            risk = c.find_element(By.CSS_SELECTOR, ".pill.risk")
            assert risk.text in ("ACTIVE", "REDUCING", "HALTED") and risk.text in risk.get_attribute("class")
            assert risk.value_of_css_property("color") != c.find_element(
                By.CSS_SELECTOR, ".sym"
            ).value_of_css_property("color")
            assert c.find_elements(
                By.CSS_SELECTOR, "svg.chart-pnl path.drawdown"
            )  # the drawdown under the PnL
            ladder = [r.text for r in c.find_elements(By.CSS_SELECTOR, ".book .ladder tr")]
            assert any(row.startswith("last ") and NUMBER.match(row.split()[1]) for row in ladder), ladder
            assert any(row.startswith(("buy ", "sell ")) for row in ladder), ladder  # our working orders
            assert c.get_attribute("data-quoting") == "true"

        def text(sym: str, selector: str) -> str:
            return str(settled(lambda: card(sym).find_element(By.CSS_SELECTOR, selector).text))

        for sym in ("BTCUSDT", "ETHUSDT"):
            _until(
                lambda sym=sym: settled(lambda: panels_full(sym)),
                30,
                lambda sym=sym: f"{sym}: a panel has no data",
            )
            settled(lambda sym=sym: check_card(sym))
        assert driver.find_element(By.ID, "killstate").text == "kill switch off"

        settled(lambda: card("ETHUSDT").find_element(By.CSS_SELECTOR, "button.stop").click())
        _until(
            lambda: settled(lambda: card("ETHUSDT").get_attribute("data-quoting")) == "false",
            30,
            lambda: "ETHUSDT never showed as stopped",
        )
        assert text("ETHUSDT", ".pill.state") == "STOPPED"
        assert settled(lambda: card("BTCUSDT").get_attribute("data-quoting")) == "true"
        _until(  # a poll later: the stopped symbol's quote panel is empty
            lambda: text("ETHUSDT", ".quote-bid") == "–", 10, lambda: "ETHUSDT still shows a bid when stopped"
        )
        height = driver.execute_script(
            "return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)"
        )
        metrics = {"width": 1480, "height": int(height) + 24, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the whole page in one shot
        time.sleep(0.5)
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("MMOPS_DOCS_SCREENSHOT") == "1":
            (REPO / "docs" / "dashboard.png").write_bytes(shot.read_bytes())
    finally:
        driver.quit()
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        ((tick, by),) = db.execute(
            "select tick, by from requests where symbol = 'ETHUSDT' and action = 'stop'"
        )
        (message,) = db.execute(
            "select message from events where kind = 'control' and symbol = 'ETHUSDT'"
        ).fetchone()
        (after,) = db.execute(
            "select count(*) from orders where symbol = 'ETHUSDT' and kind = 'limit' and tick >= ?", (tick,)
        ).fetchone()
    assert tick is not None and by == "operator" and message.startswith("stop by operator: quoting off")
    assert after == 0  # nothing quoted for ETHUSDT from the tick the stop was taken
