#!/usr/bin/env node
// Capture the OTLP/HTTP bodies the real OpenTelemetry JavaScript SDK exporters send.
//
// In: scenarios.json (README.md "Scenario file"), an output directory.
// Out: for each scenario OUTDIR/node-<scenario>.json — the exact body of the one request that
// @opentelemetry/exporter-trace-otlp-http (OTLP/JSON) POSTed to a receiver on 127.0.0.1 — and
// OUTDIR/node-<scenario>.pb from @opentelemetry/exporter-trace-otlp-proto (protobuf), plus
// OUTDIR/node-manifest.json, every span as the SDK saw it (README.md "Manifest").
// No network besides loopback.
//
// Usage: node gen_node.mjs OUTDIR [--scenarios FILE]

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The SDK reads OTEL_* variables (endpoint, compression, limits, sampler...) when it is loaded
// and configured; a stray one would change the captured bodies. Scrub them before loading it.
for (const key of Object.keys(process.env)) {
  if (key.startsWith('OTEL_')) delete process.env[key];
}

const api = await import('@opentelemetry/api');
const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
const { resourceFromAttributes, defaultResource } = await import('@opentelemetry/resources');
const { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, InMemorySpanExporter } =
  await import('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter: OTLPJsonExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
const { OTLPTraceExporter: OTLPProtoExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');

const HERE = dirname(fileURLToPath(import.meta.url));
const MANIFEST_FORMAT = 'betrace-otel-manifest/1';
const SCENARIO_FORMAT = 'betrace-otel-scenarios/1';
const KIND = {
  internal: api.SpanKind.INTERNAL,
  server: api.SpanKind.SERVER,
  client: api.SpanKind.CLIENT,
  producer: api.SpanKind.PRODUCER,
  consumer: api.SpanKind.CONSUMER,
};
const KIND_NAME = Object.fromEntries(Object.entries(KIND).map(([k, v]) => [v, k]));
const STATUS_NAME = {
  [api.SpanStatusCode.UNSET]: 'unset',
  [api.SpanStatusCode.OK]: 'ok',
  [api.SpanStatusCode.ERROR]: 'error',
};

class FixtureError extends Error {}

/** Milliseconds (at most 3 decimals, >= 0) to nanoseconds as a BigInt. */
function msToNs(value, where) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FixtureError(`${where}: expected a non-negative number of milliseconds, got ${value}`);
  }
  const micros = Math.round(value * 1000);
  if (Math.abs(value * 1000 - micros) > 1e-6) {
    throw new FixtureError(`${where}: ${value} has more than 3 decimals (microsecond precision)`);
  }
  return BigInt(micros) * 1000n;
}

/** `YYYY-MM-DDTHH:MM:SSZ` to Unix nanoseconds as a BigInt. */
function isoToNs(text, where) {
  if (typeof text !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(text)) {
    throw new FixtureError(`${where}: expected YYYY-MM-DDTHH:MM:SSZ, got ${text}`);
  }
  return BigInt(Date.parse(text)) * 1_000_000n;
}

const hrTime = (ns) => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
const hrToNs = ([s, n]) => BigInt(s) * 1_000_000_000n + BigInt(n);

/** Deterministic ids: SHA-256 of `<language>/<scenario>/<n>` (same scheme as gen_python.py). */
class ScenarioIdGenerator {
  constructor(language) {
    this.language = language;
    this.reset('');
  }
  reset(scenario) {
    this.scenario = scenario;
    this.counter = 0;
  }
  next(bytes) {
    for (;;) {
      this.counter += 1;
      const hex = createHash('sha256')
        .update(`${this.language}/${this.scenario}/${this.counter}`)
        .digest('hex')
        .slice(0, bytes * 2);
      if (!/^0+$/.test(hex)) return hex;
    }
  }
  generateTraceId() {
    return this.next(16);
  }
  generateSpanId() {
    return this.next(8);
  }
}

/** A minimal OTLP/HTTP endpoint on 127.0.0.1 (free port) that records request bodies. */
async function startReceiver() {
  let received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url,
        contentType: req.headers['content-type'] ?? '',
        contentEncoding: req.headers['content-encoding'] ?? '',
        body: Buffer.concat(chunks),
      });
      if ((req.headers['content-type'] ?? '').startsWith('application/json')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': '0' });
        res.end();
      }
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    take() {
      const taken = received;
      received = [];
      return taken;
    },
    close() {
      server.closeAllConnections();
      return new Promise((ok) => server.close(ok));
    },
  };
}

