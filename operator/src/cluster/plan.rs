//! The next step of a cluster's life, decided from what was observed: how many pods the
//! StatefulSet should have and which one Raft membership change to make. Pure, so every
//! rule (never below a quorum, add before use, remove before shrink, one pod rolled at
//! a time) is unit-tested without a cluster.

use std::collections::BTreeMap;

use sluice_client::{Member, MemberRole};

/// Log entries a member may be behind and still count as caught up before the next pod
/// of a roll goes down.
pub const CAUGHT_UP_LAG: u64 = 1_000;

/// A broker pod as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub ordinal: i32,
    /// Running with an IP, not being deleted.
    pub running: bool,
    pub ready: bool,
    /// The StatefulSet revision the pod was made from.
    pub revision: Option<String>,
}

/// Everything a step is decided from.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `spec.replicas`.
    pub desired: i32,
    /// The StatefulSet's replicas now; `None` before it exists.
    pub statefulset_replicas: Option<i32>,
    /// The revision pods should have (the StatefulSet's `updateRevision`).
    pub update_revision: Option<String>,
    /// The StatefulSet has the pod template this reconcile applies, and its controller
    /// has seen it (so `update_revision` names that template).
    pub statefulset_settled: bool,
    pub pods: Vec<PodView>,
    /// Raft members, as a broker answered; `None` when no broker answered.
    pub members: Option<Vec<Member>>,
    /// The stable peer address of each ordinal (its pod Service).
    pub peer_addresses: BTreeMap<i32, String>,
}

/// One membership change or pod action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AddMember {
        id: u64,
        peer_address: String,
    },
    RemoveMember {
        id: u64,
    },
    /// Drain the node's leaderships, then delete its pod so it comes back on the new
    /// revision.
    Roll {
        ordinal: i32,
        id: u64,
    },
    /// Nothing to do until something changes (pods starting, a member catching up).
    Wait(String),
    /// The spec asks for something unsafe; it stays so until the spec or the cluster
    /// changes.
    Blocked(String),
    /// The cluster is as the spec says.
    Done,
}

/// What to apply this step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub statefulset_replicas: i32,
    pub action: Action,
}

/// A broker pod's node id: its ordinal plus one (as the broker derives it itself).
pub fn node_id(ordinal: i32) -> u64 {
    u64::try_from(ordinal).unwrap_or(0) + 1
}

fn ordinal_of(id: u64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX) - 1
}

