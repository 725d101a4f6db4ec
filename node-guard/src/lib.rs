//! podid-node-guard: on every node, only the pods the install allows reach the node's IMDS (`169.254.169.254`).
//!
//! The guard watches the pods of its node (or reads a pods file), decides with
//! `podid_core::guard` which pod IPs may reach IMDS, and keeps them in an
//! nftables set ([`sync`]); blocked TCP to IMDS is sent to a tiny responder
//! that answers an IMDS-shaped 403 naming the pod ([`responder`]), counts it
//! and reports a Warning Event on the pod ([`events`]). Everything else a
//! blocked pod sends to IMDS is dropped. Host-network pods leave through the
//! output hook, which the guard does not touch: they are outside its reach.

pub mod admin;
pub mod args;
pub mod events;
pub mod file;
pub mod kube;
pub mod metrics;
pub mod nft;
pub mod responder;
pub mod run;
pub mod sync;
