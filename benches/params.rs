//! Parsing costs of the push path: the form, the Basic header, the
//! `request_uri`.
//!
//! `Params` and `RequestUri` are benchmarked through the public API; the
//! Basic decoder is crate-private, so its source file is compiled into this
//! benchmark as it is (with the `params` module it uses).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderValue;
use tower_par::{Params, RequestUri};

#[allow(dead_code, unused_imports, unreachable_pub, clippy::all)]
#[path = "../src/params.rs"]
mod params;

#[allow(dead_code, unused_imports, unreachable_pub, clippy::all)]
#[path = "../src/client/basic.rs"]
mod basic;

/// The typical pushed request of the load benchmarks: 8 parameters, ~350 B.
const FORM: &[u8] = b"response_type=code&client_id=demo-client\
&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&scope=openid+profile+email+phone\
&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV\
&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

fn form_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("form");
    g.throughput(criterion::Throughput::Bytes(FORM.len() as u64));
    g.bench_function("parse_typical_push", |b| {
        b.iter(|| Params::parse(black_box(FORM)).unwrap())
    });
    let p = Params::parse(FORM).unwrap();
    g.bench_function("get_8_params", |b| {
        b.iter(|| {
            for name in [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
            ] {
                black_box(p.get(black_box(name)));
            }
        })
    });
    g.bench_function("encode_filtered_stored_form", |b| {
        b.iter(|| p.encode_filtered(|n| n != "client_secret"))
    });
    g.finish();
}

fn basic_decoding(c: &mut Criterion) {
    // demo-client:demo-secret
    let header = HeaderValue::from_static("Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=");
    c.bench_function("basic/decode", |b| {
        b.iter(|| basic::decode_basic(black_box(&header)).unwrap())
    });
}

fn request_uri(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_uri");
    g.bench_function("generate", |b| b.iter(RequestUri::generate));
    let uri = RequestUri::generate();
    g.bench_function("to_string", |b| b.iter(|| black_box(&uri).to_string()));
    let text = uri.to_string();
    g.bench_function("parse", |b| {
        b.iter(|| RequestUri::parse(black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, form_parsing, basic_decoding, request_uri);
criterion_main!(benches);
