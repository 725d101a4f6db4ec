//! Which bound identity a token request names: by default, client id, resource id or object id, never one outside the pod's list.

use podid_core::imds::Selector;
use podid_core::proxy_config::ProxyIdentity;

/// What the proxy knows, without asking upstream, about the identity a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// This bound identity (index into the configuration).
    Identity(usize),
    /// An object id no known one matches: these bound identities' object ids
    /// are not known yet and must be learned from tokens fetched for them.
    Learn(Vec<usize>),
    /// Not bound to the pod: 403, and upstream is never asked for it.
    Unbound(String),
}

/// Resolves `selector` against the pod's `identities` (the first is the
/// default); `object_id(i)` is identity `i`'s object id if already learned.
/// Ids compare case-insensitively, as Azure compares them.
pub fn resolve(
    identities: &[ProxyIdentity],
    selector: Option<&Selector>,
    object_id: impl Fn(usize) -> Option<String>,
) -> Resolution {
    if identities.is_empty() {
        return Resolution::Unbound("no identity is bound to this pod".to_owned());
    }
    let find = |what: &str, value: &str, field: fn(&ProxyIdentity) -> &str| {
        identities
            .iter()
            .position(|id| !field(id).is_empty() && field(id).eq_ignore_ascii_case(value))
            .map_or_else(|| unbound(what, value), Resolution::Identity)
    };
    match selector {
        None => Resolution::Identity(0),
        Some(Selector::ClientId(v)) => find("client_id", v, |id| &id.client_id),
        Some(Selector::ResourceId(v)) => find("msi_res_id", v, |id| &id.resource_id),
        Some(Selector::ObjectId(v)) => {
            let known = (0..identities.len()).map(|i| (i, object_id(i)));
            let mut unknown = Vec::new();
            for (i, oid) in known {
                match oid {
                    Some(oid) if oid.eq_ignore_ascii_case(v) => return Resolution::Identity(i),
                    Some(_) => {}
                    None => unknown.push(i),
                }
            }
            if unknown.is_empty() {
                unbound("object_id", v)
            } else {
                Resolution::Learn(unknown)
            }
        }
    }
}

fn unbound(what: &str, value: &str) -> Resolution {
    Resolution::Unbound(not_bound(what, value))
}

/// The 403's description for an identity the pod may not use.
pub fn not_bound(what: &str, value: &str) -> String {
    format!("the identity with {what} {value:?} is not bound to this pod")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids() -> Vec<ProxyIdentity> {
        [
            "name=a,type=0,client-id=AAAA,resource-id=/subs/x/ids/a",
            "name=b,type=0,client-id=bbbb,resource-id=/subs/x/ids/B",
            "name=sp,type=1,client-id=cccc,tenant-id=t,secret-dir=/s",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    fn none(_: usize) -> Option<String> {
        None
    }

    #[test]
    fn no_selector_is_the_first_identity() {
        assert_eq!(resolve(&ids(), None, none), Resolution::Identity(0));
    }

    #[test]
    fn client_and_resource_ids_match_case_insensitively() {
        let by_client = Selector::ClientId("aaaa".into());
        assert_eq!(
            resolve(&ids(), Some(&by_client), none),
            Resolution::Identity(0)
        );
        let by_resource = Selector::ResourceId("/SUBS/X/IDS/b".into());
        assert_eq!(
            resolve(&ids(), Some(&by_resource), none),
            Resolution::Identity(1)
        );
        let sp = Selector::ClientId("CCCC".into());
        assert_eq!(resolve(&ids(), Some(&sp), none), Resolution::Identity(2));
    }

    #[test]
    fn ids_of_other_identities_are_unbound() {
        for s in [
            Selector::ClientId("dddd".into()),
            Selector::ResourceId("/subs/x/ids/z".into()),
        ] {
            assert!(
                matches!(resolve(&ids(), Some(&s), none), Resolution::Unbound(_)),
                "{s:?}"
            );
        }
        // A service principal has no resource id to match an empty one.
        assert!(matches!(
            resolve(&ids(), Some(&Selector::ResourceId(String::new())), none),
            Resolution::Unbound(_)
        ));
    }

    #[test]
    fn object_ids_are_learned_only_for_bound_identities_not_yet_known() {
        let oid = Selector::ObjectId("OID-B".into());
        assert_eq!(
            resolve(&ids(), Some(&oid), none),
            Resolution::Learn(vec![0, 1, 2])
        );
        let some = |i: usize| (i == 0).then(|| "oid-a".to_owned());
        assert_eq!(
            resolve(&ids(), Some(&oid), some),
            Resolution::Learn(vec![1, 2])
        );
        let all = |i: usize| Some(["oid-a", "oid-b", "oid-c"][i].to_owned());
        assert_eq!(resolve(&ids(), Some(&oid), all), Resolution::Identity(1));
        let other = Selector::ObjectId("oid-z".into());
        assert!(matches!(
            resolve(&ids(), Some(&other), all),
            Resolution::Unbound(_)
        ));
    }

    #[test]
    fn a_pod_without_identities_gets_nothing() {
        let r = resolve(&[], None, none);
        assert_eq!(
            r,
            Resolution::Unbound("no identity is bound to this pod".into())
        );
        assert!(matches!(
            resolve(&[], Some(&Selector::ClientId("x".into())), none),
            Resolution::Unbound(_)
        ));
    }
}
