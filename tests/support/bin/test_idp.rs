//! The tests' identity provider as a process, for benchmarks and manual
//! runs: serves discovery and the JWKS of `tests/fixtures/oidc` on
//! 127.0.0.1, prints `issuer <url>` and `token <jwt>` (RS256, valid for a
//! day, for the user given as the first argument), and serves until its
//! standard input closes.

use std::io::Read;

use keygate_tests::idp::{TestIdp, TestKey, unix_now};

fn main() {
    let user = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench@example.com".into());
    let idp = TestIdp::start(&[TestKey::RsaA, TestKey::EcA]);
    let mut claims = idp.claims(&user);
    claims["exp"] = (unix_now() + 86_400).into();
    println!("issuer {}", idp.issuer);
    println!("token {}", TestKey::RsaA.sign(&claims));
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
