//! The store conformance suite (`tests/conformance`) against `MemoryStore`.

mod conformance;

use conformance::conformance;
use tower_par::{MemoryStore, MemoryStoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance(MemoryStore::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_with_eager_sweeping_conforms() {
    // Sweeping after every insert must not change any answer.
    conformance(|| {
        MemoryStore::with_config(MemoryStoreConfig {
            sweep_every: 1,
            ..MemoryStoreConfig::default()
        })
    })
    .await;
}

/// PAR-20 (429 only for a client over its own rate): the per-client
/// allowances, generic part.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_allowances_conform() {
    conformance::allowance_conformance(|a| {
        MemoryStore::with_config(MemoryStoreConfig {
            max_pending_per_client: a.pushed_per_client,
            max_in_flow_per_client: a.in_flow_per_client,
            ..MemoryStoreConfig::default()
        })
    })
    .await;
}
