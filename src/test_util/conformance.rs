//! The store conformance suite: one set of checks for every [`ParStore`].
//!
//! [`store_conformance`] is generic over the store: give it a factory that
//! returns a fresh, empty store each time (a new key prefix for a shared
//! backend). It panics, as a test does, at the first check that fails.
//!
//! It needs a multi-thread tokio runtime for its concurrency checks, and
//! waits on real time for the expiry checks (about half a second in all).
//!
//! ```
//! use tower_par::test_util::store_conformance;
//! use tower_par::MemoryStore;
//!
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // In a `#[tokio::test(flavor = "multi_thread")]`:
//! store_conformance(MemoryStore::new).await;
//! # });
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{
    AuthMethod, Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome, RequestUri,
    StoreError,
};

const MINUTE: Duration = Duration::from_secs(60);

fn request(client_id: &str, params: &str) -> PushedRequest {
    PushedRequest::new(
        client_id,
        AuthMethod::ClientSecretBasic,
        params,
        SystemTime::now(),
        MINUTE,
    )
}

/// Runs every check against stores made by `make`.
///
/// # Panics
///
/// At the first check the store fails, naming it.
pub async fn store_conformance<S: ParStore>(make: impl Fn() -> S) {
    insert_then_redeem_returns_the_stored_request_par13(make()).await;
    insert_is_insert_if_absent(make()).await;
    redeem_is_one_time_par28(make()).await;
    unknown_key_is_not_found(make()).await;
    wrong_client_is_refused_and_the_entry_stays_par15(make()).await;
    expired_by_data_is_not_found_on_read_par29(make()).await;
    expired_by_ttl_is_not_found_par29(make()).await;
    expired_entry_bound_to_another_client_is_not_found(make()).await;
    key_can_be_reused_once_its_entry_expired(make()).await;
    clones_share_entries(make()).await;
    mark_once_records_a_key_for_its_ttl(make()).await;
    concurrent_redeems_of_one_key_redeem_it_once_m2(make()).await;
    concurrent_inserts_of_one_key_store_it_once(make()).await;
    bind_moves_to_in_flow_and_reenters_for_the_same_binding_only(make()).await;
    in_flow_outlives_expires_in_until_the_window_ends_m6(make()).await;
    complete_consumes_once_and_only_for_its_binding(make()).await;
    strict_redeem_of_an_entry_in_flow_is_refused(make()).await;
    concurrent_binds_from_different_browsers_one_wins(make()).await;
    concurrent_completions_complete_once(make()).await;
    a_presented_secret_never_becomes_the_binding(make()).await;
}

/// A browser holding secret `binding`: a first redemption binds to it, a
/// re-entry presents it.
fn bind(binding: u8, window: Duration) -> RedeemMode {
    RedeemMode::Bind {
        binding: [binding; 32],
        reenter: Some([binding; 32]),
        window,
    }
}

async fn a_presented_secret_never_becomes_the_binding<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    // The browser presents a (planted) secret 9; the flow binds to fresh 1.
    let first = RedeemMode::Bind {
        binding: [1; 32],
        reenter: Some([9; 32]),
        window: MINUTE,
    };
    assert!(matches!(
        store.redeem(&uri, "C", first).await.unwrap(),
        RedeemOutcome::Redeemed(_)
    ));
    let with = |reenter: Option<[u8; 32]>| RedeemMode::Bind {
        binding: [2; 32],
        reenter,
        window: MINUTE,
    };
    assert_eq!(
        store.redeem(&uri, "C", with(Some([9; 32]))).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store.redeem(&uri, "C", with(None)).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert!(matches!(
        store.redeem(&uri, "C", with(Some([1; 32]))).await.unwrap(),
        RedeemOutcome::Reentered(_)
    ));
}

