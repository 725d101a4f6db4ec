//! `--cert-secret` and its companions select the self-managed certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::Parser;
use podid_certs::RotationPolicy;
use podid_webhook::args::WebhookArgs;
use podid_webhook::config::SelfManagedConfig;

fn parse(extra: &[&str]) -> Result<WebhookArgs, clap::Error> {
    WebhookArgs::try_parse_from(std::iter::once("podid-webhook").chain(extra.iter().copied()))
}

#[test]
fn cert_secret_selects_the_self_managed_certificate_in_the_release_namespace() {
    let args = parse(&[
        "--cert-secret=podid-webhook-tls",
        "--webhook-config-name=podid-webhook",
        "--service-name=podid-webhook",
        "--release-namespace=podid-system",
        "--cert-check-interval=5s",
    ])
    .unwrap();
    let expected = SelfManagedConfig {
        secret: "podid-webhook-tls".into(),
        webhook_config: "podid-webhook".into(),
        service: "podid-webhook".into(),
        namespace: Some("podid-system".into()),
        check_interval: Duration::from_secs(5),
        policy: RotationPolicy::default(),
    };
    assert_eq!(args.to_config().self_managed, Some(expected));
}

#[test]
fn without_cert_secret_the_certificate_files_are_used() {
    let cfg = parse(&["--tls-cert=/x/tls.crt"]).unwrap().to_config();
    assert_eq!(cfg.self_managed, None);
    assert_eq!(cfg.tls_cert.to_str(), Some("/x/tls.crt"));
}

#[test]
fn cert_secret_without_the_webhook_configuration_or_service_is_a_usage_error() {
    for args in [
        &["--cert-secret=s", "--service-name=svc"][..],
        &["--cert-secret=s", "--webhook-config-name=w"][..],
        &["--service-name=svc"][..],
    ] {
        let err = parse(args).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{args:?}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
