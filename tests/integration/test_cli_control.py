"""``mmops trade status|stop|start|kill|resume --api-url`` against a real control API server, and
``mmops trade --api-port`` refusing what it must, each in one line (typer's CliRunner)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pandas as pd
import pytest
from control_helpers import OPERATOR, VIEWER, app, rows, run, served, two_symbols
from typer.testing import CliRunner

from flows.cli import app as mmops

TICKS = 120


@pytest.fixture(scope="module")
def frames(source_data: Path) -> dict[str, pd.DataFrame]:
    return two_symbols(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip", TICKS)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MMOPS_API_OPERATOR_TOKEN", OPERATOR)
    monkeypatch.setenv("MMOPS_API_VIEWER_TOKEN", VIEWER)
    monkeypatch.delenv("MMOPS_API_URL", raising=False)
    return CliRunner()


def one_line_error(result: object, text: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert text in output and "Traceback" not in output and len(output.strip().splitlines()) == 1, output


def test_status_stop_start_kill_resume_through_a_running_api(
    cli: CliRunner, frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    run(frames, journal, max_ticks=60)
    with served(app(frames, journal)) as url:
        status = cli.invoke(mmops, ["trade", "status", "--api-url", url])
        assert status.exit_code == 0, status.output
        assert f"worker at {url}: phase stopped, tick 60/{TICKS}, kill switch off" in status.output
        assert "BTCUSDT: quoting, ACTIVE" in status.output and "ETHUSDT: quoting" in status.output
        doc = json.loads(cli.invoke(mmops, ["trade", "status", "--api-url", url, "--json"]).stdout)
        assert [s["symbol"] for s in doc["symbols"]] == ["BTCUSDT", "ETHUSDT"] and doc["active"]["tick"] == 60

        stop = cli.invoke(mmops, ["trade", "stop", "ETHUSDT", "--api-url", url, "--reason", "drill"])
        assert stop.exit_code == 0 and "stop ETHUSDT (request 1): written to the journal" in stop.output
        start = cli.invoke(
            mmops,
            [
                "trade",
                "start",
                "btcusdt",
                "--max-position-lots",
                "30",
                "--min-half-spread-bps",
                "2.5",
                "--api-url",
                url,
            ],
        )
        assert start.exit_code == 0, start.output
        assert "start BTCUSDT with max_position_lots 30, min_half_spread_bps 2.5" in start.output
        kill = cli.invoke(mmops, ["trade", "kill", "--api-url", url, "--by", "ana", "--reason", "drill"])
        assert kill.exit_code == 0 and "kill pressed through" in kill.output
        resume = cli.invoke(
            mmops, ["trade", "resume", "--api-url", url, "--by", "ana", "--reason", "over", "--json"]
        )
        assert json.loads(resume.stdout)["action"] == "resume"

        one_line_error(
            cli.invoke(mmops, ["trade", "stop", "DOGEUSDT", "--api-url", url]),
            "control API refused POST /maker/stop (422): symbol: unknown symbol 'DOGEUSDT': this worker trades BTCUSDT, ETHUSDT",
        )
        one_line_error(
            cli.invoke(mmops, ["trade", "start", "BTCUSDT", "--max-position-lots", "1000", "--api-url", url]),
            "(422): limits.max_position_lots 1000 > risk.max_position_lots 100",
        )
        one_line_error(
            cli.invoke(
                mmops,
                ["trade", "stop", "BTCUSDT", "--api-url", url],
                env={"MMOPS_API_OPERATOR_TOKEN": "wrong"},
            ),
            "(401): token not recognised",
        )
        viewer = cli.invoke(
            mmops, ["trade", "status", "--api-url", url], env={"MMOPS_API_OPERATOR_TOKEN": ""}
        )  # a read with the viewer token alone
        assert viewer.exit_code == 0, viewer.output
        one_line_error(
            cli.invoke(
                mmops, ["trade", "stop", "BTCUSDT", "--api-url", url], env={"MMOPS_API_OPERATOR_TOKEN": ""}
            ),
            "MMOPS_API_OPERATOR_TOKEN is not set: the control API at",
        )
    taken = rows(journal, "select symbol, action, by from requests order by id")
    assert taken == [("ETHUSDT", "stop", "operator"), ("BTCUSDT", "start", "operator")]
    presses = rows(journal, "select message from events where kind = 'control' order by id")
    assert presses == [
        ("kill pressed by operator: drill (ana)",),
        ("resume pressed by operator: over (ana)",),
    ]


def test_no_api_there_and_no_url_are_one_line_errors(cli: CliRunner) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    one_line_error(cli.invoke(mmops, ["trade", "status", "--api-url", closed]), f"no control API at {closed}")
    one_line_error(
        cli.invoke(mmops, ["trade", "stop", "BTCUSDT"]),
        "trade stop talks to a running worker: give --api-url",
    )


def test_trade_with_the_api_refuses_no_token_a_taken_port_and_a_tick_replay(
    cli: CliRunner, source_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_path = source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip"
    base = [
        "trade",
        "--replay",
        str(zip_path),
        "--symbols",
        "BTCUSDT",
        "--start",
        "2026-03-05",
        "--end",
        "2026-03-05T00:20",
    ]
    base += ["--journal", str(tmp_path / "j.db")]
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path / "home"))
    one_line_error(
        cli.invoke(mmops, [*base, "--api-port", "0"], env={"MMOPS_API_OPERATOR_TOKEN": ""}),
        "MMOPS_API_OPERATOR_TOKEN is not set: the control API will not start without an operator token",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_error(
            cli.invoke(mmops, [*base, "--api-port", str(port)]),
            f"--api-host 127.0.0.1 --api-port {port}: cannot listen there",
        )
    capture = source_data / "ticks" / "spot_btcusdt_20240808.gz"
    one_line_error(
        cli.invoke(mmops, ["trade", "--replay", str(capture), "--symbols", "BTCUSDT", "--api-port", "0"]),
        "--api-port: the control API runs beside bar replays",
    )
    ok = cli.invoke(mmops, [*base, "--api-port", "0", "--json"])
    assert ok.exit_code == 0, ok.output
    assert "control API on http://127.0.0.1:" in ok.stderr and json.loads(ok.stdout)["finished"]
