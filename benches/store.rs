//! `MemoryStore`: insert and take, alone and under contention, and insert
//! into a store that already holds many entries.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;
use tower_par::{
    AuthMethod, MemoryStore, MemoryStoreConfig, ParStore, PushedRequest, RedeemMode, RequestUri,
};

const PARAMS: &str = "response_type=code&client_id=demo-client\
&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&scope=openid+profile+email+phone\
&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV\
&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
const TTL: Duration = Duration::from_secs(600);

fn store() -> MemoryStore {
    MemoryStore::with_config(
        MemoryStoreConfig::default()
            .max_pending(10_000_000)
            .max_pending_per_client(10_000_000)
            // The store that holds a million entries is past the default
            // byte budget.
            .max_pending_bytes(usize::MAX),
    )
}

fn request(client: &str) -> PushedRequest {
    PushedRequest::new(
        client,
        AuthMethod::ClientSecretBasic,
        PARAMS,
        SystemTime::now(),
        TTL,
    )
    .with_redirect_uri(Some("http://127.0.0.1:8080/cb".into()))
}

/// Insert then consume: the store stays small.
fn insert_take(store: &MemoryStore, client: &str) {
    let uri = RequestUri::generate();
    block_on(store.insert(&uri, request(client), TTL)).unwrap();
    let out = block_on(store.redeem(&uri, client, RedeemMode::Consume)).unwrap();
    black_box(out);
}

fn single_thread(c: &mut Criterion) {
    let s = store();
    c.bench_function("store/insert_take", |b| {
        b.iter(|| insert_take(&s, "demo-client"))
    });
    let s = store();
    c.bench_function("store/insert_bind_complete", |b| {
        b.iter(|| {
            let uri = RequestUri::generate();
            block_on(s.insert(&uri, request("demo-client"), TTL)).unwrap();
            let mode = RedeemMode::Bind {
                binding: [7; 32],
                reenter: None,
                window: TTL,
            };
            black_box(block_on(s.redeem(&uri, "demo-client", mode)).unwrap());
            black_box(block_on(s.complete(&uri, &[7; 32])).unwrap());
        })
    });
}

/// `threads` threads doing insert + take at once, one client each or all
/// the same client: the time per operation pair, per thread.
fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/contended_insert_take");
    for (threads, same_client) in [(2, true), (2, false), (4, true)] {
        let name = format!(
            "{threads}_threads_{}",
            if same_client {
                "one_client"
            } else {
                "own_clients"
            }
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let s = Arc::new(store());
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        let s = s.clone();
                        scope.spawn(move || {
                            let client = if same_client {
                                "demo-client".to_owned()
                            } else {
                                format!("client-{t}")
                            };
                            for _ in 0..iters {
                                insert_take(&s, &client);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// Insert into a store that already holds `n` pending entries.
fn insert_when_full(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/insert_with_pending");
    g.sample_size(20);
    for n in [0usize, 1_000_000] {
        let s = store();
        for _ in 0..n {
            block_on(s.insert(&RequestUri::generate(), request("demo-client"), TTL)).unwrap();
        }
        g.bench_function(n.to_string(), |b| {
            b.iter_batched(
                || (RequestUri::generate(), request("demo-client")),
                |(uri, req)| block_on(s.insert(&uri, req, TTL)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread, contention, insert_when_full);
criterion_main!(benches);