async fn bind_moves_to_in_flow_and_reenters_for_the_same_binding_only<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    match store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap() {
        RedeemOutcome::Redeemed(r) => assert_eq!(r.params, "a=1"),
        other => panic!("first redemption: {other:?}"),
    }
    for _ in 0..3 {
        match store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap() {
            RedeemOutcome::Reentered(r) => assert_eq!(r.params, "a=1"),
            other => panic!("re-entry: {other:?}"),
        }
    }
    // Another browser, another client.
    assert_eq!(
        store.redeem(&uri, "C", bind(2, MINUTE)).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store.redeem(&uri, "OTHER", bind(1, MINUTE)).await.unwrap(),
        RedeemOutcome::WrongClient
    );
    // Still usable by its owner.
    assert!(matches!(
        store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap(),
        RedeemOutcome::Reentered(_)
    ));
}

async fn in_flow_outlives_expires_in_until_the_window_ends_m6<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let short = Duration::from_millis(200);
    let req = PushedRequest::new("C", AuthMethod::None, "a=1", SystemTime::now(), short);
    store.insert(&uri, req, short).await.unwrap();
    let window = Duration::from_millis(600);
    assert!(matches!(
        store.redeem(&uri, "C", bind(1, window)).await.unwrap(),
        RedeemOutcome::Redeemed(_)
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(
            store.redeem(&uri, "C", bind(1, window)).await.unwrap(),
            RedeemOutcome::Reentered(_)
        ),
        "past expires_in but inside the flow window"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.redeem(&uri, "C", bind(1, window)).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store.complete(&uri, &[1; 32]).await.unwrap(),
        Completion::NotInFlow
    );
}

async fn complete_consumes_once_and_only_for_its_binding<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    // Nothing to complete before the flow starts.
    assert_eq!(
        store.complete(&uri, &[1; 32]).await.unwrap(),
        Completion::NotInFlow
    );
    store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap();
    assert_eq!(
        store.complete(&uri, &[2; 32]).await.unwrap(),
        Completion::NotInFlow
    );
    assert_eq!(
        store.complete(&uri, &[1; 32]).await.unwrap(),
        Completion::Completed
    );
    assert_eq!(
        store.complete(&uri, &[1; 32]).await.unwrap(),
        Completion::NotInFlow
    );
    assert_eq!(
        store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn strict_redeem_of_an_entry_in_flow_is_refused<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap();
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store.complete(&uri, &[1; 32]).await.unwrap(),
        Completion::Completed
    );
}

async fn concurrent_binds_from_different_browsers_one_wins<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap()
            })
        })
        .collect();
    let mut redeemed = 0;
    for t in tasks {
        match t.await.unwrap() {
            RedeemOutcome::Redeemed(_) => redeemed += 1,
            RedeemOutcome::NotFound => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(redeemed, 1);
}

async fn concurrent_completions_complete_once<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    store.redeem(&uri, "C", bind(1, MINUTE)).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.complete(&uri, &[1; 32]).await.unwrap()
            })
        })
        .collect();
    let mut completed = 0;
    for t in tasks {
        if t.await.unwrap() == Completion::Completed {
            completed += 1;
        }
    }
    assert_eq!(completed, 1);
}

async fn insert_then_redeem_returns_the_stored_request_par13<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let stored = PushedRequest::new(
        "C",
        AuthMethod::ClientSecretPost,
        "response_type=code&claims=%7B%7D&resource=a&resource=b",
        SystemTime::now(),
        MINUTE,
    );
    store.insert(&uri, stored.clone(), MINUTE).await.unwrap();
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(stored)
    );
}

async fn insert_is_insert_if_absent<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let first = request("C", "first=1");
    store.insert(&uri, first.clone(), MINUTE).await.unwrap();
    assert_eq!(
        store.insert(&uri, request("C", "second=1"), MINUTE).await,
        Err(StoreError::Exists)
    );
    assert_eq!(
        store
            .insert(&uri, request("OTHER", "third=1"), MINUTE)
            .await,
        Err(StoreError::Exists)
    );
    // The first entry is the one that stays.
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(first)
    );
}

