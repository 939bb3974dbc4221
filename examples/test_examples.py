"""Consistency of the examples: rules.yaml, traces/, expected-violations.json and README.md.

In: the files of this directory; the fixture generators (tools/otel-fixtures) for the
regeneration check. Out: pytest results.

`REFERENCE` restates each rule of rules.yaml as a Python predicate over decoded spans, written
by hand from DSL.md §3 and §7. It checks that the traces really have the properties
expected-violations.json claims (durations, gaps, counts, attributes); it is no substitute for
the engine, whose own test (`betrace check --rules examples/rules.yaml examples/traces/`)
must find exactly the same violations.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "tools" / "otel-fixtures"
sys.path.insert(0, str(FIXTURES))
from check_fixtures import decode_file  # noqa: E402

MS = 1_000_000
SECOND = 1_000_000_000
SEVERITIES = {"CRITICAL", "HIGH", "MEDIUM", "LOW"}


class Trace:
    """Decoded spans of one file, with DSL.md attribute lookup (span, then resource)."""

    def __init__(self, path: Path) -> None:
        encoding = "otlp-json" if path.suffix == ".json" else "otlp-protobuf"
        self.spans, self.resources = decode_file(path, encoding)
        ids = [s["span_id"] for s in self.spans]
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate span ids"
        assert len({s["trace_id"] for s in self.spans}) == 1, f"{path.name}: more than one trace"
        self.children: dict[str, list[dict]] = {}
        for s in self.spans:
            if s["parent_span_id"]:
                self.children.setdefault(s["parent_span_id"], []).append(s)

    def attr(self, span: dict, key: str):
        """The attribute's value, or None when missing (DSL.md §3.4)."""
        found = span["attributes"].get(key) or self.resources.get(span["service_name"], {}).get(key)
        if found is None:
            return None
        if found["type"] == "array":
            return [v["value"] for v in found["value"]]
        return found["value"]

    def named(self, name: str) -> list[dict]:
        return [s for s in self.spans if s["name"] == name]

    def descendants(self, span: dict) -> list[dict]:
        out, stack = [], list(self.children.get(span["span_id"], []))
        while stack:
            s = stack.pop()
            out.append(s)
            stack.extend(self.children.get(s["span_id"], []))
        return out

    @staticmethod
    def duration(span: dict) -> int:
        return span["end_time_unix_nano"] - span["start_time_unix_nano"]

    def trace_duration(self) -> int:
        return max(s["end_time_unix_nano"] for s in self.spans) - min(s["start_time_unix_nano"] for s in self.spans)


def _number_gt(value, limit) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit


REFERENCE: dict[str, Callable[[Trace], bool]] = {
    # when { checkout.where(order.amount > 1000) } always { fraud_check }
    "large-order-requires-fraud-check": lambda t: (
        any(_number_gt(t.attr(s, "order.amount"), 1000) for s in t.named("checkout")) and not t.named("fraud_check")
    ),
    # never { payment.where(span.status == error) }
    "payment-must-not-fail": lambda t: any(s["status"] == "error" for s in t.named("payment")),
    # never { payment.where(span.status == error and not followed_by(inventory.release, within 5s)) }
    "failed-payment-releases-inventory": lambda t: any(
        p["status"] == "error"
        and not any(
            0 <= r["start_time_unix_nano"] - p["end_time_unix_nano"] <= 5 * SECOND
            for r in t.named("inventory.release")
            if r is not p
        )
        for p in t.named("payment")
    ),
    # never { pii.read.where(not has_descendant(audit.log)) }
    "pii-read-audited": lambda t: any(
        not any(d["name"] == "audit.log" for d in t.descendants(s)) for s in t.named("pii.read")
    ),
    # never { pii.read.where(not (enduser.role in [account_owner, support_agent, fulfillment])) }
    "pii-read-authorized-role": lambda t: any(
        t.attr(s, "enduser.role") not in ("account_owner", "support_agent", "fulfillment") for s in t.named("pii.read")
    ),
    # when { payment.retry } always { count(payment.retry) < 3 }
    "payment-retries-bounded": lambda t: bool(t.named("payment.retry")) and len(t.named("payment.retry")) >= 3,
    # never { db.query.where(span.duration > 500ms) }
    "slow-db-query": lambda t: any(Trace.duration(s) > 500 * MS for s in t.named("db.query")),
    # span.kind == client and exists(db.system) and db.statement =~ `'[^']*'`
    "db-statement-parameterized": lambda t: any(
        s["kind"] == "client"
        and t.attr(s, "db.system") is not None
        and isinstance(t.attr(s, "db.statement"), str)
        and re.search(r"'[^']*'", t.attr(s, "db.statement"))
        for s in t.spans
    ),
    # span.kind == server and http.route:starts_with("/api/") and not exists(auth.user)
    "api-requires-authenticated-user": lambda t: any(
        s["kind"] == "server"
        and isinstance(t.attr(s, "http.route"), str)
        and t.attr(s, "http.route").startswith("/api/")
        and t.attr(s, "auth.user") is None
        for s in t.spans
    ),
    # span.kind == client and exists(http.request.method)
    #   and server.address:ends_with(".svc.cluster.local")
    #   and not has_child(*.where(span.kind == server), within 2s)
    "client-call-reaches-server": lambda t: any(
        s["kind"] == "client"
        and t.attr(s, "http.request.method") is not None
        and isinstance(t.attr(s, "server.address"), str)
        and t.attr(s, "server.address").endswith(".svc.cluster.local")
        and not any(
            c["kind"] == "server" and abs(c["start_time_unix_nano"] - s["start_time_unix_nano"]) <= 2 * SECOND
            for c in t.children.get(s["span_id"], [])
        )
        for s in t.spans
    ),
    # span.kind == server and span.status == error
    "server-span-error": lambda t: any(s["kind"] == "server" and s["status"] == "error" for s in t.spans),
    # when { checkout } always { trace.duration <= 3s }
    "checkout-latency-slo": lambda t: bool(t.named("checkout")) and not t.trace_duration() <= 3 * SECOND,
    # trace.count(span.name == "db.query") > 10
    "db-query-fan-out": lambda t: len(t.named("db.query")) > 10,
}


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    return yaml.safe_load((HERE / "rules.yaml").read_text(encoding="utf-8"))["rules"]


