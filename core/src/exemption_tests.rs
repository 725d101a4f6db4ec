use super::*;

const HYBRID_V1: &str = "9:name=systemd:/\n4:memory:/x\n0::/\n";

fn v2_container() -> CgroupView {
    CgroupView {
        kernel_release: "6.8.0-1017-azure\n".into(),
        cgroup_fs_magic: CGROUP2_SUPER_MAGIC,
        proc_self_cgroup: "0::/\n".into(),
        has_cgroup_events: true,
    }
}

#[test]
fn a_v2_container_on_a_new_kernel_is_guaranteed() {
    assert_eq!(check_cgroup_mode(&v2_container()), Ok(()));
    // Other v1 hierarchies (hybrid node, the v2 mount private) do not disturb socket matching.
    let hybrid = CgroupView {
        proc_self_cgroup: HYBRID_V1.into(),
        ..v2_container()
    };
    assert_eq!(check_cgroup_mode(&hybrid), Ok(()));
}

#[test]
fn kernels_before_6_1_fail_closed() {
    for release in ["6.0.19", "5.15.0-1064-azure", "4.19.0", "", "garbage", "6"] {
        let view = CgroupView {
            kernel_release: release.into(),
            ..v2_container()
        };
        assert!(
            matches!(check_cgroup_mode(&view), Err(Refusal::Kernel { .. })),
            "{release}"
        );
    }
    for release in ["6.1.0", "6.1", "6.18.44-fc-v1272", "7.0.1"] {
        assert!(kernel_at_least(release, MIN_KERNEL), "{release}");
    }
}

#[test]
fn cgroup_v1_mount_fails_closed() {
    let view = CgroupView {
        cgroup_fs_magic: 0x0102_1994, // tmpfs: the v1 hierarchies' parent
        ..v2_container()
    };
    assert_eq!(check_cgroup_mode(&view), Err(Refusal::NotCgroup2));
}

#[test]
fn shared_cgroup_namespace_fails_closed() {
    for text in [
        "0::/kubepods.slice/pod1/cri-abc.scope\n",
        "1:cpu:/\n",
        "0::/../x\n",
    ] {
        let view = CgroupView {
            proc_self_cgroup: text.into(),
            ..v2_container()
        };
        let err = check_cgroup_mode(&view).unwrap_err();
        assert!(
            matches!(err, Refusal::SharedNamespace { .. }),
            "{text}: {err}"
        );
    }
}

#[test]
fn net_cls_or_net_prio_v1_fails_closed() {
    let view = CgroupView {
        proc_self_cgroup: "5:net_cls,net_prio:/\n0::/\n".into(),
        ..v2_container()
    };
    let err = check_cgroup_mode(&view).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a cgroup v1 net_cls and net_prio hierarchy is in use"
    );
}

#[test]
fn the_machines_root_cgroup_fails_closed() {
    let view = CgroupView {
        has_cgroup_events: false,
        ..v2_container()
    };
    assert_eq!(check_cgroup_mode(&view), Err(Refusal::MachineRoot));
}

#[test]
fn failed_closed_line_names_the_node_and_the_way_out() {
    let line = failed_closed_line("aks-node-7", &Refusal::NotCgroup2);
    assert!(line.starts_with(
        "podid-proxy failed closed on node aks-node-7: /sys/fs/cgroup is not cgroup v2"
    ));
    assert!(
        line.contains("proxyExemption=uid") && !line.contains('\n'),
        "{line}"
    );
    assert!(failed_closed_line("", &Refusal::NotCgroup2).contains("node (unknown)"));
}

#[test]
fn exemption_flag_values_round_trip() {
    for e in [Exemption::Cgroup, Exemption::Uid] {
        assert_eq!(e.as_str().parse::<Exemption>(), Ok(e));
    }
    assert!(
        "UID"
            .parse::<Exemption>()
            .unwrap_err()
            .to_string()
            .contains("`cgroup` or `uid`")
    );
    assert_eq!(Exemption::default(), Exemption::Cgroup);
}