pub fn plan(o: &Observed) -> Step {
    let current = o.statefulset_replicas.unwrap_or(o.desired);
    // Growing: the pods come first, then each joins Raft as it starts.
    let replicas = current.max(o.desired);
    let step = |action| Step {
        statefulset_replicas: replicas,
        action,
    };
    let Some(members) = &o.members else {
        return step(Action::Wait("no broker answered yet".into()));
    };
    let pod = |ordinal: i32| o.pods.iter().find(|p| p.ordinal == ordinal);
    let is_member = |id: u64| members.iter().any(|m| m.id == id);

    // Add every running pod that is not a member yet, lowest ordinal first.
    for ordinal in 0..replicas.min(o.desired.max(1)) {
        let id = node_id(ordinal);
        if !is_member(id) && pod(ordinal).is_some_and(|p| p.running) {
            let Some(peer_address) = o.peer_addresses.get(&ordinal) else {
                return step(Action::Wait(format!("no address for pod {ordinal} yet")));
            };
            return step(Action::AddMember {
                id,
                peer_address: peer_address.clone(),
            });
        }
    }

    // Shrinking: remove the highest member beyond the spec from Raft, then its pod.
    let beyond: Vec<u64> = members
        .iter()
        .map(|m| m.id)
        .filter(|id| ordinal_of(*id) >= o.desired)
        .collect();
    if let Some(&id) = beyond.iter().max() {
        return match removal_is_safe(o, members, id) {
            Ok(()) => step(Action::RemoveMember { id }),
            Err(why) => step(Action::Blocked(why)),
        };
    }
    if current > o.desired {
        // No member is left beyond the spec: the pods can go.
        return Step {
            statefulset_replicas: o.desired,
            action: Action::Wait("removing pods of removed members".into()),
        };
    }

    // Every wanted pod up and ready?
    let missing: Vec<i32> = (0..o.desired)
        .filter(|i| !pod(*i).is_some_and(|p| p.ready))
        .collect();
    if !missing.is_empty() {
        return step(Action::Wait(format!(
            "waiting for broker pods {missing:?} to be ready"
        )));
    }
    if let Some(m) = members
        .iter()
        .find(|m| m.role != MemberRole::Voter || m.lag.is_none_or(|l| l > CAUGHT_UP_LAG))
    {
        return step(Action::Wait(format!("node {} is catching up", m.id)));
    }

    if !o.statefulset_settled {
        return step(Action::Wait(
            "the StatefulSet controller is taking in the new pod template".into(),
        ));
    }
    // Roll pods made from an old revision, one at a time, the leader last.
    if let Some(revision) = &o.update_revision {
        let leader = members.iter().find(|m| m.leader).map(|m| m.id);
        let mut stale: Vec<&PodView> = o
            .pods
            .iter()
            .filter(|p| p.ordinal < o.desired && p.revision.as_ref() != Some(revision))
            .collect();
        stale.sort_by_key(|p| (Some(node_id(p.ordinal)) == leader, -p.ordinal));
        if let Some(p) = stale.first() {
            return step(Action::Roll {
                ordinal: p.ordinal,
                id: node_id(p.ordinal),
            });
        }
    }
    step(Action::Done)
}

