//! Python bindings (filled by the bindings work).
