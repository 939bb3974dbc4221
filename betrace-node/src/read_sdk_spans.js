// Reads the OpenTelemetry JS ReadableSpans of an array in one pass and returns them as JSON text
// (src/batch.rs): property reads by JavaScript are much cheaper than one Node-API call each.
//
// Returns JSON.stringify([spans, resources]): `spans[i]` is
//   [traceId, spanId, parentSpanId, name, kind, statusCode, statusMessage,
//    [startSeconds, startNanos], [endSeconds, endNanos], resourceIndex, scopeName, attributes]
// or null when element i is not an SDK span whose every field has the plain shape below; such
// elements are read one property at a time by src/spans.rs, which also produces the errors.
// `resources[resourceIndex]` holds the attributes of one resource object (-1: no resource).
// Values are passed as they are: ids, kinds and status codes are checked in Rust.
(function readSdkSpans(items) {
  'use strict'
  const spans = new Array(items.length)
  const resources = []
  const resourceIndexes = new Map()

  for (let i = 0; i < items.length; i++) spans[i] = read(items[i])
  return JSON.stringify([spans, resources])

  function read(span) {
    if (span === null || typeof span !== 'object' || typeof span.spanContext !== 'function') return null
    const context = span.spanContext()
    if (context === null || typeof context !== 'object') return null
    const { traceId, spanId } = context
    if (typeof traceId !== 'string' || typeof spanId !== 'string') return null

    let parentSpanId = ''
    const parent = span.parentSpanContext
    if (parent !== undefined && parent !== null) {
      if (typeof parent !== 'object' || typeof parent.spanId !== 'string') return null
      parentSpanId = parent.spanId
    } else if (span.parentSpanId !== undefined && span.parentSpanId !== null) {
      return null // SDK 1.x: read by src/spans.rs, whose errors name `parentSpanId`
    }

    const { name, kind, status, startTime, endTime } = span
    if (typeof name !== 'string' || !finite(kind)) return null
    let code = 0
    let message = ''
    if (status !== undefined && status !== null) {
      if (typeof status !== 'object' || !finite(status.code)) return null
      code = status.code
      if (typeof status.message === 'string') message = status.message
      else if (status.message !== undefined && status.message !== null) return null
    }
    if (!hrtime(startTime) || !hrtime(endTime)) return null

    const attributes = span.attributes === undefined || span.attributes === null ? {} : span.attributes
    if (!plainAttributes(attributes)) return null
    const resource = resourceIndex(span.resource)
    if (resource === null) return null

    let scopeName = ''
    const scope = span.instrumentationScope ?? span.instrumentationLibrary
    if (scope !== undefined && scope !== null) {
      if (typeof scope !== 'object' || typeof scope.name !== 'string') return null
      scopeName = scope.name
    }
    return [traceId, spanId, parentSpanId, name, kind, code, message, startTime, endTime, resource, scopeName, attributes]
  }

  function finite(value) {
    return typeof value === 'number' && Number.isFinite(value)
  }

  function hrtime(value) {
    return Array.isArray(value) && value.length === 2 && finite(value[0]) && finite(value[1])
  }

  // An object of own properties whose values are strings, booleans, finite numbers or arrays of
  // those (null and undefined allowed): what JSON.stringify writes exactly.
  function plainAttributes(attributes) {
    if (typeof attributes !== 'object') return false
    const proto = Object.getPrototypeOf(attributes)
    if (proto !== Object.prototype && proto !== null) return false
    for (const key in attributes) {
      if (!Object.prototype.hasOwnProperty.call(attributes, key)) return false
      const value = attributes[key]
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item = value[i]
          if (item !== null && item !== undefined && !scalar(item)) return false
        }
      } else if (value !== null && value !== undefined && !scalar(value)) {
        return false
      }
    }
    return true
  }

  function scalar(value) {
    return typeof value === 'string' || typeof value === 'boolean' || finite(value)
  }

  function resourceIndex(resource) {
    if (resource === undefined || resource === null) return -1
    if (typeof resource !== 'object') return null
    let index = resourceIndexes.get(resource)
    if (index === undefined) {
      const attributes = resource.attributes === undefined || resource.attributes === null ? {} : resource.attributes
      if (!plainAttributes(attributes)) return null
      index = resources.length
      resourceIndexes.set(resource, index)
      resources.push(attributes)
    }
    return index
  }
})
