//! A small stand-in for Azure IMDS, Azure AD and ARM that podid's tests start in-process or as a binary.
//!
//! The behaviour follows `reference/AZURE.md`: IMDS's token endpoint with its
//! header, parameter and throttling rules; Azure AD's client-credentials grant
//! with secrets, certificate assertions and federated (workload identity)
//! tokens of a test OIDC issuer ([`oidc`]); ARM's GET and PATCH of VM and
//! scale-set identities ([`arm`]: delta merge, type transitions, the
//! 150-change limit, long-running operations, token-bucket throttling,
//! LinkedAuthorizationFailed, faults); one shared [`AzureState`] that decides
//! which identity each VM can get tokens for, and that ARM changes when an
//! operation succeeds. Tests drive it through the [`Azure`] handle: assign
//! identities, inject faults and latency, count upstream calls.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use podid_azure_emulator::{AzureState, Emulator, EmulatorConfig};
//! let mut state = AzureState::default();
//! state.add_identity("id-a");
//! state.add_vm("vm0")?;
//! let emulator = Emulator::start(EmulatorConfig::loopback(state)).await?;
//! emulator.assign_to_vm("vm0", "id-a")?;
//! let imds = emulator.imds_addr("vm0");
//! # Ok(()) }
//! ```

pub mod aad;
pub mod arm;
mod azure;
pub mod client;
mod emulator;
pub mod file;
pub mod ids;
pub mod imds;
mod jwt;
pub mod limits;
pub mod oidc;
mod principal;
pub mod resolve;
pub mod sdk;
pub mod server;
mod state;

pub use crate::arm::config::{
    ArmConfig, ArmFault, ArmLimits, ArmMatch, ArmMethod, PatchAnswer, UnknownIdentityAnswer,
};
pub use crate::arm::{ArmCounters, ArmError};
pub use crate::azure::{Azure, DEFAULT_AAD_TOKEN_LIFETIME, DEFAULT_IMDS_TOKEN_LIFETIME, Fault};
pub use crate::emulator::{Emulator, EmulatorConfig, StartError};
pub use crate::jwt::{B64URL, decode_claims};
pub use crate::limits::{ImdsLimits, Rate};
pub use crate::principal::{RegisteredCert, ServicePrincipal};
pub use crate::server::{Listen, tls_config_from_pem};
pub use crate::state::{
    AssignedIdentities, AzureState, Identity, IdentityUpdate, ScaleSet, StateError, SystemIdentity,
    Target, Vm,
};