async fn redeem_is_one_time_par28<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    assert!(matches!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(_)
    ));
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store
            .redeem(&uri, "OTHER", RedeemMode::Consume)
            .await
            .unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn unknown_key_is_not_found<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    store
        .insert(&RequestUri::generate(), request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn wrong_client_is_refused_and_the_entry_stays_par15<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let stored = request("C", "a=1");
    store.insert(&uri, stored.clone(), MINUTE).await.unwrap();
    for other in ["OTHER", "c", "C ", ""] {
        assert_eq!(
            store
                .redeem(&uri, other, RedeemMode::Consume)
                .await
                .unwrap(),
            RedeemOutcome::WrongClient,
            "{other:?}"
        );
    }
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(stored)
    );
}

async fn expired_by_data_is_not_found_on_read_par29<S: ParStore>(store: S) {
    // `expires_at` is in the past although the store's TTL is not: a store
    // that cannot expire entries on its own must still refuse it.
    let uri = RequestUri::generate();
    let stale = PushedRequest::new(
        "C",
        AuthMethod::None,
        "a=1",
        SystemTime::now() - Duration::from_secs(120),
        MINUTE,
    );
    assert!(stale.is_expired_at(SystemTime::now()));
    // A store may refuse such an insert outright; if it accepts it, it must
    // never hand it out.
    if store.insert(&uri, stale, MINUTE).await.is_ok() {
        assert_eq!(
            store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
            RedeemOutcome::NotFound
        );
    }
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn expired_by_ttl_is_not_found_par29<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let ttl = Duration::from_millis(100);
    store.insert(&uri, request("C", "a=1"), ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn expired_entry_bound_to_another_client_is_not_found<S: ParStore>(store: S) {
    // Past its expiry an entry is gone for everyone: the answer no longer
    // reveals that it was bound to another client.
    let uri = RequestUri::generate();
    let ttl = Duration::from_millis(100);
    store.insert(&uri, request("C", "a=1"), ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store
            .redeem(&uri, "OTHER", RedeemMode::Consume)
            .await
            .unwrap(),
        RedeemOutcome::NotFound
    );
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
}

async fn key_can_be_reused_once_its_entry_expired<S: ParStore>(store: S) {
    let uri = RequestUri::generate();
    let ttl = Duration::from_millis(100);
    store
        .insert(&uri, request("C", "old=1"), ttl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = request("C", "new=1");
    store.insert(&uri, fresh.clone(), MINUTE).await.unwrap();
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(fresh)
    );
}

async fn clones_share_entries<S: ParStore>(store: S) {
    let other = store.clone();
    let uri = RequestUri::generate();
    store
        .insert(&uri, request("C", "a=1"), MINUTE)
        .await
        .unwrap();
    assert!(matches!(
        other.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(_)
    ));
    assert_eq!(
        store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::NotFound
    );
    assert!(other.mark_once("jti-shared", MINUTE).await.unwrap());
    assert!(!store.mark_once("jti-shared", MINUTE).await.unwrap());
}

async fn mark_once_records_a_key_for_its_ttl<S: ParStore>(store: S) {
    let ttl = Duration::from_millis(100);
    assert!(store.mark_once("jti-1", ttl).await.unwrap());
    assert!(!store.mark_once("jti-1", ttl).await.unwrap());
    assert!(!store.mark_once("jti-1", MINUTE).await.unwrap());
    // Other keys are independent.
    assert!(store.mark_once("jti-2", MINUTE).await.unwrap());
    assert!(store.mark_once("JTI-1", MINUTE).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.mark_once("jti-1", MINUTE).await.unwrap());
    assert!(!store.mark_once("jti-1", MINUTE).await.unwrap());
    assert!(!store.mark_once("jti-2", MINUTE).await.unwrap());
}

async fn concurrent_redeems_of_one_key_redeem_it_once_m2<S: ParStore>(store: S) {
    const TASKS: usize = 64;
    for _round in 0..5 {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("C", "a=1"), MINUTE)
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap()
                })
            })
            .collect();
        let mut redeemed = 0;
        for task in tasks {
            match task.await.unwrap() {
                RedeemOutcome::Redeemed(_) => redeemed += 1,
                RedeemOutcome::NotFound => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(redeemed, 1);
    }
}

