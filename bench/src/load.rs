//! The load generator: keep-alive TLS connections like the API server's, driven closed-loop (as
//! fast as answers come) or open-loop (a fixed timetable, latency counted from the scheduled time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// The name the API server dials: the webhook's Service.
pub const SERVER_NAME: &str = "podid-webhook.podid-system.svc";
/// The API server appends its timeout to the webhook's path.
const REQUEST_PATH: &str = "/mutate?timeout=10s";
/// After a failed reconnect, wait this long before the next try instead of spinning.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Where and what to send.
#[derive(Clone)]
pub struct Target {
    /// The server.
    pub addr: SocketAddr,
    /// TLS trusting only the test CA, ALPN `http/1.1`.
    pub tls: TlsConnector,
    /// The AdmissionReview sent with every request.
    pub body: Bytes,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Latency of every successful request in the measured window, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Failed requests' messages.
    pub errors: Vec<String>,
    /// Length of the measured window.
    pub window: Duration,
}

impl Measured {
    fn merge(&mut self, other: Measured) {
        self.latencies_ns.extend(other.latencies_ns);
        self.errors.extend(other.errors);
    }
}

/// Opens one keep-alive connection: TCP (no Nagle), TLS, HTTP/1.1.
pub async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(SERVER_NAME)?;
    let tls = target
        .tls
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends the review once; `Ok` holds the answer if it is HTTP 200 and looks like an admitted,
/// patched review.
///
/// The check is a byte search rather than a JSON parse so that checking costs the same small,
/// fixed amount for both servers (the client shares the machine's cores with them).
pub async fn send(sender: &mut SendRequest<Full<Bytes>>, target: &Target) -> Result<Bytes, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let request = Request::post(REQUEST_PATH)
        .header(header::HOST, SERVER_NAME)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(target.body.clone()))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    if !contains(&body, br#""allowed":true"#) || !contains(&body, br#""patch":""#) {
        return Err(format!(
            "not an admitted review with a patch: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends the review until the server answers (its certificate may still be loading), at most
/// `patience`; returns the first answer.
pub async fn probe(target: &Target, patience: Duration) -> anyhow::Result<Bytes> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = async {
            let mut sender = connect(target).await?;
            send(&mut sender, target).await.map_err(anyhow::Error::msg)
        };
        match attempt.await {
            Ok(body) => return Ok(body),
            Err(e) if Instant::now() >= deadline => return Err(e.context("server never answered")),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn open_all(target: &Target, n: usize) -> anyhow::Result<Vec<SendRequest<Full<Bytes>>>> {
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        senders.push(connect(target).await?);
    }
    Ok(senders)
}

/// Records one request's outcome, reconnecting after a failure (the connection may be gone).
async fn record(
    out: &mut Measured,
    measured: bool,
    latency: Duration,
    result: Result<Bytes, String>,
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
) {
    match result {
        Ok(_) if measured => out.latencies_ns.push(latency.as_nanos() as u64),
        Ok(_) => {}
        Err(e) => {
            if measured {
                out.errors.push(e);
            }
            match connect(target).await {
                Ok(fresh) => *sender = fresh,
                Err(_) => tokio::time::sleep(RECONNECT_BACKOFF).await,
            }
        }
    }
}

/// `concurrency` connections, each sending its next request as soon as the last is answered,
/// for `warmup` unrecorded and then `duration` recorded.
pub async fn closed_loop(
    target: Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let senders = open_all(&target, concurrency).await?;
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut tasks = JoinSet::new();
    for mut sender in senders {
        let target = Arc::clone(&target);
        tasks.spawn(async move {
            let mut out = Measured::default();
            loop {
                let started = Instant::now();
                if started >= end {
                    return out;
                }
                let result = send(&mut sender, &target).await;
                let latency = started.elapsed();
                let measured = started >= measure_from;
                record(&mut out, measured, latency, result, &mut sender, &target).await;
            }
        });
    }
    join(tasks, duration).await
}

/// Requests due every `1 / rate` seconds on a fixed timetable, sent on whichever of
/// `concurrency` connections is free.
///
/// Latency starts at the scheduled time when the request had to wait for a free connection, so a
/// stall counts against every request it delayed (no coordinated omission); otherwise it starts
/// when the timer fired, because tokio's timer wakes up to 1 ms late and that lateness is the
/// client's, not the server's.
pub async fn open_loop(
    target: Arc<Target>,
    concurrency: usize,
    rate: u32,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    let senders = open_all(&target, concurrency).await?;
    let interval = Duration::from_secs(1) / rate;
    let warmup_tickets = (warmup.as_secs_f64() * f64::from(rate)) as u64;
    let total = warmup_tickets + (duration.as_secs_f64() * f64::from(rate)) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now() + Duration::from_millis(10);
    let mut tasks = JoinSet::new();
    for mut sender in senders {
        let (target, next) = (Arc::clone(&target), Arc::clone(&next));
        tasks.spawn(async move {
            let mut out = Measured::default();
            loop {
                let ticket = next.fetch_add(1, Ordering::Relaxed);
                if ticket >= total {
                    return out;
                }
                let scheduled = t0 + interval * u32::try_from(ticket).unwrap_or(u32::MAX);
                let started = if Instant::now() < scheduled {
                    tokio::time::sleep_until(scheduled.into()).await;
                    Instant::now()
                } else {
                    scheduled
                };
                let result = send(&mut sender, &target).await;
                let latency = started.elapsed();
                let measured = ticket >= warmup_tickets;
                record(&mut out, measured, latency, result, &mut sender, &target).await;
            }
        });
    }
    join(tasks, duration).await
}

async fn join(mut tasks: JoinSet<Measured>, window: Duration) -> anyhow::Result<Measured> {
    let mut all = Measured {
        window,
        ..Measured::default()
    };
    while let Some(done) = tasks.join_next().await {
        all.merge(done.context("load task panicked")?);
    }
    Ok(all)
}
