//! The load generator: keep-alive HTTP/1.1 GETs on blocking sockets, one thread per connection, run as a child process of its own.
//!
//! Raw sockets instead of an HTTP client library: the client's own cost is
//! part of every sample, so it is kept as small and as equal across targets
//! as possible. Each load run is this binary again (`proxy-bench load`), so
//! it can run in a pod's network namespace as another uid, and shares a
//! runtime with neither server.

use std::ffi::OsString;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `proxy-bench load` (a child process).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Where to send the requests.
    #[arg(long)]
    addr: SocketAddr,
    /// Request target (origin form).
    #[arg(long)]
    path: String,
    /// Requests in total, split over the connections.
    #[arg(long)]
    requests: usize,
    /// Keep-alive connections, each sending its share one after another.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

/// What a load run measured (the child's stdout, as JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Latency of each successful request, send to last byte, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Requests that failed (connection error or status other than 200).
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall time from the start barrier to the last connection's end.
    pub wall_ns: u64,
}

/// One keep-alive connection sending the same GET.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

// === impl Conn ===

impl Conn {
    /// Connects, with `TCP_NODELAY` (else a small request may wait for a delayed ACK).
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        // IMDS's Host; the proxy and the emulator require `Metadata: true`.
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n");
        Ok(Self {
            stream,
            request: request.into_bytes(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends the request and reads the whole response; its status.
    pub fn get(&mut self) -> io::Result<u16> {
        self.stream.write_all(&self.request)?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let (status, length) = parse_head(&self.buf[..head_end])?;
        while self.buf.len() < head_end + length {
            self.fill()?;
        }
        Ok(status)
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status and `Content-Length` of a response head (both servers send one; chunked is refused).
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let text = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| bad("no Content-Length"))?;
    Ok((status, length))
}

/// The child: runs the load and prints [`Measured`] as JSON.
pub fn main(args: LoadArgs) -> anyhow::Result<()> {
    let LoadArgs {
        addr,
        path,
        requests,
        concurrency,
    } = args;
    let concurrency = concurrency.clamp(1, requests.max(1));
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            let share = requests / concurrency + usize::from(i < requests % concurrency);
            let (barrier, path) = (barrier.clone(), path.clone());
            std::thread::spawn(move || connection(addr, &path, share, &barrier))
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut total = Measured::default();
    for worker in workers {
        let part = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        total.latencies_ns.extend(part.latencies_ns);
        total.errors += part.errors;
        total.first_error = total.first_error.or(part.first_error);
    }
    total.wall_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    println!("{}", serde_json::to_string(&total)?);
    Ok(())
}

/// One connection's share; connecting happens before the start barrier.
fn connection(addr: SocketAddr, path: &str, share: usize, barrier: &Barrier) -> Measured {
    let mut out = Measured {
        latencies_ns: Vec::with_capacity(share),
        ..Measured::default()
    };
    let mut conn = Conn::connect(addr, path);
    barrier.wait();
    for _ in 0..share {
        let Ok(c) = conn.as_mut() else {
            out.errors += 1;
            continue;
        };
        let sent = Instant::now();
        let outcome = c.get();
        let ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match outcome {
            Ok(200) => out.latencies_ns.push(ns),
            Ok(status) => fail(&mut out, format!("status {status}")),
            Err(e) => {
                fail(&mut out, e.to_string());
                // The connection is gone; reconnect for the next request.
                conn = Conn::connect(addr, path);
            }
        }
    }
    if let Err(e) = conn {
        out.first_error
            .get_or_insert(format!("connect {addr}: {e}"));
    }
    out
}

fn fail(out: &mut Measured, why: String) {
    out.errors += 1;
    out.first_error.get_or_insert(why);
}

/// Where and how a load child runs: the argv that starts this binary
/// (possibly inside `ip netns exec … setpriv …`) and the address it loads.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The program and arguments before `load`.
    pub argv: Vec<OsString>,
    /// Where the requests go.
    pub addr: SocketAddr,
}

/// Runs one load child and reads what it measured.
pub fn run(
    launch: &Launch,
    path: &str,
    requests: usize,
    concurrency: usize,
) -> Result<Measured, String> {
    let Some((program, rest)) = launch.argv.split_first() else {
        return Err("empty load command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(rest).arg("load");
    cmd.arg(format!("--addr={}", launch.addr))
        .arg(format!("--path={path}"));
    cmd.arg(format!("--requests={requests}"));
    cmd.arg(format!("--concurrency={concurrency}"));
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{cmd:?} printed no result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_gives_status_and_length() {
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 1552\r\n\r\n";
        assert_eq!(parse_head(head).ok(), Some((200, 1552)));
    }

    #[test]
    fn a_chunked_response_is_refused() {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(head).is_err());
    }
}