@pytest.fixture(scope="module")
def expected() -> dict[str, list[str]]:
    return json.loads((HERE / "expected-violations.json").read_text(encoding="utf-8"))


def test_rules_file_shape(rules: list[dict]) -> None:
    assert len(rules) >= 10
    ids = [r["id"] for r in rules]
    assert len(set(ids)) == len(ids), "rule ids must be unique"
    for rule in rules:
        assert set(rule) == {"id", "name", "description", "expression", "severity", "tags", "enabled"}, rule["id"]
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule["id"]), rule["id"]
        assert rule["severity"] in SEVERITIES, rule["id"]
        assert rule["enabled"] is True, rule["id"]
        assert isinstance(rule["tags"], list) and rule["tags"], rule["id"]
        assert rule["expression"].strip() and rule["description"].strip(), rule["id"]


def test_expected_violations_cover_every_trace_file(rules: list[dict], expected: dict) -> None:
    files = sorted(f"traces/{p.name}" for p in (HERE / "traces").iterdir())
    assert sorted(expected) == files
    ids = {r["id"] for r in rules}
    for file, fired in expected.items():
        assert fired == sorted(set(fired)), f"{file}: list must be sorted and unique"
        assert set(fired) <= ids, f"{file}: unknown rule ids {set(fired) - ids}"


def test_every_rule_fires_on_some_trace_and_some_trace_conforms(rules: list[dict], expected: dict) -> None:
    fired = {rule for rules_fired in expected.values() for rule in rules_fired}
    assert fired == {r["id"] for r in rules}
    assert any(not v for v in expected.values())


def test_reference_covers_rules_yaml(rules: list[dict]) -> None:
    assert set(REFERENCE) == {r["id"] for r in rules}


@pytest.mark.parametrize("file", sorted(p.name for p in (HERE / "traces").iterdir()))
def test_trace_breaks_exactly_the_expected_rules(file: str, expected: dict) -> None:
    trace = Trace(HERE / "traces" / file)
    fired = sorted(rule for rule, predicate in REFERENCE.items() if predicate(trace))
    assert fired == expected[f"traces/{file}"]


def test_readme_table_matches_json(expected: dict) -> None:
    text = (HERE / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\| `(traces/[a-z0-9-]+\.(?:json|pb))` \| (.*?) \|.*", line)
        if m:
            rows[m.group(1)] = sorted(re.findall(r"`([a-z0-9-]+)`", m.group(2)))
    assert rows == expected


def test_traces_match_the_generators(tmp_path: Path) -> None:
    """examples/traces is what examples/regenerate.sh makes from the current scenarios."""
    python = ROOT / ".venv" / "bin" / "python"
    subprocess.run(
        [str(python if python.exists() else sys.executable), str(FIXTURES / "gen_python.py"), str(tmp_path)], check=True
    )
    subprocess.run(["node", str(FIXTURES / "gen_node.mjs"), str(tmp_path)], check=True)
    for path in sorted((HERE / "traces").iterdir()):
        prefix = "node" if path.suffix == ".json" else "python"
        generated = tmp_path / f"{prefix}-{path.name}"
        assert generated.read_bytes() == path.read_bytes(), f"{path.name} is stale: run examples/regenerate.sh"
