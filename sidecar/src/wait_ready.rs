//! `podid-proxy wait-ready`: the legacy layout's postStart hook, holding the app back until the proxy is ready.
//!
//! The kubelet starts the app container only after the first container's postStart
//! hook returns, so this is how the legacy layout keeps apps from starting before
//! their identity works. It always exits 0: a proxy that never becomes ready must
//! not wedge the pod (the proxy's own /ready gives up after its timeout too).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::WaitReadyArgs;

/// Runs the subcommand.
pub fn main(args: WaitReadyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podid-proxy wait-ready: cannot start: {e}");
            return ExitCode::SUCCESS;
        }
    };
    let WaitReadyArgs { url, timeout } = args;
    match runtime.block_on(wait(&url, timeout)) {
        Ok(waited) => eprintln!(
            "podid-proxy wait-ready: ready after {} ms",
            waited.as_millis()
        ),
        Err(e) => eprintln!("podid-proxy wait-ready: {e}; letting the pod start anyway"),
    }
    ExitCode::SUCCESS
}

/// Polls `url` (plain `http://host:port/path`) until it answers 200 or `timeout` passes.
pub async fn wait(url: &str, timeout: Duration) -> Result<Duration, String> {
    let (authority, path) = split_url(url)?;
    let started = Instant::now();
    loop {
        if let Ok(200) = probe(authority, path).await {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(format!("{url} not ready after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    Ok(rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..])))
}

/// One GET; returns the status code.
async fn probe(authority: &str, path: &str) -> std::io::Result<u16> {
    let fut = async {
        let mut stream = TcpStream::connect(authority).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        let code = std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse().ok());
        code.ok_or_else(|| std::io::Error::other("not an HTTP response"))
    };
    tokio::time::timeout(Duration::from_secs(1), fut)
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:15392/ready"),
            Ok(("127.0.0.1:15392", "/ready"))
        );
        assert_eq!(split_url("http://localhost:1"), Ok(("localhost:1", "/")));
        assert!(split_url("https://x/").is_err());
    }
}
