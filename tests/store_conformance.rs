//! The store conformance suite (`tower_par::test_util`, feature
//! `test-util`) against `MemoryStore`.

use tower_par::test_util::{allowance_conformance, store_conformance};
use tower_par::{MemoryStore, MemoryStoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    store_conformance(MemoryStore::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_with_eager_sweeping_conforms() {
    // Sweeping after every insert must not change any answer.
    store_conformance(|| MemoryStore::with_config(MemoryStoreConfig::default().sweep_every(1)))
        .await;
}

/// PAR-20 (429 only for a client over its own rate): the per-client
/// allowances, generic part.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_allowances_conform() {
    allowance_conformance(|a| {
        MemoryStore::with_config(
            MemoryStoreConfig::default()
                .max_pending_per_client(a.pushed_per_client)
                .max_in_flow_per_client(a.in_flow_per_client),
        )
    })
    .await;
}

/// Concurrent first redemptions over the in-flow allowance end exactly the
/// excess: never a flow more (a user's login lost for nothing).
#[test]
fn concurrent_binds_evict_only_the_excess() {
    use std::time::{Duration, SystemTime};
    use tower_par::{AuthMethod, ParStore, PushedRequest, RedeemMode, RedeemOutcome, RequestUri};
    let ttl = Duration::from_secs(60);
    use futures::executor::block_on;
    for _round in 0..200 {
        let store =
            MemoryStore::with_config(MemoryStoreConfig::default().max_in_flow_per_client(4));
        let bind = |b: u8| RedeemMode::Bind {
            binding: [b; 32],
            reenter: Some([b; 32]),
            window: ttl,
        };
        let uris: Vec<(RequestUri, u8)> = (0..12u8)
            .map(|i| {
                let uri = RequestUri::generate();
                let r = PushedRequest::new("x", AuthMethod::None, "a=1", SystemTime::now(), ttl);
                block_on(store.insert(&uri, r, ttl)).unwrap();
                (uri, i)
            })
            .collect();
        for (uri, i) in &uris[..4] {
            block_on(store.redeem(uri, "x", bind(*i))).unwrap();
        }
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for (uri, i) in &uris[4..] {
                let (store, barrier) = (&store, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    block_on(store.redeem(uri, "x", bind(*i))).unwrap();
                });
            }
        });
        let live = uris
            .iter()
            .filter(|(uri, i)| {
                matches!(
                    block_on(store.redeem(uri, "x", bind(*i))).unwrap(),
                    RedeemOutcome::Reentered(_)
                )
            })
            .count();
        assert_eq!(
            live, 4,
            "flows left after concurrent binds over an allowance of 4"
        );
    }
}
