//! `podid-e2e-http ADDR`: sends the JSON array of raw requests on stdin to ADDR, one connection each, and prints the outcomes as a JSON array.
//!
//! The e2e tests run it inside the pod's network namespace under a chosen uid,
//! which is what decides whether the redirect applies.

use std::io::Read as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use podid_e2e::http::{self, RawRequest};

fn main() -> ExitCode {
    let Some(addr) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: podid-e2e-http ADDR < requests.json");
        return ExitCode::from(2);
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("podid-e2e-http: reading stdin: {e}");
        return ExitCode::from(2);
    }
    let requests: Vec<RawRequest> = match serde_json::from_str(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("podid-e2e-http: stdin is not a JSON array of requests: {e}");
            return ExitCode::from(2);
        }
    };
    let outcomes: Vec<_> = requests
        .iter()
        .map(|r| http::send(addr, r, Duration::from_secs(10)))
        .collect();
    match serde_json::to_string(&outcomes) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podid-e2e-http: {e}");
            ExitCode::FAILURE
        }
    }
}
