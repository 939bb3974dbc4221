"""Scenario file and manifest helpers shared by gen_python.py and check_fixtures.py.

In: `scenarios.json` (format `betrace-otel-scenarios/1`, described in README.md).
Out: validated scenario dicts, Unix-nanosecond times, and the typed attribute values written
to the manifests (`{"type": ..., "value": ...}`, README.md "Manifest").
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

SCENARIO_FORMAT = "betrace-otel-scenarios/1"
MANIFEST_FORMAT = "betrace-otel-manifest/1"
KINDS = ("internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIOS = HERE / "scenarios.json"


class ScenarioError(ValueError):
    """A scenario file that does not follow README.md "Scenario file"."""


def ms_to_ns(value: Any, where: str) -> int:
    """Milliseconds (a JSON number with at most 3 decimals, >= 0) to nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{where}: expected a number of milliseconds, got {value!r}")
    if value < 0:
        raise ScenarioError(f"{where}: negative time {value!r}")
    micros = round(value * 1000)
    if abs(value * 1000 - micros) > 1e-6:
        raise ScenarioError(f"{where}: {value!r} has more than 3 decimals (microsecond precision)")
    return micros * 1000


def iso_to_ns(text: Any, where: str) -> int:
    """`YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds) to Unix nanoseconds."""
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError) as err:
        raise ScenarioError(f"{where}: expected YYYY-MM-DDTHH:MM:SSZ, got {text!r}") from err
    return int(moment.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000_000


def _check_attribute(key: str, value: Any, where: str) -> None:
    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            if not -(2**53) < v < 2**53:
                raise ScenarioError(f"{where}: `{key}`: integer {v} is not exact in JavaScript")
            return "int"
        if isinstance(v, float):
            # JavaScript has one number type: the JS SDK sends an integral float as intValue.
            # Keeping every float non-integral gives both SDKs the same OTLP types.
            if not math.isfinite(v) or v == int(v):
                raise ScenarioError(f"{where}: `{key}`: float {v} must be finite and non-integral")
            return "double"
        if isinstance(v, str):
            return "string"
        raise ScenarioError(f"{where}: `{key}`: unsupported attribute value {v!r}")

    if isinstance(value, list):
        if not value:
            raise ScenarioError(f"{where}: `{key}`: empty arrays are not used")
        types = {scalar(v) for v in value}
        if len(types) != 1:
            raise ScenarioError(f"{where}: `{key}`: array mixes types {sorted(types)}")
    else:
        scalar(value)


def _check_attributes(attrs: Any, where: str) -> None:
    if not isinstance(attrs, dict):
        raise ScenarioError(f"{where}: attributes must be an object")
    for key, value in attrs.items():
        _check_attribute(key, value, where)


def _check_span(node: Any, where: str, services: dict, parent_service: str | None) -> None:
    if not isinstance(node, dict):
        raise ScenarioError(f"{where}: a span must be an object")
    allowed = {
        "name",
        "service",
        "kind",
        "start_ms",
        "end_ms",
        "status",
        "status_message",
        "attributes",
        "events",
        "children",
    }
    extra = set(node) - allowed
    if extra:
        raise ScenarioError(f"{where}: unknown field(s) {sorted(extra)}")
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: `name` must be a non-empty string")
    where = f"{where} ({name})"
    service = node.get("service", parent_service)
    if service not in services:
        raise ScenarioError(f"{where}: unknown service {service!r}")
    if node.get("kind") not in KINDS:
        raise ScenarioError(f"{where}: `kind` must be one of {KINDS}")
    if node.get("status", "unset") not in STATUSES:
        raise ScenarioError(f"{where}: `status` must be one of {STATUSES}")
    if "status_message" in node and node.get("status") != "error":
        raise ScenarioError(f"{where}: `status_message` needs status error")
    start = ms_to_ns(node.get("start_ms"), f"{where}.start_ms")
    end = ms_to_ns(node.get("end_ms"), f"{where}.end_ms")
    if end < start:
        raise ScenarioError(f"{where}: ends before it starts")
    _check_attributes(node.get("attributes", {}), where)
    for i, event in enumerate(node.get("events", [])):
        ew = f"{where}.events[{i}]"
        if set(event) - {"name", "at_ms", "attributes"} or not isinstance(event.get("name"), str):
            raise ScenarioError(f"{ew}: expected {{name, at_ms, attributes}}")
        at = ms_to_ns(event.get("at_ms"), f"{ew}.at_ms")
        if not start <= at <= end:
            raise ScenarioError(f"{ew}: time outside its span")
        _check_attributes(event.get("attributes", {}), ew)
    for i, child in enumerate(node.get("children", [])):
        _check_span(child, f"{where}.children[{i}]", services, service)


def load_scenarios(path: Path = DEFAULT_SCENARIOS) -> dict:
    """Read and validate a scenario file; raises ScenarioError naming the bad field."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ScenarioError(f"{path}: {err}") from err
    if doc.get("format") != SCENARIO_FORMAT:
        raise ScenarioError(f"{path}: `format` must be {SCENARIO_FORMAT!r}")
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        raise ScenarioError(f"{path}: `services` must be a non-empty object")
    for name, svc in services.items():
        _check_attributes(svc.get("resource", {}), f"services.{name}.resource")
        scope = svc.get("scope", {})
        if not isinstance(scope.get("name"), str) or not isinstance(scope.get("version"), str):
            raise ScenarioError(f"services.{name}.scope: needs string `name` and `version`")
    names = set()
    for i, scenario in enumerate(doc.get("scenarios", [])):
        where = f"scenarios[{i}]"
        name = scenario.get("name")
        if not isinstance(name, str) or not name.replace("-", "").isalnum() or name in names:
            raise ScenarioError(f"{where}: `name` must be a unique slug, got {name!r}")
        names.add(name)
        iso_to_ns(scenario.get("start"), f"{where}.start")
        _check_span(scenario.get("root"), f"{where}.root", services, None)
    if not names:
        raise ScenarioError(f"{path}: no scenarios")
    return doc


def typed(value: Any) -> dict:
    """A manifest attribute value: `{"type": "string"|"bool"|"int"|"double"|"array", "value": ...}`.

    Arrays hold typed values. Tuples and lists are both arrays (the Python SDK stores tuples).
    """
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "double", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, (list, tuple)):
        return {"type": "array", "value": [typed(v) for v in value]}
    raise TypeError(f"attribute value {value!r} has no manifest type")


def dumps_manifest(doc: Any) -> str:
    """JSON text of a manifest: two-space indent, containers that fit in 100 columns on one line."""

    def dump(value: Any, indent: int) -> str:
        flat = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if not isinstance(value, (dict, list)) or not value or len(flat) + 2 * indent <= 100:
            return flat
        pad = "  " * (indent + 1)
        if isinstance(value, dict):
            items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {dump(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
        items = [f"{pad}{dump(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"

    return dump(doc, 0) + "\n"


def typed_map(attrs: Any) -> dict:
    """Typed values for an attribute mapping, keys sorted."""
    return {key: typed(attrs[key]) for key in sorted(attrs)}