async fn concurrent_inserts_of_one_key_store_it_once<S: ParStore>(store: S) {
    const TASKS: usize = 32;
    let uri = RequestUri::generate();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let params = format!("writer={i}");
                store
                    .insert(&uri, request("C", &params), MINUTE)
                    .await
                    .map(|()| params)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(params) => winners.push(params),
            Err(StoreError::Exists) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    match store.redeem(&uri, "C", RedeemMode::Consume).await.unwrap() {
        RedeemOutcome::Redeemed(r) => assert_eq!(r.params, winners[0]),
        other => panic!("unexpected {other:?}"),
    }
}

/// The per-client allowances a store under [`allowance_conformance`] is
/// made with.
///
/// ```
/// use tower_par::test_util::{allowance_conformance, Allowance};
/// use tower_par::{MemoryStore, MemoryStoreConfig};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// // Build the store under test with the allowances the suite asks for.
/// allowance_conformance(|allowance: Allowance| {
///     assert!(allowance.in_flow_per_client >= 1);
///     MemoryStore::with_config(
///         MemoryStoreConfig::new()
///             .max_pending_per_client(allowance.pushed_per_client)
///             .max_in_flow_per_client(allowance.in_flow_per_client),
///     )
/// })
/// .await;
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    /// Requests a client may have pushed and not yet redeemed (a store
    /// without such a bound ignores it).
    pub pushed_per_client: usize,
    /// Flows a client may have in progress.
    pub in_flow_per_client: usize,
}

/// Checks of the per-client allowances, against stores made by `make` with
/// the allowances it is given.
///
/// # Panics
///
/// At the first check the store fails.
pub async fn allowance_conformance<S: ParStore>(make: impl Fn(Allowance) -> S) {
    let small = Allowance {
        pushed_per_client: 3,
        in_flow_per_client: 3,
    };
    redeemed_requests_do_not_hold_the_push_allowance(make(small), small.pushed_per_client).await;
    the_in_flow_allowance_evicts_the_oldest_flow(make(Allowance {
        pushed_per_client: 10,
        in_flow_per_client: 2,
    }))
    .await;
    completed_and_evicted_flows_free_the_in_flow_allowance(make(small)).await;
    // Room for every push: the flows are what is bounded here.
    let many_pushes = Allowance {
        pushed_per_client: 100,
        in_flow_per_client: 3,
    };
    concurrent_first_redemptions_stay_within_the_in_flow_allowance(make(many_pushes), 3).await;
}

async fn concurrent_first_redemptions_stay_within_the_in_flow_allowance<S: ParStore>(
    store: S,
    allowance: usize,
) {
    const TASKS: u8 = 32;
    let barrier = Arc::new(tokio::sync::Barrier::new(usize::from(TASKS)));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let uri = RequestUri::generate();
                store
                    .insert(&uri, request("C", "a=1"), MINUTE)
                    .await
                    .unwrap();
                barrier.wait().await;
                let outcome = store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap();
                // A new user is never refused.
                assert!(matches!(outcome, RedeemOutcome::Redeemed(_)), "{outcome:?}");
                (uri, i)
            })
        })
        .collect();
    let mut flows = Vec::new();
    for t in tasks {
        flows.push(t.await.unwrap());
    }
    let mut live = 0;
    for (uri, i) in &flows {
        if let RedeemOutcome::Reentered(_) = store.redeem(uri, "C", bind(*i, MINUTE)).await.unwrap()
        {
            live += 1;
            assert_eq!(
                store.complete(uri, &[*i; 32]).await.unwrap(),
                Completion::Completed
            );
        }
    }
    assert!((1..=allowance).contains(&live), "{live} flows left");
}

