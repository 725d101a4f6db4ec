//! The ARM client against the ARM stand-in over HTTPS: reads, PATCHes followed to their end, and how failures come back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exec_support;

use exec_support::emulated::*;
use podid_azure_emulator::{ArmConfig, Target as EmuTarget};
use podid_controller::arm::{ArmClient, StaticToken, TrustRoots, roots_from_pem};
use podid_controller::metrics::Metrics;
use podid_controller::plan::{IdentityChange, Target, build_requests};
use podid_controller::seams::{Arm, ArmError};

#[tokio::test]
async fn reading_a_target_returns_its_identities_with_client_ids() {
    let s = stand(quick_arm()).await;
    let block = s.client().get_identity(&s.targets[1].1).await.unwrap();
    let foreign = s.e.read(|st| st.identity(FOREIGN).unwrap().clone());
    let carried = block.get(&foreign.resource_id).unwrap();
    assert_eq!(
        carried.client_id.as_deref(),
        Some(foreign.client_id.as_str())
    );
    assert!(!block.system_assigned);
}

#[tokio::test]
async fn a_patch_returns_once_the_operation_has_applied_it() {
    let s = stand(quick_arm()).await;
    let metrics = Metrics::new();
    let client = s.client().with_metrics(metrics.arm.clone());
    let target = &s.targets[1].1;
    let actual = client.get_identity(target).await.unwrap();
    let x = s.e.read(|st| st.identity("x").unwrap().resource_id.clone());
    let requests = build_requests(target, &actual, &[IdentityChange::add(&x, None)]);
    client.patch_identity(target, &requests[0]).await.unwrap();
    assert!(
        s.carries_exactly(s.ss0(), &["x"]),
        "applied before patch_identity returned"
    );
    assert_eq!(metrics.arm.in_flight(), 0);
    let text = metrics.encode();
    for series in [
        r#"arm_requests_total{operation="get",status="200"} 1"#,
        r#"arm_requests_total{operation="patch",status="200"} 1"#,
        r#"arm_requests_total{operation="poll",status="200"}"#,
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
}

#[tokio::test]
async fn a_token_arm_refuses_is_unauthorized() {
    let config = ArmConfig {
        check_tokens: true,
        ..quick_arm()
    };
    let s = stand(config).await;
    let err = s.client().get_identity(&s.targets[0].1).await.unwrap_err();
    assert!(matches!(err, ArmError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn a_server_outside_the_trusted_roots_is_refused() {
    let s = stand(quick_arm()).await;
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let config = podid_controller::arm::ArmClientConfig {
        roots: TrustRoots::Custom(roots_from_pem(other.cert.pem().as_bytes()).unwrap()),
        ..s.client_config()
    };
    let client = ArmClient::new(config, StaticToken::new("t")).unwrap();
    let err = client.get_identity(&s.targets[0].1).await.unwrap_err();
    assert!(matches!(err, ArmError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_target_that_does_not_exist_is_not_found() {
    let s = stand(quick_arm()).await;
    let gone = match &s.targets[0].1 {
        Target::Vm {
            subscription,
            resource_group,
            ..
        } => Target::Vm {
            subscription: subscription.clone(),
            resource_group: resource_group.clone(),
            name: "nope".into(),
        },
        other => other.clone(),
    };
    let err = s.client().get_identity(&gone).await.unwrap_err();
    assert!(matches!(err, ArmError::TargetNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn refusals_name_the_identities_arm_refused() {
    let s = stand(quick_arm()).await;
    s.e.set_caller_can_assign("y", false).unwrap();
    let target = &s.targets[0].1;
    let actual = s.client().get_identity(target).await.unwrap();
    let id = |n: &str| s.e.read(|st| st.identity(n).unwrap().resource_id.clone());
    let changes = [
        IdentityChange::add(&id("x"), None),
        IdentityChange::add(&id("y"), None),
    ];
    let request = &build_requests(target, &actual, &changes)[0];
    match s
        .client()
        .patch_identity(target, request)
        .await
        .unwrap_err()
    {
        ArmError::IdentitiesRefused { identities, .. } => {
            assert_eq!(identities, vec![id("y").to_ascii_lowercase()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.carries_exactly(&EmuTarget::Vm("vm0".into()), &[]),
        "nothing applied"
    );
}
