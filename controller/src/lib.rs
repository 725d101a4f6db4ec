//! podid's controller, the MIC equivalent: the identities running pods need, assigned to the VMs and scale sets that host them.
//!
//! [`plan`] is the pure core: pods, nodes, identities, what Azure carries and
//! what the controller added go in; per VM or scale set the ARM changes (and
//! the PATCH bodies that carry them) come out. The kube watchers, the Lease,
//! the ARM client and the binary sit around it.

pub mod admin;
pub mod args;
pub mod arm;
pub mod auth;
pub mod config;
pub mod exec;
pub mod kube;
pub mod local;
pub mod metrics;
pub mod plan;
pub mod run;
pub mod seams;
