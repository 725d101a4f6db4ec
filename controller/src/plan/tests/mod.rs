//! Table tests of the planner's rules, one file per stage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod changes;
mod desired;
mod request;
mod support;
