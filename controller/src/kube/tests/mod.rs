//! Unit tests of the kube glue's pure parts.
#![allow(clippy::unwrap_used)]

mod status;
