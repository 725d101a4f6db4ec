//! Property: over random pod/node histories, applying each plan converges on exactly what running pods need, and never removes what is not ours or is protected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use proptest::prelude::*;
use sim::{FOREIGN, NAMESPACES, NODES, Op, REFS, World};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..NAMESPACES.len(), prop::collection::vec(0..REFS.len(), 0..3), any::<bool>())
            .prop_map(|(ns, refs, bound)| Op::Create { ns, refs, bound }),
        3 => (0..64usize, 0..NODES.len()).prop_map(|(pod, node)| Op::Schedule { pod, node }),
        1 => (0..64usize, any::<bool>()).prop_map(|(pod, failed)| Op::Finish { pod, failed }),
        1 => (0..64usize).prop_map(|pod| Op::Delete { pod }),
        2 => (1..90u64).prop_map(|secs| Op::Advance { secs }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_histories_converge_on_what_running_pods_need_and_never_remove_what_is_not_ours(
        foreign in prop::collection::vec(prop::collection::vec(0..FOREIGN.len(), 0..3), 4),
        steps in prop::collection::vec((op(), any::<u8>()), 1..48),
    ) {
        let mut world = World::new(&foreign);
        for (op, failures) in &steps {
            world.apply_op(op);
            world.reconcile(*failures)?;
        }
        world.check_converged()?;
    }
}
