"""`toolcrib browse`: the registry, read-only, in Datasette, with canned queries.

The server runs as users run it (`toolcrib browse --port 0`, a fresh process);
the canned queries are read in a real headless Chromium (skipped only when no
browser is installed; tests/run.sh installs one in CI). Chromium is kept on
loopback: every host name but 127.0.0.1 resolves to nothing, every other
request goes to a proxy that does not exist, and its background services are
off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from toolcrib.cli.browse import DATABASE, QUERIES, datasette_for
from toolcrib.sandbox import close_backends

from toolcrib import ArgumentsError, Registry

TOOLCRIB = str(Path(sys.executable).parent / "toolcrib")

GOOD = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'
RAISES = 'def halve(n: int) -> int:\n    """Half of an even number."""\n    if n % 2:\n        raise ValueError("odd")\n    return n // 2\n'
WRONG = 'def double(n: int) -> int:\n    """Twice n."""\n    return n * 3\n'
NEW = 'def shout(text: str) -> str:\n    """The text in capitals."""\n    return text.upper()\n'


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Verified tools with calls of every kind, a failed and an unverified version."""
    db = tmp_path_factory.mktemp("browse") / "registry.db"
    with Registry(db, actor="reviewer-test") as reg:
        reg.add(GOOD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
        reg.add(RAISES, tests=[{"args": {"n": 4}, "expected": 2}])
        reg.add(WRONG, tests=[{"args": {"n": 2}, "expected": 4}])
        reg.add(NEW, tests=[{"args": {"text": "a"}, "expected": "A"}])
        assert reg.verify("add").status == "verified"
        assert reg.verify("halve").status == "verified"
        assert reg.verify("double").status == "failed"
        assert reg.call("add", {"a": 2, "b": 3}).status == "ok"
        assert reg.call("add", {"a": 5, "b": 5}).status == "ok"
        assert reg.call("halve", {"n": 3}).status == "error"
        with pytest.raises(ArgumentsError):
            reg.call("add", {"a": "x", "b": 1})  # invalid arguments: audited, then raised
    close_backends()
    return db


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url


@pytest.fixture()
def server(registry: Path) -> Iterator[Server]:
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(registry)}
    proc = subprocess.Popen(
        [TOOLCRIB, "browse", "--port", "0"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    # The URL is printed once the port is bound (connections wait in its backlog).
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stderr.readline() if proc.stderr else ""), daemon=True)
    reader.start()
    reader.join(timeout=120)
    try:
        assert line and " at http://127.0.0.1:" in line[0], (line, proc.poll())
        url = line[0].split(" at ", 1)[1].split()[0]
        # Served once answered: the port was listening already, so this waits
        # for the server rather than polling it.
        assert isinstance(_get_json(f"{url}.json"), dict)
        yield Server(proc, url)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()  # the URL's reader is done: no ResourceWarning


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


class _Table(HTMLParser):
    """The rows of Datasette's results table: [{column: cell text}]."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._cell: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append({})
        elif tag == "td" and self._in_body and self.rows:
            column = next((c[4:] for c in classes.split() if c.startswith("col-")), "?")
            self._cell = column
            self.rows[-1][column] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and self.rows:
            self.rows[-1][self._cell] += data


def _in_browser(browser: str, url: str) -> str:
    """The DOM of `url` as a headless Chromium renders it."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--metrics-recording-only",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1",
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rows(browser: str, url: str) -> list[dict[str, str]]:
    table = _Table()
    table.feed(_in_browser(browser, url))
    return [{k: v.strip() for k, v in row.items()} for row in table.rows]


@pytest.fixture(scope="module")
def browser() -> str:
    found = _browser()
    if found is None:
        pytest.skip("no headless browser installed (tests/run.sh installs chromium in CI)")
    return found


def test_canned_queries_in_a_real_browser(server: Server, browser: str) -> None:
    home = _in_browser(browser, server.url)
    for name, query in QUERIES.items():
        assert query["title"] in home, f"{name} is not offered on {server.url}"

    unverified = _rows(browser, f"{server.url}/unverified_versions")
    assert {(r["ref"], r["status"]) for r in unverified} == {("double@1.0.0", "failed"), ("shout@1.0.0", "unverified")}

    failures = _rows(browser, f"{server.url}/recent_failures")
    by_status = {(r["event"], r["tool"], r["status"]): r["detail"] for r in failures}
    assert by_status[("call", "halve@1.0.0", "error")] == "ValueError"
    assert "is not of type" in by_status[("call", "add@1.0.0", "invalid")]
    assert by_status[("verify", "double@1.0.0", "failed")] == "1 of 1 case(s) failed"
    assert not any(status == "ok" for _, _, status in by_status)

    per_tool = {r["tool"]: r for r in _rows(browser, f"{server.url}/calls_per_tool")}
    assert set(per_tool) == {"add@1.0.0", "halve@1.0.0"}
    assert (per_tool["add@1.0.0"]["calls"], per_tool["add@1.0.0"]["ok"], per_tool["add@1.0.0"]["refused"]) == (
        "3",
        "2",
        "1",
    )
    assert (per_tool["halve@1.0.0"]["calls"], per_tool["halve@1.0.0"]["error"]) == ("1", "1")