/** Start, fill and end the span for `node`, its children inside it (README.md). */
function emit(node, parent, parentService, baseNs, tracers, refs, ref) {
  const service = node.service ?? parentService;
  let ctx;
  if (parent === null) {
    ctx = api.ROOT_CONTEXT;
  } else if (service === parentService) {
    ctx = api.trace.setSpan(api.ROOT_CONTEXT, parent);
  } else {
    // Another service: carry the context over W3C `traceparent`, as an HTTP call would.
    const headers = {};
    const propagator = new W3CTraceContextPropagator();
    propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, parent), headers, api.defaultTextMapSetter);
    ctx = propagator.extract(api.ROOT_CONTEXT, headers, api.defaultTextMapGetter);
  }
  const tracer = tracers[service];
  if (!tracer) throw new FixtureError(`${node.name}: unknown service ${service}`);
  const kind = KIND[node.kind];
  if (kind === undefined) throw new FixtureError(`${node.name}: unknown kind ${node.kind}`);
  const span = tracer.startSpan(
    node.name,
    {
      kind,
      attributes: node.attributes ?? {},
      startTime: hrTime(baseNs + msToNs(node.start_ms, node.name)),
    },
    ctx,
  );
  refs.set(span.spanContext().spanId, ref);
  for (const event of node.events ?? []) {
    span.addEvent(event.name, event.attributes ?? {}, hrTime(baseNs + msToNs(event.at_ms, event.name)));
  }
  (node.children ?? []).forEach((child, i) => {
    emit(child, span, service, baseNs, tracers, refs, `${ref}.${i}`);
  });
  const status = node.status ?? 'unset';
  if (status === 'error') {
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: node.status_message });
  } else if (status === 'ok') {
    span.setStatus({ code: api.SpanStatusCode.OK });
  } else if (status !== 'unset') {
    throw new FixtureError(`${node.name}: unknown status ${status}`);
  }
  span.end(hrTime(baseNs + msToNs(node.end_ms, node.name)));
}

/** A manifest attribute value (README.md "Manifest"): JS numbers follow the OTLP transformer,
 *  which sends an integral number as intValue and any other number as doubleValue. */
function typed(value) {
  if (typeof value === 'boolean') return { type: 'bool', value };
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'int' : 'double', value };
  if (typeof value === 'string') return { type: 'string', value };
  if (Array.isArray(value)) return { type: 'array', value: value.map(typed) };
  throw new FixtureError(`attribute value ${JSON.stringify(value)} has no manifest type`);
}

function typedMap(attrs) {
  const out = {};
  for (const key of Object.keys(attrs ?? {}).sort()) out[key] = typed(attrs[key]);
  return out;
}

function manifestSpan(span, ref) {
  const ctx = span.spanContext();
  const scope = span.instrumentationScope;
  return {
    ref,
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: span.parentSpanContext?.spanId ?? null,
    name: span.name,
    kind: KIND_NAME[span.kind],
    status: STATUS_NAME[span.status.code],
    status_message: span.status.message || null,
    start_time_unix_nano: hrToNs(span.startTime),
    end_time_unix_nano: hrToNs(span.endTime),
    service_name: span.resource.attributes['service.name'] ?? null,
    scope: { name: scope.name, version: scope.version ?? null },
    attributes: typedMap(span.attributes),
    events: span.events.map((e) => ({
      name: e.name,
      time_unix_nano: hrToNs(e.time),
      attributes: typedMap(e.attributes),
    })),
  };
}

const flat = (v) =>
  JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `\u0000${x}\u0000` : x)).replace(
    /"\\u0000(-?\d+)\\u0000"/g,
    '$1',
  );

/** JSON text: two-space indent, containers that fit in 100 columns on one line, BigInt as
 *  exact JSON integers (same layout as scenario_model.dumps_manifest). */
function dumpsManifest(doc) {
  const dump = (value, indent) => {
    const text = flat(value);
    const container = value !== null && typeof value === 'object';
    const empty = container && Object.keys(value).length === 0;
    if (!container || empty || text.length + 2 * indent <= 100) return text;
    const pad = '  '.repeat(indent + 1);
    const close = '  '.repeat(indent);
    if (Array.isArray(value)) {
      return `[\n${value.map((v) => pad + dump(v, indent + 1)).join(',\n')}\n${close}]`;
    }
    const items = Object.entries(value).map(([k, v]) => `${pad}${JSON.stringify(k)}: ${dump(v, indent + 1)}`);
    return `{\n${items.join(',\n')}\n${close}}`;
  };
  return `${dump(doc, 0)}\n`;
}