/// Anyone can push and redeem for a public client: flows in progress must
/// not keep the client's push allowance full for the flow window, only
/// requests still waiting for their first redemption count (PAR-20: 429 is
/// for a client over its rate, not for a client someone else flooded).
async fn redeemed_requests_do_not_hold_the_push_allowance<S: ParStore>(store: S, allowance: usize) {
    // Three times the push allowance of push + first redemption, none
    // completed: every push is accepted.
    for i in 0..u8::try_from(3 * allowance).unwrap() {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("PUBLIC", "a=1"), MINUTE)
            .await
            .unwrap_or_else(|e| panic!("push {i}: {e}"));
        assert!(matches!(
            store.redeem(&uri, "PUBLIC", bind(i, MINUTE)).await.unwrap(),
            RedeemOutcome::Redeemed(_)
        ));
    }
    // Strict redemptions free their slot too.
    for i in 0..3 * allowance {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("PUBLIC", "a=1"), MINUTE)
            .await
            .unwrap_or_else(|e| panic!("strict push {i}: {e}"));
        assert!(matches!(
            store
                .redeem(&uri, "PUBLIC", RedeemMode::Consume)
                .await
                .unwrap(),
            RedeemOutcome::Redeemed(_)
        ));
    }
}

async fn the_in_flow_allowance_evicts_the_oldest_flow<S: ParStore>(store: S) {
    let mut uris = Vec::new();
    for i in 0..3u8 {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("C", "a=1"), MINUTE)
            .await
            .unwrap();
        // A new user is never refused: the third flow evicts the first.
        assert!(matches!(
            store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap(),
            RedeemOutcome::Redeemed(_)
        ));
        uris.push(uri);
    }
    assert_eq!(
        store.redeem(&uris[0], "C", bind(0, MINUTE)).await.unwrap(),
        RedeemOutcome::NotFound,
        "the oldest flow was evicted"
    );
    assert_eq!(
        store.complete(&uris[0], &[0; 32]).await.unwrap(),
        Completion::NotInFlow
    );
    for (i, uri) in uris.iter().enumerate().skip(1) {
        let i = u8::try_from(i).unwrap();
        assert!(matches!(
            store.redeem(uri, "C", bind(i, MINUTE)).await.unwrap(),
            RedeemOutcome::Reentered(_)
        ));
    }
    // Another client's flows are not touched by C's.
    let other = RequestUri::generate();
    store
        .insert(&other, request("D", "a=1"), MINUTE)
        .await
        .unwrap();
    store.redeem(&other, "D", bind(9, MINUTE)).await.unwrap();
    for i in 10..13u8 {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("C", "a=1"), MINUTE)
            .await
            .unwrap();
        store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap();
    }
    assert!(matches!(
        store.redeem(&other, "D", bind(9, MINUTE)).await.unwrap(),
        RedeemOutcome::Reentered(_)
    ));
}

async fn completed_and_evicted_flows_free_the_in_flow_allowance<S: ParStore>(store: S) {
    // Completed flows leave the allowance: three flows completed, then
    // three more in flow, and all three of those still re-enter.
    for i in 0..3u8 {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("C", "a=1"), MINUTE)
            .await
            .unwrap();
        store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap();
        assert_eq!(
            store.complete(&uri, &[i; 32]).await.unwrap(),
            Completion::Completed
        );
    }
    let mut live = Vec::new();
    for i in 3..6u8 {
        let uri = RequestUri::generate();
        store
            .insert(&uri, request("C", "a=1"), MINUTE)
            .await
            .unwrap();
        store.redeem(&uri, "C", bind(i, MINUTE)).await.unwrap();
        live.push((uri, i));
    }
    for (uri, i) in &live {
        assert!(matches!(
            store.redeem(uri, "C", bind(*i, MINUTE)).await.unwrap(),
            RedeemOutcome::Reentered(_)
        ));
    }
    for (uri, i) in &live {
        assert_eq!(
            store.complete(uri, &[*i; 32]).await.unwrap(),
            Completion::Completed
        );
    }
}
