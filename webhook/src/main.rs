//! `podid-webhook`: parses flags, installs the crypto provider, logs, runs the library.

use clap::Parser;
use mimalloc::MiMalloc;
use podid_webhook::Webhook;
use podid_webhook::args::{WebhookArgs, init_logging};

/// Parsing a 10 KB pod is allocation-bound: mimalloc halves the CPU per review
/// against glibc's allocator, and the image's musl allocator is slower still
/// (docs/BENCHMARKS.md, Webhook).
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One provider for the whole process; kube and rustls panic at run time without it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = WebhookArgs::parse();
    init_logging(args.log_format, &args.log);
    let webhook = Webhook::bind(args.to_config()).await?;
    webhook
        .run(podid_webhook::serve::termination_signal())
        .await;
    Ok(())
}
