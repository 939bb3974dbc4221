//! Test support shared by the test suites and benchmarks of every crate; a dev-dependency
//! only, never published.
//!
//! - [`conformance`]: the loader of the DSL conformance corpora (the shared
//!   `../shared/conformance/dsl.jsonl` and the project's `testing/conformance-extra.jsonl`).
//! - `reference` (feature `reference`): the tree-walking evaluator over the checked IR that
//!   every VM result is compared with (ENGINE.md §4).

pub mod conformance;
#[cfg(feature = "reference")]
pub mod reference;
