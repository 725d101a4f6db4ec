//! podid's core: contract names, the identity model and the pure planners shared by every component.
//!
//! Nothing here opens a socket, talks to Kubernetes or calls Azure.

pub mod admission;
pub mod azure_ids;
pub mod duration;
pub mod exemption;
pub mod guard;
pub mod imds;
pub mod inject;
pub mod iptables;
pub mod model;
pub mod names;
pub mod objects;
pub mod pod;
pub mod proxy_config;
pub mod resolve;
pub mod selector;
pub mod status;
