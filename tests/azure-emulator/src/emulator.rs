//! Starting the emulated services together, in-process for tests or from the binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::arm::config::ArmConfig;
use crate::azure::Azure;
use crate::limits::ImdsLimits;
use crate::server::{self, Listen};
use crate::state::AzureState;
use crate::{aad, arm, imds};

/// What to start.
#[derive(Debug)]
pub struct EmulatorConfig {
    /// The world at start.
    pub state: AzureState,
    /// One IMDS endpoint per VM: (VM name, where it listens).
    pub imds: Vec<(String, Listen)>,
    /// Azure AD: where it listens, and TLS if it should speak HTTPS.
    pub aad: Option<(Listen, Option<Arc<ServerConfig>>)>,
    /// IMDS limits.
    pub limits: ImdsLimits,
    /// Azure Resource Manager: where it listens, always over TLS.
    pub arm: Option<(Listen, Arc<ServerConfig>)>,
    /// ARM's throttling, latency and answers.
    pub arm_config: ArmConfig,
}

impl EmulatorConfig {
    /// Every VM of `state` gets an IMDS on `127.0.0.1:<free port>`, and Azure
    /// AD listens on plain HTTP on another; Azure's default limits.
    pub fn loopback(state: AzureState) -> Self {
        let loopback = || Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
        let imds = state
            .vms()
            .map(|vm| (vm.name.clone(), loopback()))
            .collect();
        Self {
            state,
            imds,
            aad: Some((loopback(), None)),
            limits: ImdsLimits::default(),
            arm: None,
            arm_config: ArmConfig::default(),
        }
    }

    /// Serves ARM on `127.0.0.1:<free port>` over TLS with `tls` (a
    /// certificate for `localhost`).
    pub fn with_arm(mut self, tls: Arc<ServerConfig>) -> Self {
        self.arm = Some((Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0))), tls));
        self
    }

    /// Uses `config` for ARM.
    pub fn with_arm_config(mut self, config: ArmConfig) -> Self {
        self.arm_config = config;
        self
    }

    /// Serves Azure AD over TLS with `tls` (the SDKs insist on https authorities).
    pub fn with_aad_tls(mut self, tls: Arc<ServerConfig>) -> Self {
        if let Some((_, slot)) = &mut self.aad {
            *slot = Some(tls);
        }
        self
    }

    /// Uses `limits` for IMDS.
    pub fn with_limits(mut self, limits: ImdsLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An IMDS endpoint was asked for a VM the state does not have.
    #[error("IMDS endpoint for unknown VM {0:?}")]
    UnknownVm(String),
    /// A listener could not be bound.
    #[error("binding the {what} listener: {source}")]
    Bind {
        /// Which service.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Running emulated services. Dropping it stops them; [`Emulator::shutdown`]
/// also waits for them. Derefs to the [`Azure`] handle, so tests write
/// `emulator.assign_to_vm(..)` or `emulator.imds_token_requests(..)`.
#[derive(Debug)]
pub struct Emulator {
    azure: Azure,
    imds: BTreeMap<String, SocketAddr>,
    aad: Option<(SocketAddr, bool)>,
    arm: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds every listener, then serves in background tasks.
    pub async fn start(config: EmulatorConfig) -> Result<Self, StartError> {
        let EmulatorConfig {
            state,
            imds,
            aad,
            limits,
            arm,
            arm_config,
        } = config;
        let azure = Azure::new(state);
        azure.set_imds_limits(limits);
        azure.set_arm_config(arm_config);
        let (stop, _) = watch::channel(false);
        let mut emulator = Self {
            azure,
            imds: BTreeMap::new(),
            aad: None,
            arm: None,
            stop,
            tasks: Vec::new(),
        };
        for (vm, listen) in imds {
            emulator.start_imds(&vm, listen).await?;
        }
        if let Some((listen, tls)) = aad {
            emulator.start_aad(listen, tls).await?;
        }
        if let Some((listen, tls)) = arm {
            emulator.start_arm(listen, tls).await?;
        }
        Ok(emulator)
    }

    async fn start_arm(
        &mut self,
        listen: Listen,
        tls: Arc<ServerConfig>,
    ) -> Result<(), StartError> {
        let (listener, addr) = bind(listen, "ARM").await?;
        let router = arm::router(self.azure.clone());
        self.tasks.push(tokio::spawn(server::serve(
            listener,
            router,
            Some(tls),
            self.stop.subscribe(),
        )));
        info!(%addr, "ARM listening (https)");
        self.arm = Some(addr);
        Ok(())
    }

    async fn start_imds(&mut self, vm: &str, listen: Listen) -> Result<(), StartError> {
        if self.azure.read(|s| s.vm(vm).is_none()) {
            return Err(StartError::UnknownVm(vm.to_owned()));
        }
        let (listener, addr) = bind(listen, &format!("IMDS of {vm}")).await?;
        self.azure
            .write(|s| s.set_imds_addr(vm, addr))
            .map_err(|_| StartError::UnknownVm(vm.to_owned()))?;
        let router = imds::router(self.azure.clone(), vm);
        self.tasks.push(tokio::spawn(server::serve(
            listener,
            router,
            None,
            self.stop.subscribe(),
        )));
        info!(%vm, %addr, "IMDS listening");
        self.imds.insert(vm.to_owned(), addr);
        Ok(())
    }

    async fn start_aad(
        &mut self,
        listen: Listen,
        tls: Option<Arc<ServerConfig>>,
    ) -> Result<(), StartError> {
        let (listener, addr) = bind(listen, "Azure AD").await?;
        let https = tls.is_some();
        let router = aad::router(self.azure.clone(), https);
        self.tasks.push(tokio::spawn(server::serve(
            listener,
            router,
            tls,
            self.stop.subscribe(),
        )));
        info!(%addr, https, "Azure AD listening");
        self.aad = Some((addr, https));
        Ok(())
    }

    /// The shared handle: state, limits, faults, counters.
    pub fn azure(&self) -> &Azure {
        &self.azure
    }

    /// Where VM `vm`'s IMDS listens.
    pub fn imds_addr(&self, vm: &str) -> Option<SocketAddr> {
        self.imds.get(vm).copied()
    }

    /// Where Azure AD listens.
    pub fn aad_addr(&self) -> Option<SocketAddr> {
        self.aad.map(|(addr, _)| addr)
    }

    /// The authority host to give SDKs: `https://localhost:<port>` over TLS
    /// (certificates name hosts, not loopback IPs), else `http://127.0.0.1:<port>`.
    pub fn aad_authority(&self) -> Option<String> {
        self.aad.map(|(addr, https)| match https {
            true => format!("https://localhost:{}", addr.port()),
            false => format!("http://{addr}"),
        })
    }

    /// Where ARM listens.
    pub fn arm_addr(&self) -> Option<SocketAddr> {
        self.arm
    }

    /// ARM's endpoint for clients: `https://localhost:<port>`.
    pub fn arm_endpoint(&self) -> Option<String> {
        self.arm
            .map(|addr| format!("https://localhost:{}", addr.port()))
    }

    /// Stops every service and waits until they have stopped.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Deref for Emulator {
    type Target = Azure;

    fn deref(&self) -> &Azure {
        &self.azure
    }
}

async fn bind(
    listen: Listen,
    what: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind {
        what: what.to_owned(),
        source,
    };
    let listener = listen.bind().await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, addr))
}
