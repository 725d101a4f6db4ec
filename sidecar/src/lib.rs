//! podid's per-pod IMDS proxy (CONTRACT.md §4) and its init step (§5).

pub mod cli;
pub mod init;
pub mod proxy;
pub mod wait_ready;
