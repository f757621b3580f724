//! Cost of a push (insert) and a redemption (redeem) on `RedisStore` versus
//! `MemoryStore`, measured side by side in one run, as a ratio.
//!
//! ```text
//! redis-server --port 6399 --save '' &
//! cargo run --release --example store_cost -- redis://127.0.0.1:6399
//! ```
//!
//! `OPS` (default 20 000) operations per store and phase, `CONCURRENCY`
//! (default 32) in flight. Only loopback Redis URLs are accepted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tower_par::{
    AuthMethod, MemoryStore, MemoryStoreConfig, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
    RedisStore, RedisStoreConfig, RequestUri,
};

/// A typical pushed request: 8 parameters, about 350 bytes of form.
const PARAMS: &str = "client_id=demo-client&response_type=code&redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth%2Fcallback&scope=openid+profile+email+offline_access&state=af0ifjsldkj-Tv8aYqTqQ-5pXo9m&nonce=n-0S6_WzA2Mj-YWVnqk3Pq&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

type Op = Arc<
    dyn Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

struct Phase {
    per_op: Duration,
    ops_per_sec: f64,
}

async fn run<S: ParStore>(store: &S, ops: usize, concurrency: usize) -> (Phase, Phase) {
    let uris: Arc<Vec<RequestUri>> = Arc::new((0..ops).map(|_| RequestUri::generate()).collect());
    let ttl = Duration::from_secs(60);
    let phase = |f: Op| async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|w| {
                let f = f.clone();
                tokio::spawn(async move {
                    let mut i = w;
                    while i < ops {
                        f(i).await;
                        i += concurrency;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        Phase {
            per_op: elapsed / ops as u32,
            ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        }
    };
    let (s, u) = (store.clone(), uris.clone());
    let push = phase(Arc::new(move |i| {
        let (s, u) = (s.clone(), u.clone());
        Box::pin(async move {
            let r = PushedRequest::new(
                "demo-client",
                AuthMethod::ClientSecretBasic,
                PARAMS,
                SystemTime::now(),
                ttl,
            );
            s.insert(&u[i], r, ttl).await.expect("insert");
        })
    }))
    .await;
    let (s, u) = (store.clone(), uris.clone());
    let redeem = phase(Arc::new(move |i| {
        let (s, u) = (s.clone(), u.clone());
        Box::pin(async move {
            let mode = RedeemMode::Bind {
                binding: [i as u8; 32],
                reenter: None,
                window: Duration::from_secs(600),
            };
            let r = s.redeem(&u[i], "demo-client", mode).await.expect("redeem");
            assert!(matches!(r, RedeemOutcome::Redeemed(_)));
        })
    }))
    .await;
    (push, redeem)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    if !(url.contains("://127.0.0.1") || url.contains("://localhost") || url.contains("@127.0.0.1"))
    {
        return Err("only loopback Redis URLs are accepted".into());
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let ops = env("OPS", 20_000).min(1_000_000);
    let concurrency = env("CONCURRENCY", 32).clamp(1, 1024);

    let memory = MemoryStore::with_config(
        MemoryStoreConfig::default()
            .max_pending(ops * 2)
            .max_pending_per_client(ops * 2)
            .max_in_flow_per_client(ops * 2)
            .max_pending_bytes(usize::MAX),
    );
    let redis = RedisStore::connect(
        RedisStoreConfig::new(url)
            .prefix(format!("cost{}:", std::process::id()))
            .max_in_flow_per_client(ops * 2)
            .timeout(Duration::from_secs(2)),
    )
    .await?;

    println!("{ops} operations per phase, {concurrency} in flight");
    let (mp, mr) = run(&memory, ops, concurrency).await;
    let (rp, rr) = run(&redis, ops, concurrency).await;
    println!(
        "{:<8} {:>14} {:>14} {:>14} {:>14}",
        "store", "push/op", "push ops/s", "redeem/op", "redeem ops/s"
    );
    for (name, p, r) in [("memory", &mp, &mr), ("redis", &rp, &rr)] {
        println!(
            "{name:<8} {:>14.2?} {:>14.0} {:>14.2?} {:>14.0}",
            p.per_op, p.ops_per_sec, r.per_op, r.ops_per_sec
        );
    }
    println!(
        "redis / memory time per op: push {:.1}x, redeem {:.1}x",
        rp.per_op.as_secs_f64() / mp.per_op.as_secs_f64(),
        rr.per_op.as_secs_f64() / mr.per_op.as_secs_f64()
    );
    Ok(())
}
