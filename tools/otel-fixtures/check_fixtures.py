#!/usr/bin/env python3
"""Check generated fixtures against their manifests, and the two SDKs against each other.

In: a directory written by gen_python.py and/or gen_node.mjs.
Out: exit 0 when every fixture file decodes (protobuf with opentelemetry-proto, OTLP/JSON by
the OTLP/JSON rules: hex ids, lowerCamelCase, 64-bit integers as strings or numbers) to exactly
the spans of its manifest scenario, and both manifests (when both exist) describe the same
scenarios, span for span (matched by `ref`; ids and the telemetry.sdk.* resource attributes
differ by design). Otherwise every mismatch is printed and the exit code is 1.

Usage: check_fixtures.py OUTDIR
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario_model import MANIFEST_FORMAT  # noqa: E402

KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]
STATUSES = ["unset", "ok", "error"]
JSON_KINDS = {f"SPAN_KIND_{k.upper()}": i for i, k in enumerate(KINDS)}
JSON_STATUSES = {f"STATUS_CODE_{s.upper()}": i for i, s in enumerate(STATUSES)}


class Mismatch(Exception):
    pass


def _int64(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise Mismatch(f"{where}: boolean where an integer belongs")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise Mismatch(f"{where}: {value!r} is not a 64-bit integer")


def _hex_id(value: Any, size: int, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) != 2 * size or value.lower() != value:
        raise Mismatch(f"{where}: {value!r} is not {2 * size} lowercase hex digits")
    int(value, 16)
    return value


def _any_value(value: dict, where: str) -> dict:
    """An OTLP/JSON (or MessageToDict) AnyValue as a manifest typed value."""
    if len(value) != 1:
        raise Mismatch(f"{where}: AnyValue with fields {sorted(value)}")
    ((field, inner),) = value.items()
    if field == "stringValue":
        return {"type": "string", "value": inner}
    if field == "boolValue":
        return {"type": "bool", "value": inner}
    if field == "intValue":
        return {"type": "int", "value": _int64(inner, where)}
    if field == "doubleValue":
        return {"type": "double", "value": float(inner)}
    if field == "arrayValue":
        return {"type": "array", "value": [_any_value(v, where) for v in inner.get("values", [])]}
    if field == "bytesValue":
        return {"type": "bytes", "value": base64.b64decode(inner).hex()}
    raise Mismatch(f"{where}: unsupported AnyValue field {field}")


def _attributes(items: list, where: str) -> dict:
    out = {}
    for item in items or []:
        key = item["key"]
        if key in out:
            raise Mismatch(f"{where}: attribute {key} repeated")
        out[key] = _any_value(item.get("value", {}), f"{where}.{key}")
    return dict(sorted(out.items()))


def _enum(value: Any, names: dict, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value in names:
        return names[value]
    raise Mismatch(f"{where}: unknown enum value {value!r}")


def _id_field(span: dict, field: str, size: int, proto: bool, where: str) -> str | None:
    raw = span.get(field)
    if proto and raw:
        raw = base64.b64decode(raw).hex()
    return _hex_id(raw, size, f"{where}.{field}")


def flatten(request: dict, *, proto: bool) -> tuple[list[dict], dict]:
    """Spans of an OTLP/JSON-shaped request in manifest form, plus resources by service name.

    `proto`: the dict came from MessageToDict of a protobuf (ids base64, enums as names).
    """
    spans, resources = [], {}
    for ri, rs in enumerate(request.get("resourceSpans", [])):
        rwhere = f"resourceSpans[{ri}]"
        resource = _attributes(rs.get("resource", {}).get("attributes"), f"{rwhere}.resource")
        service = resource.get("service.name", {}).get("value")
        if service in resources and resources[service] != resource:
            raise Mismatch(f"{rwhere}: two different resources for service {service}")
        resources[service] = resource
        for si, ss in enumerate(rs.get("scopeSpans", [])):
            scope = ss.get("scope", {})
            for pi, span in enumerate(ss.get("spans", [])):
                where = f"{rwhere}.scopeSpans[{si}].spans[{pi}]"
                ids = {
                    field: _id_field(span, field, size, proto, where)
                    for field, size in (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))
                }
                status = span.get("status", {})
                spans.append(
                    {
                        "trace_id": ids["traceId"],
                        "span_id": ids["spanId"],
                        "parent_span_id": ids["parentSpanId"],
                        "name": span.get("name", ""),
                        "kind": KINDS[_enum(span.get("kind", 0), JSON_KINDS, f"{where}.kind")],
                        "status": STATUSES[_enum(status.get("code", 0), JSON_STATUSES, f"{where}.status")],
                        "status_message": status.get("message") or None,
                        "start_time_unix_nano": _int64(span.get("startTimeUnixNano"), f"{where}.startTimeUnixNano"),
                        "end_time_unix_nano": _int64(span.get("endTimeUnixNano"), f"{where}.endTimeUnixNano"),
                        "service_name": service,
                        "scope": {"name": scope.get("name", ""), "version": scope.get("version") or None},
                        "attributes": _attributes(span.get("attributes"), f"{where}.attributes"),
                        "events": [
                            {
                                "name": e.get("name", ""),
                                "time_unix_nano": _int64(e.get("timeUnixNano"), f"{where}.events"),
                                "attributes": _attributes(e.get("attributes"), f"{where}.events"),
                            }
                            for e in span.get("events", [])
                        ],
                    }
                )
    return spans, resources


def decode_file(path: Path, encoding: str) -> tuple[list[dict], dict]:
    data = path.read_bytes()
    if encoding == "otlp-protobuf":
        request = ExportTraceServiceRequest()
        request.ParseFromString(data)
        return flatten(MessageToDict(request), proto=True)
    if encoding == "otlp-json":
        return flatten(json.loads(data.decode("utf-8")), proto=False)
    raise Mismatch(f"{path.name}: unknown encoding {encoding}")


def _diff(a: Any, b: Any, where: str, out: list[str], names: tuple[str, str] = ("file", "manifest")) -> None:
    """Append to `out` every difference between `a` and `b` (types included: 1 != 1.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {names[0] if key in a else names[1]}")
            else:
                _diff(a[key], b[key], f"{where}.{key}", out, names)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out, names)
    elif a != b or type(a) is not type(b):
        out.append(f"{where}: {names[0]} {a!r} != {names[1]} {b!r}")


