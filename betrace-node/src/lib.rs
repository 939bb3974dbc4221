//! Node.js bindings (filled by the bindings work).
