//! The steps that need no root: the Azure stand-in, the webhook admitting and denying pods over TLS, the controller assigning the pod's identity with one PATCH.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use podid_azure_emulator::client::{Reply, request};
use podid_e2e::proc::Daemon;
use podid_e2e::world::Identity;
use serde_json::Value;

use crate::context::{Ctx, listening, tail, until};
use crate::tls::{WEBHOOK_SERVICE, https};
use crate::world::{self, NAMESPACE, OTHER, POD, STORAGE, VM};

const START: Duration = Duration::from_secs(30);

/// Starts `podid-azure-emulator` (IMDS of the VM, Entra ID and ARM over HTTPS) and waits for it.
pub async fn stand_in(ctx: &Ctx) -> Result<(Daemon, String), String> {
    let world = ctx.write("azure-world.yaml", &world::azure_world())?;
    let (cert, key) = &ctx.material.azure_cert;
    let (cert, key) = (ctx.write("azure.crt", cert)?, ctx.write("azure.key", key)?);
    let mut cmd = Command::new(&ctx.bins.emulator);
    cmd.arg("--identities").arg(&world);
    cmd.args(["--imds-listen", &ctx.imds.to_string(), "--imds-rate=0"]);
    cmd.args(["--aad-listen", &ctx.aad.to_string()]);
    cmd.arg("--aad-tls-cert")
        .arg(&cert)
        .arg("--aad-tls-key")
        .arg(&key);
    cmd.args(["--arm-listen", &ctx.arm.to_string(), "--arm-check-tokens"]);
    // A short, real long-running operation: the controller follows it to its end.
    cmd.args(["--arm-vm-latency-ms", "300"]);
    let mut daemon = Daemon::spawn("azure-stand-in", cmd, &ctx.dir)?;
    for addr in [ctx.imds, ctx.aad, ctx.arm] {
        until("the stand-in listening", &mut daemon, START, || {
            listening(addr)
        })
        .await?;
    }
    let summary = format!(
        "IMDS of {VM} on {}, Entra ID https://localhost:{}, ARM https://localhost:{}; {VM} carries {}",
        ctx.imds,
        ctx.aad.port(),
        ctx.arm.port(),
        OTHER.name
    );
    Ok((daemon, summary))
}

/// Starts `podid-webhook` with a fresh CA's serving certificate and the identities file, and waits for `/readyz`.
pub async fn webhook(ctx: &Ctx) -> Result<((Daemon, SocketAddr), String), String> {
    let objects = world::yaml_documents(&world::identity_objects())?;
    let identities = ctx.write("identities.yaml", &objects)?;
    let (cert, key) = &ctx.material.webhook_cert;
    let (cert, key) = (
        ctx.write("webhook.crt", cert)?,
        ctx.write("webhook.key", key)?,
    );
    let (listen, admin) = (crate::context::free_port()?, crate::context::free_port()?);
    let mut cmd = Command::new(&ctx.webhook);
    cmd.args([
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &admin.to_string(),
    ]);
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    cmd.arg("--identities-file").arg(&identities);
    cmd.args(["--proxy-image", "podid/proxy:demo", "--log-format", "json"]);
    cmd.env_clear();
    let mut daemon = Daemon::spawn("webhook", cmd, &ctx.dir)?;
    until("the webhook's /readyz", &mut daemon, START, || async move {
        let reply = request(admin, "GET", "/readyz", &[], "").await.ok()?;
        (reply.status == 200).then_some(())
    })
    .await?;
    let summary = format!(
        "HTTPS on {listen} (certificate for {}.{}.svc from a fresh CA), /readyz 200",
        WEBHOOK_SERVICE.0, WEBHOOK_SERVICE.1
    );
    Ok(((daemon, listen), summary))
}

/// POSTs an AdmissionReview for `pod` as the API server does; returns the review's `response`.
async fn admit(
    ctx: &Ctx,
    webhook: SocketAddr,
    uid: &str,
    pod: &Value,
) -> Result<(Value, String), String> {
    let body = world::review(uid, pod).to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let host = format!("{}.{}.svc", WEBHOOK_SERVICE.0, WEBHOOK_SERVICE.1);
    let answer = https(
        webhook,
        &host,
        &ctx.material.webhook_ca,
        ("POST", "/mutate?timeout=5s", &headers, &body),
        Duration::from_secs(10),
    )
    .await?;
    let review = json_of(&answer.reply)?;
    let response = review["response"].clone();
    if answer.reply.status != 200 || response["uid"] != uid {
        return Err(format!(
            "unexpected answer {}: {}",
            answer.reply.status, answer.reply.body
        ));
    }
    Ok((
        response,
        format!("{}, ALPN {}", answer.version, answer.alpn),
    ))
}

fn json_of(reply: &Reply) -> Result<Value, String> {
    serde_json::from_str(&reply.body).map_err(|e| format!("not JSON ({e}): {}", reply.body))
}