def check_manifest(outdir: Path, manifest_path: Path) -> list[str]:
    problems: list[str] = []
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        return [f"{manifest_path.name}: format is not {MANIFEST_FORMAT}"]
    for scenario in manifest["scenarios"]:
        want = {s["span_id"]: {k: v for k, v in s.items() if k != "ref"} for s in scenario["spans"]}
        if len(want) != scenario["span_count"]:
            problems.append(f"{scenario['name']}: span_count {scenario['span_count']} != {len(want)} spans")
        for f in scenario["files"]:
            try:
                spans, resources = decode_file(outdir / f["path"], f["encoding"])
            except (Mismatch, OSError, ValueError, KeyError) as err:
                problems.append(f"{f['path']}: {err}")
                continue
            got = {s["span_id"]: s for s in spans}
            if len(got) != len(spans):
                problems.append(f"{f['path']}: a span id appears twice")
            diffs: list[str] = []
            _diff(got, want, f["path"], diffs)
            for service, resource in resources.items():
                _diff(resource, manifest["resources"].get(service), f"{f['path']}: resource {service}", diffs)
            problems.extend(diffs)
    return problems


def _comparable(span: dict, by_id: dict) -> dict:
    parent = by_id.get(span["parent_span_id"])
    out = {k: v for k, v in span.items() if k not in ("trace_id", "span_id", "parent_span_id")}
    out["parent_ref"] = parent["ref"] if parent else None
    return out


def cross_check(py: dict, node: dict) -> list[str]:
    problems: list[str] = []
    if [s["name"] for s in py["scenarios"]] != [s["name"] for s in node["scenarios"]]:
        return ["python and node manifests hold different scenarios"]

    def strip(res: dict) -> dict:
        return {k: v for k, v in res.items() if not k.startswith("telemetry.sdk.")}

    _diff(
        {k: strip(v) for k, v in py["resources"].items()},
        {k: strip(v) for k, v in node["resources"].items()},
        "resources",
        problems,
        ("python", "node"),
    )
    for ps, ns in zip(py["scenarios"], node["scenarios"]):
        pid = {s["span_id"]: s for s in ps["spans"]}
        nid = {s["span_id"]: s for s in ns["spans"]}
        pref = {s["ref"]: _comparable(s, pid) for s in ps["spans"]}
        nref = {s["ref"]: _comparable(s, nid) for s in ns["spans"]}
        _diff(pref, nref, f"{ps['name']} ref", problems, ("python", "node"))
        if set(ps["trace_ids"]) & set(ns["trace_ids"]):
            problems.append(f"{ps['name']}: python and node share a trace id")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(argv[0])
    manifests = {g: outdir / f"{g}-manifest.json" for g in ("python", "node")}
    present = {g: p for g, p in manifests.items() if p.exists()}
    if not present:
        print(f"check_fixtures.py: error: no manifest in {outdir}", file=sys.stderr)
        return 1
    problems: list[str] = []
    for path in present.values():
        problems.extend(check_manifest(outdir, path))
    if len(present) == 2:
        problems.extend(cross_check(*(json.loads(p.read_text(encoding="utf-8")) for p in present.values())))
    for problem in problems[:200]:
        print(f"check_fixtures.py: {problem}", file=sys.stderr)
    if len(problems) > 200:
        print(f"check_fixtures.py: ... {len(problems) - 200} more", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
