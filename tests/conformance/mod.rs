//! The store conformance suite, from `tower_par::test_util` (feature
//! `test-util`), under the names the store test files use.

pub use tower_par::test_util::{allowance_conformance, store_conformance as conformance};
