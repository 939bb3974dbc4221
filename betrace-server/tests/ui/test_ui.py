"""The web UI of `betrace serve` in a real browser: Debian's chromium driven by Playwright.

The server runs as a process on loopback ports chosen by the system (port 0; the addresses are
read from the line it prints once bound), with a real SQLite data directory. Traces are sent
with the OpenTelemetry Python SDK (OTLP/HTTP exporter). Screenshots of each page are kept in
target/ui-screenshots/.

Needs: the `betrace` binary (BETRACE_BIN, else target/debug/betrace, built here with cargo),
/usr/bin/chromium and the `playwright` package (both installed by .ci/setup-deps.sh).
Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "target" / "ui-screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "ui-test-signature-key"
TRACE_URL = "http://tempo.example:3000/explore?traceId={traceId}"
TIMEOUT_MS = 15_000


@functools.cache
def betrace_bin() -> Path:
    if os.environ.get("BETRACE_BIN"):
        return Path(os.environ["BETRACE_BIN"])
    # The pages are compiled into the binary: build it so it holds the current ones (a no-op
    # when it is up to date).
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "betrace-server", "--bin", "betrace"],
        cwd=ROOT,
        check=True,
    )
    return ROOT / "target" / "debug" / "betrace"


class Server:
    """`betrace serve` as a process; `stop()` sends SIGTERM and waits."""

    def __init__(self, tmp: Path, args: list[str] = (), env: dict[str, str] | None = None):
        self.stderr_path = tmp / "stderr.log"
        self.token = (env or {}).get("BETRACE_API_TOKEN")
        full_env = {k: v for k, v in os.environ.items() if k not in ("BETRACE_API_TOKEN", "OTEL_EXPORTER_OTLP_ENDPOINT")}
        full_env.update({"BETRACE_SIGNATURE_KEY": KEY, **(env or {})})
        self.proc = subprocess.Popen(
            [
                str(betrace_bin()), "serve",
                "--http-addr", "127.0.0.1:0",
                "--otlp-http-addr", "127.0.0.1:0",
                "--otlp-grpc-addr", "off",
                "--data-dir", str(tmp / "data"),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=open(self.stderr_path, "wb"),
            stdin=subprocess.DEVNULL,
            env=full_env,
            text=True,
        )
        line = self._first_line(30)
        fields = dict(w.split("=", 1) for w in line.split()[2:])
        self.base = f"http://{fields['http']}"
        self.otlp = f"http://{fields['otlp_http']}"

    def _first_line(self, seconds: float) -> str:
        out: list[str] = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(seconds)
        if not out or not out[0].startswith("betrace listening"):
            self.proc.kill()
            raise RuntimeError(f"betrace serve did not start: {out!r}\n{self.stderr()}")
        return out[0]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run bash .ci/setup-deps.sh"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    yield pg
    ctx.close()
    assert not errors, f"errors in the page: {errors}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def poll(check, what: str, seconds: float = 15.0):
    """Calls `check` until it returns a true value, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def send_traces(otlp: str, failing: int, passing: int) -> list[str]:
    """Checkout traces from the OpenTelemetry SDK: `failing` with a payment span in error.
    Returns the trace ids (hex) of the failing ones."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces")))
    tracer = provider.get_tracer("ui-test")
    ids = []
    for i in range(failing + passing):
        with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
            with tracer.start_as_current_span("inventory", kind=SpanKind.CLIENT):
                time.sleep(0.002)
            with tracer.start_as_current_span("payment", kind=SpanKind.CLIENT) as pay:
                pay.set_attribute("payment.amount", 12.5)
                time.sleep(0.003)
                if i < failing:
                    pay.set_status(Status(StatusCode.ERROR, "card declined"))
            if i < failing:
                ids.append(format(root.get_span_context().trace_id, "032x"))
    assert provider.force_flush(10_000)
    provider.shutdown()
    return ids


TYPO = "never {\n  payment.where(span.status == eror)\n}"
FIXED = "never {\n  payment.where(span.status == error)\n}"


def test_rules_violations_waterfall_csv_and_toggle(page, tmp_path):
    server = Server(tmp_path, ["--ui-trace-url", TRACE_URL])
    try:
        # `/` redirects to the UI; the rules page starts empty.
        page.goto(server.base + "/")
        assert re.search(r"/ui/", page.url), page.url
        expect(page.locator("main")).to_contain_text("No rules yet")

        # A rule with a typo on line 2: the diagnostic shows at its line and column.
        page.click("#new-rule")
        page.fill("input[name=name]", "payment-errors")
        page.select_option("select[name=severity]", "HIGH")
        page.fill("#expression", TYPO)
        diag = page.locator("#diagnostics li.diag").first
        expect(diag).to_be_visible()
        line, column = diag.get_attribute("data-line"), diag.get_attribute("data-column")
        expected = server.call("POST", "/v1/rules/validate", {"expression": TYPO})["diagnostics"][0]
        assert (line, column) == ("2", str(expected["column"])), (line, column, expected)
        assert expected["line"] == 2 and expected["column"] == TYPO.split("\n")[1].index("eror") + 1
        expect(diag).to_contain_text(f"2:{expected['column']}")
        expect(diag).to_contain_text(expected["code"])
        if expected.get("help"):
            expect(diag.locator(".help")).to_contain_text(expected["help"][:20])
        expect(diag.locator(".excerpt")).to_contain_text("span.status == eror")
        shot(page, "rule-editor-diagnostic")

        # Fixed: valid, then "test this rule" against the sample spans, then saved.
        page.fill("#expression", FIXED)
        expect(page.locator("#validity")).to_contain_text("valid")
        expect(page.locator("#diagnostics li")).to_have_count(0)
        page.click("#run-test")
        expect(page.locator("#test-verdict")).to_contain_text("Violation")
        page.click("#save-rule")
        expect(page.locator("#rules-table")).to_contain_text("payment-errors")
        rule = server.call("GET", "/v1/rules/payment-errors")
        assert rule["expression"] == FIXED and rule["severity"] == "HIGH"

        # Traces from the OpenTelemetry SDK; two break the rule.
        failing = send_traces(server.otlp, failing=2, passing=3)
        server.call("POST", "/v1/flush")
        vs = server.call("GET", "/v1/violations")["violations"]
        assert sorted(v["traceId"] for v in vs) == sorted(failing)

        page.goto(server.base + "/ui/#/violations")
        rows = page.locator("#violations-table tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("payment-errors")
        # Newest first.
        assert rows.first.get_attribute("data-id") == vs[0]["id"]
        shot(page, "violations")

        # Paging through `nextCursor`, one violation a page.
        page.goto(server.base + "/ui/#/violations?limit=1")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-id", vs[0]["id"])
        expect(page.locator("#prev-page")).to_be_disabled()
        page.click("#next-page")
        expect(rows.first).to_have_attribute("data-id", vs[1]["id"])
        expect(page.locator("#next-page")).to_be_disabled()
        page.click("#prev-page")
        expect(rows.first).to_have_attribute("data-id", vs[0]["id"])

        # Filter by trace id: one row.
        page.fill("input[name=traceId]", failing[0])
        page.click("#apply-filters")
        expect(rows).to_have_count(1)
        assert failing[0] in page.url
        expect(rows.first).to_contain_text(failing[0])

        # A time range after every violation: none; one around them: both.
        page.goto(server.base + "/ui/#/violations")
        page.fill("input[name=startTime]", "2099-01-01T00:00:00")
        page.click("#apply-filters")
        expect(page.locator("#violations-list")).to_contain_text("No violations match")
        assert "startTime=2099-01-01" in page.url
        page.fill("input[name=startTime]", "2000-01-01T00:00:00")
        page.fill("input[name=endTime]", "2099-01-01T00:00:00")
        page.click("#apply-filters")
        expect(rows).to_have_count(2)
        page.goto(server.base + f"/ui/#/violations?traceId={failing[0]}")
        expect(rows).to_have_count(1)

        # Detail: message, failed clause, signature, the waterfall with the proving span.
        rows.first.click()
        expect(page.locator("#violation-message")).to_contain_text("payment")
        expect(page.locator("#failed-clause")).to_have_text("never")
        expect(page.locator("#signature")).to_contain_text("verified")
        link = page.locator("#trace-link")
        assert link.get_attribute("href") == TRACE_URL.replace("{traceId}", failing[0])
        spans = page.locator("#waterfall tbody tr")
        expect(spans).to_have_count(3)
        names = page.locator("#waterfall .span-label").all_inner_texts()
        assert names[0] == "checkout" and sorted(names[1:]) == ["inventory", "payment"], names
        proving = page.locator("#waterfall tr.proving")
        expect(proving).to_have_count(1)
        expect(proving).to_contain_text("payment")
        expect(proving).to_contain_text("offending")
        expect(proving).to_contain_text("error")
        expect(proving).to_contain_text("shop")
        assert "null" not in page.locator("main").inner_text()
        shot(page, "violation-detail")
        page.locator("main").screenshot(path=str(SHOTS / "violation-detail-main.png"))

        # CSV of every violation.
        page.goto(server.base + "/ui/#/violations")
        expect(rows).to_have_count(2)
        with page.expect_download() as dl:
            page.click("#download-csv")
        text = Path(dl.value.path()).read_text()
        table = list(csv.DictReader(io.StringIO(text)))
        assert len(table) == 2
        assert {r["traceId"] for r in table} == set(failing)
        assert {r["ruleId"] for r in table} == {"payment-errors"}
        assert all(r["severity"] == "HIGH" and r["signature"].startswith("v1:") for r in table)

        # Toggle the rule off; the server says so.
        page.goto(server.base + "/ui/#/rules")
        row = page.locator("#rules-table tr[data-rule=payment-errors]")
        expect(row).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d"))  # last violation
        row.locator("input.toggle").uncheck()
        poll(lambda: server.call("GET", "/v1/rules/payment-errors")["enabled"] is False, "the rule to be disabled")
        expect(row.locator(".switch")).to_contain_text("off")
        page.reload()
        expect(row.locator("input.toggle")).not_to_be_checked()
        shot(page, "rules")

        # Status: counts from /metrics.
        page.click("nav a[data-page=status]")
        expect(page.locator("#status-received")).to_contain_text("otlp_http")
        received = page.locator("#status-received tr", has_text="otlp_http").locator("td").inner_text()
        assert int(received) == 15, received
        expect(page.locator("#status-violations")).to_contain_text("payment-errors")
        expect(page.locator("#status-export")).to_contain_text("No export error")
        shot(page, "status")
    finally:
        server.stop()


def test_token_prompt(page, tmp_path):
    token = "ui-test-token-4711"
    server = Server(tmp_path, env={"BETRACE_API_TOKEN": token})
    try:
        server.call("POST", "/v1/rules", {"name": "slow", "expression": "never { checkout.where(span.duration > 5s) }"})
        requests: list[tuple[str, str | None]] = []
        page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
        page.goto(server.base + "/ui/")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        shot(page, "token-prompt")
        page.fill("#token-input", "wrong")
        page.click("#token-save")
        expect(page.locator("#token-error")).to_contain_text("refused")
        page.fill("#token-input", token)
        page.click("#token-save")
        expect(dialog).to_be_hidden()
        expect(page.locator("#rules-table")).to_contain_text("slow")
        assert page.evaluate("sessionStorage.getItem('betrace.token')") == token
        assert page.evaluate("localStorage.length") == 0
        api = [(u, a) for u, a in requests if "/v1/" in u]
        assert api and any(a == f"Bearer {token}" for _, a in api)
        assert all(token not in u for u, _ in requests), "the token went into a URL"
        server.stop()
        assert token not in server.stderr(), "the token was logged"
    finally:
        server.stop()


def test_rules_file_is_read_only_in_the_ui(page, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: from-file\n    expression: never { payment.where(span.status == error) }\n")
    server = Server(tmp_path, ["--rules", str(rules)])
    try:
        page.goto(server.base + "/ui/#/rules")
        expect(page.locator("#read-only-banner")).to_contain_text(str(rules))
        row = page.locator("#rules-table tr[data-rule=from-file]")
        expect(row.locator("input.toggle")).to_be_disabled()
        expect(row.locator("button.danger")).to_be_disabled()
        row.locator("a.button").click()
        expect(page.locator("#expression")).to_be_disabled()
        expect(page.locator("#save-rule")).to_have_count(0)
        shot(page, "rules-read-only")
    finally:
        server.stop()


def test_edit_delete_export_import(page, tmp_path):
    server = Server(tmp_path)
    try:
        server.call("POST", "/v1/rules", {"name": "slow", "expression": "never { checkout.where(span.duration > 5s) }", "severity": "low"})
        page.goto(server.base + "/ui/#/rules")
        row = page.locator("#rules-table tr[data-rule=slow]")
        expect(row).to_contain_text("LOW")
        # Edit: severity and tags over PUT.
        row.locator("a.button").click()
        expect(page.locator("#validity")).to_contain_text("valid")
        page.select_option("select[name=severity]", "CRITICAL")
        page.fill("input[name=tags]", "perf, checkout")
        page.click("#save-rule")
        expect(row).to_contain_text("CRITICAL")
        r = server.call("GET", "/v1/rules/slow")
        assert r["severity"] == "CRITICAL" and r["tags"] == ["perf", "checkout"]
        # Export: the rules file as YAML.
        with page.expect_download() as dl:
            page.click("#export-rules")
        exported = Path(dl.value.path()).read_text()
        assert "id: slow" in exported and "CRITICAL" in exported, exported
        # Delete (confirmed), then import the exported file back.
        page.once("dialog", lambda d: d.accept())
        row.locator("button.danger").click()
        expect(page.locator("main")).to_contain_text("No rules yet")
        poll(lambda: server.call("GET", "/v1/rules")["totalCount"] == 0, "the rule to be deleted")
        exported_file = tmp_path / "rules.yaml"
        exported_file.write_text(exported)
        page.set_input_files("#import-file", str(exported_file))
        expect(page.locator("#import-results")).to_contain_text("1 created")
        expect(row).to_contain_text("CRITICAL")
        assert server.call("GET", "/v1/rules/slow")["tags"] == ["perf", "checkout"]
        # A rules file with a broken rule: the failure is listed.
        bad = tmp_path / "bad.yaml"
        bad.write_text("rules:\n  - id: broken\n    expression: never { x.where( }\n")
        page.set_input_files("#import-file", str(bad))
        expect(page.locator("#import-results")).to_contain_text("1 failed")
        expect(page.locator("#import-results")).to_contain_text("broken")
    finally:
        server.stop()


def test_status_shows_the_last_export_error(page, tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    server = Server(tmp_path, ["--otel-endpoint", f"http://127.0.0.1:{closed}", "--otlp-protocol", "http/protobuf"])
    try:
        server.call("POST", "/v1/rules", {"name": "payment-errors", "expression": FIXED})
        send_traces(server.otlp, failing=1, passing=0)
        server.call("POST", "/v1/flush")
        poll(lambda: server.call("GET", "/v1/ui/status")["lastExportError"], "an export error")
        page.goto(server.base + "/ui/#/status")
        expect(page.locator("#last-export-error")).to_contain_text("Last error")
        expect(page.locator("#status-export")).to_contain_text("yes")
        failures = page.locator("#status-export tr", has_text="failure").locator("td").inner_text()
        assert int(failures) >= 1, failures
        shot(page, "status-export-error")
    finally:
        server.stop()
