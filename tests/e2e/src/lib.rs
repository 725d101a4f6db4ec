//! podid end to end, in network namespaces (root only): a node with the emulated IMDS, a pod with podid-init's redirect and podid-proxy as the webhook renders them, and real Azure SDK clients as the app.
//!
//! How a test runs: [`bins::get`] runs `cargo build` for podid-proxy,
//! podid-azure-emulator, podid and podid-sdk-client-rust (a no-op when they
//! are fresh) and checks that scripts/install-test-deps.sh installed the
//! Python and Node clients; [`pod::PodEnv::start`] renders the pod with
//! `podid inject`, builds a node and a pod namespace joined by a veth
//! ([`netns`]) and starts the emulator on 169.254.169.254:80 in the node;
//! `install_redirect` runs podid-init's rendered command line as uid 0 with
//! only the rendered capabilities; `start_proxy` runs the rendered proxy as
//! uid 1501 and waits for `/ready`. Apps run as uid 1000 with a clean
//! environment. Everything is torn down on drop, also when a test fails.
//! Without root every test prints `SKIPPED (needs root): …` and passes.

pub mod bins;
pub mod expect;
pub mod federation;
pub mod http;
pub mod netns;
pub mod node;
pub mod pod;
pub mod proc;
pub mod world;