/// The demo pod admitted: the patch decoded, applied, summarized.
pub async fn admit_pod(ctx: &Ctx, webhook: SocketAddr) -> Result<(Value, String), String> {
    let pod = world::pod(POD, STORAGE.name);
    let (response, tls) = admit(ctx, webhook, "7f1c0000-0000-4000-8000-000000000001", &pod).await?;
    if response["allowed"] != true || response["patchType"] != "JSONPatch" {
        return Err(format!("not admitted with a patch: {response}"));
    }
    let bytes = STANDARD
        .decode(response["patch"].as_str().unwrap_or_default())
        .map_err(|e| format!("patch is not base64: {e}"))?;
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| format!("patch is not a JSON Patch: {e}"))?;
    let adds = patch
        .0
        .iter()
        .filter(|op| matches!(op, json_patch::PatchOperation::Add(_)))
        .count();
    if adds != patch.0.len() {
        return Err(format!(
            "the patch holds more than add operations: {patch:?}"
        ));
    }
    let mut admitted = pod.clone();
    json_patch::patch(&mut admitted, &patch)
        .map_err(|e| format!("the patch does not apply: {e}"))?;
    let layout = if admitted["spec"]["initContainers"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == "podid-proxy"))
    {
        "native sidecar"
    } else {
        "first container"
    };
    let env = admitted["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|env| {
            env.iter()
                .find(|e| e["name"] == "AZURE_CLIENT_ID")
                .map(|e| e["value"].clone())
        });
    let summary = format!(
        "{tls}: admitted {NAMESPACE}/{POD} with {adds} JSON Patch adds: podid-init, podid-proxy ({layout}), app's AZURE_CLIENT_ID={}, label podid.io/injected",
        env.unwrap_or(Value::Null)
    );
    Ok((admitted, summary))
}

/// A pod naming another namespace's identity is denied, with the reason.
pub async fn deny_foreign(ctx: &Ctx, webhook: SocketAddr) -> Result<((), String), String> {
    let pod = world::pod("intruder", OTHER.name);
    let (response, _) = admit(ctx, webhook, "7f1c0000-0000-4000-8000-000000000002", &pod).await?;
    if response["allowed"] != false || response["status"]["code"] != 403 {
        return Err(format!("not denied: {response}"));
    }
    let message = response["status"]["message"].as_str().unwrap_or_default();
    Ok(((), format!("denied {NAMESPACE}/intruder (403): {message}")))
}

/// Asks the VM's IMDS for `id`'s token; the HTTP status.
pub async fn imds_status(ctx: &Ctx, id: Identity) -> Result<u16, String> {
    let target = format!(
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id={}",
        id.client_id
    );
    let ask = request(ctx.imds, "GET", &target, &[("Metadata", "true")], "");
    let reply = tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .map_err(|_| "IMDS did not answer".to_owned())??;
    Ok(reply.status)
}

/// Runs the controller on a cluster file holding the admitted pod; waits for its one PATCH.
pub async fn controller(ctx: &Ctx, admitted: &Value) -> Result<(Daemon, String), String> {
    let before = imds_status(ctx, STORAGE).await?;
    if before == 200 {
        return Err(format!("{} is already on {VM}", STORAGE.name));
    }
    let cluster = ctx.write("cluster.yaml", &world::cluster(admitted)?)?;
    let cloud = ctx.write("azure.json", &world::azure_json())?;
    let ca = ctx.write("azure-ca.pem", &ctx.material.azure_cert.0)?;
    let admin = crate::context::free_port()?;
    let mut cmd = Command::new(&ctx.controller);
    cmd.arg("--cluster-file")
        .arg(&cluster)
        .arg("--cloud-config")
        .arg(&cloud);
    cmd.args([
        "--arm-endpoint",
        &format!("https://localhost:{}", ctx.arm.port()),
    ]);
    cmd.args([
        "--authority-host",
        &format!("https://localhost:{}", ctx.aad.port()),
    ]);
    cmd.args(["--arm-scope", "https://management.azure.com/.default"]);
    cmd.arg("--arm-ca-file").arg(&ca);
    cmd.args(["--admin-listen", &admin.to_string(), "--log-format", "json"]);
    // azure_identity's HTTP client trusts the stand-in's Entra ID through the platform roots.
    cmd.env_clear().env("SSL_CERT_FILE", &ca);
    let mut daemon = Daemon::spawn("controller", cmd, &ctx.dir)?;
    let metrics = until(
        "the controller's PATCH",
        &mut daemon,
        START,
        || async move {
            let reply = request(admin, "GET", "/metrics", &[], "").await.ok()?;
            let text = reply.body;
            let failed = sample(
                &text,
                "podid_controller_executor_reports_total{kind=\"identity_failed\"}",
            );
            (sample(
                &text,
                "podid_controller_executor_reports_total{kind=\"applied\"}",
            ) >= 1.0
                || failed >= 1.0)
                .then_some(text)
        },
    )
    .await?;
    if sample(
        &metrics,
        "podid_controller_executor_reports_total{kind=\"applied\"}",
    ) < 1.0
    {
        return Err(format!(
            "the identity was refused; controller log:\n{}",
            tail(&daemon.log(), 20)
        ));
    }
    let patches: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("podid_controller_arm_requests_total{operation=\"patch\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let after = imds_status(ctx, STORAGE).await?;
    let event = daemon
        .log()
        .lines()
        .any(|l| l.contains("\"reason\":\"IdentityAssigned\""));
    if after != 200 || !event {
        return Err(format!(
            "IMDS now answers {after}, Event logged: {event}; log:\n{}",
            tail(&daemon.log(), 20)
        ));
    }
    let summary = format!(
        "{patches} PATCH to ARM assigned {} to {VM} (IMDS for it: {before} before, {after} after); Event IdentityAssigned on {NAMESPACE}/{POD}",
        STORAGE.name
    );
    Ok((daemon, summary))
}

/// The value of the sample named exactly `name` (labels included) in OpenMetrics `text`; 0 if absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
