"""Tests of the fixture generators: they run the real SDKs and their output is what README.md says.

In: scenarios.json, gen_python.py, gen_node.mjs (Node.js and node_modules from
.ci/setup-deps.sh). Out: pytest results.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_fixtures  # noqa: E402
from scenario_model import ScenarioError, iso_to_ns, load_scenarios, ms_to_ns, typed_map  # noqa: E402

SCENARIOS = load_scenarios()
NAMES = [s["name"] for s in SCENARIOS["scenarios"]]
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, str(HERE / "gen_python.py"), str(outdir)], check=True)
    subprocess.run(["node", str(HERE / "gen_node.mjs"), str(outdir)], check=True)
    return outdir


def manifest(out: Path, generator: str) -> dict:
    return json.loads((out / f"{generator}-manifest.json").read_text(encoding="utf-8"))


def test_every_scenario_has_its_files(out: Path) -> None:
    want = {"python-manifest.json", "node-manifest.json"}
    for name in NAMES:
        want |= {f"python-{name}.pb", f"node-{name}.json", f"node-{name}.pb"}
    assert {p.name for p in out.iterdir()} == want
    assert len(NAMES) >= 12


def test_files_decode_to_their_manifests_and_sdks_agree(out: Path) -> None:
    assert check_fixtures.main([str(out)]) == 0


def _walk(node: dict, service: str | None, base: int, ref: str, out: dict) -> None:
    service = node.get("service", service)
    out[ref] = {
        "name": node["name"],
        "kind": node["kind"],
        "status": node.get("status", "unset"),
        "status_message": node.get("status_message"),
        "start_time_unix_nano": base + ms_to_ns(node["start_ms"], ref),
        "end_time_unix_nano": base + ms_to_ns(node["end_ms"], ref),
        "service_name": service,
        "attributes": typed_map(node.get("attributes", {})),
        "events": [
            {
                "name": e["name"],
                "time_unix_nano": base + ms_to_ns(e["at_ms"], ref),
                "attributes": typed_map(e.get("attributes", {})),
            }
            for e in node.get("events", [])
        ],
    }
    for i, child in enumerate(node.get("children", [])):
        _walk(child, service, base, f"{ref}.{i}", out)


@pytest.mark.parametrize("generator", ["python", "node"])
def test_manifest_spans_are_the_scenario_spans(out: Path, generator: str) -> None:
    """The SDK kept every name, kind, status, time (ns), attribute type and event as given."""
    scenarios = {s["name"]: s for s in SCENARIOS["scenarios"]}
    for sc in manifest(out, generator)["scenarios"]:
        want: dict = {}
        source = scenarios[sc["name"]]
        _walk(source["root"], None, iso_to_ns(source["start"], sc["name"]), "0", want)
        got = {s["ref"]: {k: s[k] for k in want["0"]} for s in sc["spans"]}
        assert got == want, sc["name"]


@pytest.mark.parametrize("generator", ["python", "node"])
def test_spans_form_one_tree_per_scenario(out: Path, generator: str) -> None:
    for sc in manifest(out, generator)["scenarios"]:
        assert len(sc["trace_ids"]) == 1, sc["name"]
        by_id = {s["span_id"]: s for s in sc["spans"]}
        roots = [s for s in sc["spans"] if s["parent_span_id"] is None]
        assert [r["ref"] for r in roots] == ["0"], sc["name"]
        for s in sc["spans"]:
            assert HEX32.fullmatch(s["trace_id"]) and HEX16.fullmatch(s["span_id"])
            if s["parent_span_id"] is not None:
                parent = by_id[s["parent_span_id"]]
                assert s["ref"].rsplit(".", 1)[0] == parent["ref"], (sc["name"], s["ref"])


def test_trace_ids_are_distinct_across_scenarios_and_sdks(out: Path) -> None:
    ids = [t for g in ("python", "node") for sc in manifest(out, g)["scenarios"] for t in sc["trace_ids"]]
    assert len(ids) == len(set(ids)) == 2 * len(NAMES)


def test_node_json_bodies_are_otlp_json_with_hex_ids(out: Path) -> None:
    for name in NAMES:
        body = json.loads((out / f"node-{name}.json").read_text(encoding="utf-8"))
        services = set()
        for rs in body["resourceSpans"]:
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            services.add(attrs["service.name"]["stringValue"])
            for ss in rs["scopeSpans"]:
                assert set(ss["scope"]) >= {"name", "version"}
                for span in ss["spans"]:
                    assert HEX32.fullmatch(span["traceId"]) and HEX16.fullmatch(span["spanId"])
                    assert "parentSpanId" not in span or HEX16.fullmatch(span["parentSpanId"])
                    assert isinstance(span["kind"], int) and 1 <= span["kind"] <= 5
                    assert re.fullmatch(r"\d{19}", span["startTimeUnixNano"])
                    assert re.fullmatch(r"\d{19}", span["endTimeUnixNano"])
        spans = manifest(out, "node")["scenarios"][NAMES.index(name)]["spans"]
        assert services == {s["service_name"] for s in spans}, name


def test_protobuf_bodies_hold_one_resource_per_service(out: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for generator in ("python", "node"):
        for sc in manifest(out, generator)["scenarios"]:
            request = ExportTraceServiceRequest()
            request.ParseFromString((out / f"{generator}-{sc['name']}.pb").read_bytes())
            names = [
                next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                for rs in request.resource_spans
            ]
            assert sorted(names) == sorted({s["service_name"] for s in sc["spans"]}), sc["name"]


def test_checker_finds_a_changed_body_or_manifest(out: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    body = copy / "node-conforming-order.json"
    body.write_text(body.read_text(encoding="utf-8").replace('"fraud_check"', '"fraud-check"'), encoding="utf-8")
    assert check_fixtures.main([str(copy)]) == 1

    shutil.copy(out / "node-conforming-order.json", body)
    assert check_fixtures.main([str(copy)]) == 0
    path = copy / "python-manifest.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    span = next(s for s in doc["scenarios"][0]["spans"] if s["name"] == "checkout")
    span["attributes"]["order.amount"] = {"type": "string", "value": "1249.5"}
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert check_fixtures.main([str(copy)]) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["scenarios"][0]["root"]["attributes"].update({"order.amount": 1250.0}),
            "must be finite and non-integral",
        ),
        (lambda d: d["scenarios"][0]["root"].update({"kind": "server-side"}), "`kind` must be one of"),
        (lambda d: d["scenarios"][0]["root"].update({"end_ms": 0.0001}), "more than 3 decimals"),
        (lambda d: d["scenarios"][0]["root"]["events"][0].update({"at_ms": 99999}), "time outside its span"),
        (lambda d: d["scenarios"][1].update({"name": d["scenarios"][0]["name"]}), "unique slug"),
        (lambda d: d["scenarios"][0]["root"]["attributes"].update({"x": [1, "a"]}), "array mixes types"),
        (lambda d: d["scenarios"][0]["root"].update({"service": "nowhere"}), "unknown service"),
    ],
)
def test_scenario_file_errors_name_the_place(tmp_path: Path, change, message: str) -> None:
    doc = json.loads((HERE / "scenarios.json").read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ScenarioError, match=re.escape(message)) as err:
        load_scenarios(path)
    assert "scenarios[" in str(err.value)
    result = subprocess.run(
        [sys.executable, str(HERE / "gen_python.py"), str(tmp_path / "o"), "--scenarios", str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and message in result.stderr