/// A member may go when the voters left still have a quorum of healthy (ready) nodes.
fn removal_is_safe(o: &Observed, members: &[Member], id: u64) -> Result<(), String> {
    let voters: Vec<u64> = members
        .iter()
        .filter(|m| m.role == MemberRole::Voter && m.id != id)
        .map(|m| m.id)
        .collect();
    if voters.is_empty() {
        return Err(format!(
            "node {id} is the last voter; a cluster keeps at least one broker"
        ));
    }
    let healthy = voters
        .iter()
        .filter(|v| o.pods.iter().any(|p| node_id(p.ordinal) == **v && p.ready))
        .count();
    let quorum = voters.len() / 2 + 1;
    if healthy < quorum {
        return Err(format!(
            "removing node {id} would leave {healthy} healthy of {} voters, fewer than a quorum of {quorum}; waiting for brokers to recover",
            voters.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, role: MemberRole, leader: bool) -> Member {
        Member {
            id,
            peer_address: format!("10.96.0.{id}:7070"),
            role,
            leader,
            lag: Some(0),
        }
    }

    fn ready_pod(ordinal: i32, revision: &str) -> PodView {
        PodView {
            ordinal,
            running: true,
            ready: true,
            revision: Some(revision.into()),
        }
    }

    /// A healthy cluster of `n` voters on revision `r1`, node 1 leading.
    fn healthy(n: i32) -> Observed {
        Observed {
            desired: n,
            statefulset_replicas: Some(n),
            update_revision: Some("r1".into()),
            statefulset_settled: true,
            pods: (0..n).map(|i| ready_pod(i, "r1")).collect(),
            members: Some(
                (0..n)
                    .map(|i| member(node_id(i), MemberRole::Voter, i == 0))
                    .collect(),
            ),
            peer_addresses: (0..8)
                .map(|i| (i, format!("10.96.0.{}:7070", i + 1)))
                .collect(),
        }
    }

    #[test]
    fn a_healthy_cluster_needs_nothing() {
        assert_eq!(
            plan(&healthy(3)),
            Step {
                statefulset_replicas: 3,
                action: Action::Done
            }
        );
    }

    #[test]
    fn a_new_cluster_gets_its_pods_then_adds_each_as_it_runs() {
        let mut o = healthy(3);
        o.statefulset_replicas = None;
        o.pods = vec![ready_pod(0, "r1")];
        o.members = Some(vec![member(1, MemberRole::Voter, true)]);
        let step = plan(&o);
        assert_eq!(step.statefulset_replicas, 3);
        assert!(matches!(step.action, Action::Wait(_)), "{step:?}");
        o.pods.push(PodView {
            ordinal: 1,
            running: true,
            ready: false,
            revision: Some("r1".into()),
        });
        assert_eq!(
            plan(&o).action,
            Action::AddMember {
                id: 2,
                peer_address: "10.96.0.2:7070".into()
            }
        );
    }

    #[test]
    fn scaling_up_raises_replicas_before_any_member_is_added() {
        let mut o = healthy(3);
        o.desired = 5;
        let step = plan(&o);
        assert_eq!(step.statefulset_replicas, 5);
        assert!(matches!(step.action, Action::Wait(_)));
        o.pods.push(ready_pod(3, "r1"));
        assert_eq!(
            plan(&o).action,
            Action::AddMember {
                id: 4,
                peer_address: "10.96.0.4:7070".into()
            }
        );
    }

    #[test]
    fn scaling_down_removes_the_highest_member_before_its_pod() {
        let mut o = healthy(5);
        o.desired = 3;
        let step = plan(&o);
        assert_eq!(step.statefulset_replicas, 5, "pods stay until members go");
        assert_eq!(step.action, Action::RemoveMember { id: 5 });
        o.members.as_mut().unwrap().retain(|m| m.id != 5);
        assert_eq!(plan(&o).action, Action::RemoveMember { id: 4 });
        o.members.as_mut().unwrap().retain(|m| m.id != 4);
        assert_eq!(plan(&o).statefulset_replicas, 3);
    }

    #[test]
    fn no_member_is_removed_without_a_healthy_quorum_left() {
        let mut o = healthy(3);
        o.desired = 2;
        o.pods[1].ready = false;
        // Removing node 3 leaves voters 1 and 2, only one of them healthy.
        assert!(
            matches!(plan(&o).action, Action::Blocked(_)),
            "{:?}",
            plan(&o)
        );
        o.pods[1].ready = true;
        assert_eq!(plan(&o).action, Action::RemoveMember { id: 3 });
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let mut o = healthy(1);
        o.desired = 0;
        assert!(matches!(plan(&o).action, Action::Blocked(_)));
    }

    #[test]
    fn a_roll_takes_one_pod_at_a_time_the_leader_last() {
        let mut o = healthy(3);
        o.update_revision = Some("r2".into());
        assert_eq!(plan(&o).action, Action::Roll { ordinal: 2, id: 3 });
        o.pods[2] = ready_pod(2, "r2");
        assert_eq!(plan(&o).action, Action::Roll { ordinal: 1, id: 2 });
        o.pods[1] = ready_pod(1, "r2");
        assert_eq!(plan(&o).action, Action::Roll { ordinal: 0, id: 1 });
    }

    #[test]
    fn nothing_is_done_until_the_statefulset_has_the_new_template() {
        let mut o = healthy(3);
        o.statefulset_settled = false;
        assert!(matches!(plan(&o).action, Action::Wait(_)), "{:?}", plan(&o));
    }

    #[test]
    fn a_roll_waits_while_a_pod_is_down_or_a_member_lags() {
        let mut o = healthy(3);
        o.update_revision = Some("r2".into());
        o.pods[2].ready = false;
        assert!(matches!(plan(&o).action, Action::Wait(_)));
        o.pods[2].ready = true;
        o.members.as_mut().unwrap()[1].lag = Some(CAUGHT_UP_LAG + 1);
        assert!(matches!(plan(&o).action, Action::Wait(_)));
    }

    #[test]
    fn nothing_is_decided_while_no_broker_answers() {
        let mut o = healthy(3);
        o.members = None;
        o.desired = 1;
        let step = plan(&o);
        assert_eq!(step.statefulset_replicas, 3, "never shrink blind");
        assert!(matches!(step.action, Action::Wait(_)));
    }
}