function packageVersion(name) {
  return JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

async function generate(outdir, scenariosPath) {
  const doc = JSON.parse(readFileSync(scenariosPath, 'utf8'));
  if (doc.format !== SCENARIO_FORMAT) {
    throw new FixtureError(`${scenariosPath}: format must be ${SCENARIO_FORMAT} (run gen_python.py for a full check)`);
  }
  mkdirSync(outdir, { recursive: true });
  const receiver = await startReceiver();
  const exporters = {
    json: new OTLPJsonExporter({ url: `${receiver.url}/json/v1/traces`, compression: 'none', timeoutMillis: 10_000 }),
    proto: new OTLPProtoExporter({ url: `${receiver.url}/proto/v1/traces`, compression: 'none', timeoutMillis: 10_000 }),
  };
  // One batch processor per exporter, shared by every service's provider: a flush sends all
  // spans of a scenario, grouped by resource, in one request. The long delay keeps the timer
  // from sending a partial batch on its own.
  const batches = Object.fromEntries(
    Object.entries(exporters).map(([k, exporter]) => [
      k,
      new BatchSpanProcessor(exporter, {
        maxQueueSize: 8192,
        maxExportBatchSize: 8192,
        scheduledDelayMillis: 3_600_000,
        exportTimeoutMillis: 30_000,
      }),
    ]),
  );
  const memory = new InMemorySpanExporter();
  const simple = new SimpleSpanProcessor(memory);
  const ids = new ScenarioIdGenerator('node');
  const providers = {};
  const tracers = {};
  const resources = {};
  for (const [name, svc] of Object.entries(doc.services)) {
    const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': name, ...(svc.resource ?? {}) }));
    const provider = new BasicTracerProvider({
      resource,
      idGenerator: ids,
      spanProcessors: [simple, batches.json, batches.proto],
    });
    providers[name] = provider;
    resources[name] = typedMap(resource.attributes);
    tracers[name] = provider.getTracer(svc.scope.name, svc.scope.version);
  }

  const manifest = {
    format: MANIFEST_FORMAT,
    generator: 'node',
    sdk: Object.fromEntries(
      [
        '@opentelemetry/api',
        '@opentelemetry/sdk-trace-base',
        '@opentelemetry/resources',
        '@opentelemetry/exporter-trace-otlp-http',
        '@opentelemetry/exporter-trace-otlp-proto',
        '@opentelemetry/otlp-transformer',
      ].map((n) => [n, packageVersion(n)]),
    ),
    scenarios_file: 'scenarios.json',
    resources,
    scenarios: [],
  };
  const expected = {
    json: { path: '/json/v1/traces', contentType: 'application/json', ext: 'json', encoding: 'otlp-json' },
    proto: { path: '/proto/v1/traces', contentType: 'application/x-protobuf', ext: 'pb', encoding: 'otlp-protobuf' },
  };
  try {
    for (const scenario of doc.scenarios) {
      const name = scenario.name;
      ids.reset(name);
      await memory.reset();
      const refs = new Map();
      emit(scenario.root, null, null, isoToNs(scenario.start, name), tracers, refs, '0');
      await Promise.all(Object.values(batches).map((b) => b.forceFlush()));
      const sent = receiver.take();
      const files = [];
      for (const [key, want] of Object.entries(expected)) {
        const got = sent.filter((r) => r.path === want.path);
        if (got.length !== 1) {
          throw new FixtureError(`${name}: expected 1 ${key} export request, the exporter sent ${got.length}`);
        }
        const req = got[0];
        if (!req.contentType.startsWith(want.contentType) || !['', 'identity'].includes(req.contentEncoding)) {
          throw new FixtureError(`${name}: unexpected ${key} request ${req.contentType} encoding ${req.contentEncoding}`);
        }
        const file = `node-${name}.${want.ext}`;
        writeFileSync(join(outdir, file), req.body);
        files.push({
          path: file,
          encoding: want.encoding,
          content_type: req.contentType,
          bytes: req.body.length,
          sha256: createHash('sha256').update(req.body).digest('hex'),
        });
      }
      if (sent.length !== files.length) {
        throw new FixtureError(`${name}: ${sent.length - files.length} unexpected request(s)`);
      }
      const finished = memory.getFinishedSpans();
      for (const span of finished) {
        const service = span.resource.attributes['service.name'];
        if (flat(typedMap(span.resource.attributes)) !== flat(resources[service])) {
          throw new FixtureError(`${name}: span ${span.name} carries another resource than ${service}'s provider`);
        }
      }
      const spans = finished.map((s) => manifestSpan(s, refs.get(s.spanContext().spanId)));
      spans.sort((a, b) =>
        a.start_time_unix_nano < b.start_time_unix_nano
          ? -1
          : a.start_time_unix_nano > b.start_time_unix_nano
            ? 1
            : a.span_id < b.span_id
              ? -1
              : a.span_id > b.span_id
                ? 1
                : 0,
      );
      manifest.scenarios.push({
        name,
        description: scenario.description ?? '',
        files,
        trace_ids: [...new Set(spans.map((s) => s.trace_id))].sort(),
        span_count: spans.length,
        spans,
      });
    }
  } finally {
    await Promise.all(Object.values(providers).map((p) => p.shutdown()));
    await receiver.close();
  }
  writeFileSync(join(outdir, 'node-manifest.json'), dumpsManifest(manifest));
}

function usage() {
  console.error('usage: node gen_node.mjs OUTDIR [--scenarios FILE]');
  process.exit(2);
}

const args = process.argv.slice(2);
let outdir = null;
let scenariosPath = join(HERE, 'scenarios.json');
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--scenarios') {
    if (i + 1 >= args.length) usage();
    scenariosPath = args[++i];
  } else if (args[i].startsWith('-') || outdir !== null) {
    usage();
  } else {
    outdir = args[i];
  }
}
if (outdir === null) usage();

api.diag.setLogger(new api.DiagConsoleLogger(), api.DiagLogLevel.WARN);
try {
  await generate(resolve(outdir), resolve(scenariosPath));
} catch (err) {
  console.error(`gen_node.mjs: error: ${err instanceof FixtureError ? err.message : err.stack}`);
  process.exit(1);
}
