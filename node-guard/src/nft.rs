//! Running `nft -f -`: the one place the guard touches the kernel's rules.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use podid_core::guard::nft;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// How long one `nft` run may take before it is killed.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction that did not apply (nothing of it did: nft transactions are atomic).
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The program could not be started.
    #[error("starting {program}: {source} (is the nftables package installed?)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and refused the transaction.
    #[error("{program} -f - failed ({status}): {stderr}")]
    Refused {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// What it said (names the offending line).
        stderr: String,
    },
    /// It did not finish in time.
    #[error("{program} -f - did not finish within {NFT_TIMEOUT:?}")]
    Timeout {
        /// The program.
        program: String,
    },
}

/// Somewhere rule transactions go: the kernel through `nft`, or a fake in tests.
pub trait Netfilter: Send + Sync + 'static {
    /// Applies one `nft -f -` script, all or nothing.
    fn apply(&self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send;
}

/// The `nft` program.
#[derive(Clone, Debug)]
pub struct NftCommand {
    program: PathBuf,
}

impl NftCommand {
    /// Runs `program` (usually `nft`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }
}

impl Netfilter for NftCommand {
    async fn apply(&self, script: &str) -> Result<(), NftError> {
        run(&self.program, script).await
    }
}

async fn run(program: &Path, script: &str) -> Result<(), NftError> {
    let name = program.display().to_string();
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NftError::Spawn {
            program: name.clone(),
            source,
        })?;
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A write error shows up as nft's own failure below.
            let _ = stdin.write_all(script.as_bytes()).await;
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(NFT_TIMEOUT, work)
        .await
        .map_err(|_| NftError::Timeout {
            program: name.clone(),
        })?
        .map_err(|source| NftError::Spawn {
            program: name.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused {
            program: name,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Removes the guard's table (`podid-node-guard cleanup`, and the DaemonSet's own removal).
pub async fn cleanup(program: &Path, table: &str) -> Result<String, NftError> {
    run(program, &nft::remove(table)).await?;
    Ok(format!(
        "removed nftables table ip {table} (IMDS is no longer guarded on this node)"
    ))
}