def test_the_audit_log_of_one_tool_is_a_parameterised_query(server: Server, browser: str) -> None:
    form = _in_browser(browser, f"{server.url}/tool_audit_log")
    assert 'name="tool"' in form  # Datasette asks for the parameter
    entries = _rows(browser, f"{server.url}/tool_audit_log?tool=add")
    assert [e["event"] for e in entries] == ["add", "verify", "call", "call", "call"]
    assert {e["tool"] for e in entries} == {"add@1.0.0"}
    assert all(e["actor"] == "reviewer-test" for e in entries)
    pinned = _rows(browser, f"{server.url}/tool_audit_log?tool=halve@1.0.0")
    assert [e["event"] for e in pinned] == ["add", "verify", "call"]


def _digest(db: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in (db, db.with_name(db.name + "-wal")) if p.exists()]


def test_browsing_is_read_only_and_on_loopback(registry: Path, server: Server) -> None:
    before = _digest(registry)
    port = int(server.url.split(":")[2].split("/")[0])
    # Only 127.0.0.1 listens on the port (/proc/net/tcp: local address in hex, state 0A = LISTEN).
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
    ]
    assert listening == [f"0100007F:{port:04X}"]
    assert Path("/proc/net/tcp6").read_text().count(f":{port:04X} ") == 0
    for sql in (
        "UPDATE versions SET status = 'verified'",
        "DELETE FROM audit",
        "INSERT INTO settings VALUES ('k', 'v', 'x', 'y')",
    ):
        query = urllib.parse.urlencode({"sql": sql, "_shape": "array"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get_json(f"{server.url}.json?{query}")
        refused.value.close()  # an HTTPError holds the response and its socket until closed
        assert refused.value.code == 400
    rows = _get_json(f"{server.url}/calls_per_tool.json?_shape=array")
    assert isinstance(rows, list) and len(rows) == 2
    assert _digest(registry) == before


def test_even_datasette_own_write_path_cannot_write(registry: Path) -> None:
    # Under Datasette's SELECT-only check, the connections themselves refuse:
    # its write connection (which plugins and write queries use) is query_only.
    ds = datasette_for(registry)
    database = ds.get_database(DATABASE)
    before = _digest(registry)

    async def attempt() -> None:
        await database.execute_write("UPDATE versions SET status = 'verified'")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        asyncio.run(attempt())
    reads = asyncio.run(database.execute("SELECT count(*) FROM versions"))
    assert reads.rows[0][0] == 4
    assert _digest(registry) == before


def test_ctrl_c_stops_it(server: Server) -> None:
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0  # how the command ends, after uvicorn's graceful shutdown
    assert server.proc.stderr is not None and server.proc.stderr.read() == ""


def test_sigterm_stops_it_as_sigterm(server: Server) -> None:
    # uvicorn shuts down gracefully, then re-raises the signal: the process
    # ends the way a terminated process should, by that signal.
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == -signal.SIGTERM


def test_without_datasette_one_line_and_exit_7(registry: Path) -> None:
    # As if the extra were not installed: the import system finds no datasette.
    code = (
        "import sys; sys.modules['datasette'] = None; sys.argv = ['toolcrib', 'browse']; "
        "from toolcrib.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TOOLCRIB_REGISTRY": str(registry)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 7, done.stderr
    assert done.stderr == "Error: toolcrib browse needs Datasette: pip install 'toolcrib[browse]'\n"


def test_no_registry_is_not_found(tmp_path: Path) -> None:
    done = subprocess.run(
        [TOOLCRIB, "--registry", str(tmp_path / "nope.db"), "browse"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("Error: no registry at ") and done.stderr.count("\n") == 1


def test_not_a_registry_is_bad_input(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"this is not SQLite at all, not even close" * 10)
    done = subprocess.run(
        [TOOLCRIB, "--registry", str(other), "browse"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "is not a toolcrib registry" in done.stderr and done.stderr.count("\n") == 1


def test_a_taken_port_is_one_line(registry: Path, server: Server) -> None:
    port = server.url.split(":")[2].split("/")[0]
    done = subprocess.run(
        [TOOLCRIB, "--registry", str(registry), "browse", "--port", port],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and done.stderr.count("\n") == 1
