//! Queue semantics, checked without a log or a clock: every call names its instant.

use bytes::Bytes;
use sluice_client::{ErrorCode, MessageState};

use super::config::{ConfigUpdate, DeadLetterConfig};
use super::ids::{MsgLoc, Receipt};
use super::message::NewMessage;
use super::state::SendOutcome;
use super::*;

const S: u64 = 1000;

fn msg(body: &str) -> NewMessage {
    NewMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        text: true,
        visible_at_ms: None,
        priority: 8,
        group: None,
        dedup: None,
        key: None,
        tag: None,
        attributes: vec![],
    }
}

struct Fixture {
    queues: Queues,
    index: u64,
}

impl Fixture {
    fn new() -> Self {
        Self {
            queues: Queues::default(),
            index: 0,
        }
    }

    fn queue(&mut self, name: &str, update: ConfigUpdate) {
        assert!(self.queues.put(0, name, &update).expect("create"));
    }

    /// Sends in one entry; returns each message's place.
    fn send(&mut self, now: u64, name: &str, msgs: Vec<NewMessage>) -> Vec<MsgLoc> {
        self.index += 1;
        self.queues
            .send(now, name, self.index, 0, &msgs, None)
            .expect("queue exists")
            .into_iter()
            .map(|r| match r.expect("accepted") {
                SendOutcome::Stored(loc) | SendOutcome::Duplicate(loc) => loc,
            })
            .collect()
    }

    fn receive(&mut self, now: u64, name: &str, max: usize, vis_s: u64) -> Vec<Delivery> {
        self.queues
            .receive(now, name, max, vis_s * S)
            .expect("receive")
    }

    fn counts(&self, name: &str) -> state::Counts {
        self.queues.get(name).expect("queue").counts()
    }
}

#[test]
fn a_dead_letter_queue_admits_only_the_sources_it_allows() {
    let mut f = Fixture::new();
    f.queue(
        "dlq",
        ConfigUpdate {
            redrive_allow: Some(Some(vec!["orders".into()])),
            ..Default::default()
        },
    );
    let to_dlq = ConfigUpdate {
        dead_letter: Some(Some(DeadLetterConfig {
            queue: "dlq".into(),
            max_receives: 3,
        })),
        ..Default::default()
    };
    f.queue("orders", to_dlq.clone());
    let refused = f.queues.put(0, "refunds", &to_dlq).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidAttribute);
    assert!(
        refused.message.contains("does not allow refunds"),
        "{}",
        refused.message
    );
    assert!(
        f.queues.get("refunds").is_err(),
        "a refused create makes nothing"
    );
    // Allowing any queue again (null) lets it in.
    f.queues
        .put(
            0,
            "dlq",
            &ConfigUpdate {
                redrive_allow: Some(None),
                ..Default::default()
            },
        )
        .expect("allow all");
    f.queue("refunds", to_dlq);
}

#[test]
fn tags_are_set_and_removed_all_or_nothing() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    let set: std::collections::BTreeMap<String, String> = [("a", "1"), ("b", "2")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    f.queues.tag("q", &set, &[]).expect("tagged");
    f.queues
        .tag("q", &Default::default(), &["a".to_string()])
        .expect("untagged");
    let tags = &f.queues.get("q").expect("q").tags;
    assert_eq!(tags.keys().collect::<Vec<_>>(), vec!["b"]);
    // Past the limit nothing changes.
    let many = (0..crate::queue::TAGS_MAX)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    let err = f.queues.tag("q", &many, &[]).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidAttribute);
    assert_eq!(f.queues.get("q").expect("q").tags.len(), 1);
}

#[test]
fn totals_count_what_was_sent_received_and_acknowledged() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a"), msg("b"), msg("c")]);
    let got = f.receive(0, "q", 2, 30);
    let acked = f.queues.ack(1, "q", &[got[0].receipt]).expect("q");
    assert!(acked[0].is_ok());
    // Acknowledging the same receipt again changes nothing.
    f.queues.ack(2, "q", &[got[0].receipt]).expect("q");
    let totals = f.queues.get("q").expect("q").totals;
    assert_eq!((totals.sent, totals.received, totals.acked), (3, 2, 1));
}

#[test]
fn receive_hides_ack_deletes_and_order_is_send_order() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    let locs = f.send(0, "q", vec![msg("a"), msg("b"), msg("c")]);
    let got = f.receive(1, "q", 2, 30);
    assert_eq!(got.iter().map(|d| d.loc).collect::<Vec<_>>(), locs[..2]);
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(f.counts("q").in_flight, 2);
    assert_eq!(f.counts("q").visible, 1);
    let acks = f
        .queues
        .ack(2, "q", &[got[0].receipt, got[1].receipt])
        .expect("queue");
    assert!(acks.iter().all(Result::is_ok));
    assert_eq!(f.queues.get("q").expect("q").len(), 1);
    // Acknowledging again is harmless.
    assert!(f.queues.ack(3, "q", &[got[0].receipt]).expect("q")[0].is_ok());
    let rest = f.receive(4, "q", 10, 30);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].loc, locs[2]);
}

#[test]
fn a_lapsed_visibility_timeout_redelivers_and_stales_the_old_receipt() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a")]);
    let first = f.receive(0, "q", 1, 10);
    assert!(
        f.receive(9 * S, "q", 1, 10).is_empty(),
        "hidden until the deadline"
    );
    let second = f.receive(10 * S, "q", 1, 10);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    let err = f.queues.ack(11 * S, "q", &[first[0].receipt]).expect("q")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ReceiptStale);
    assert!(f.queues.ack(11 * S, "q", &[second[0].receipt]).expect("q")[0].is_ok());
    assert!(f.queues.get("q").expect("q").is_empty());
}

#[test]
fn an_ack_after_the_deadline_still_works_until_someone_receives_again() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a")]);
    let d = f.receive(0, "q", 1, 1);
    f.queues.tick(5 * S);
    assert_eq!(f.counts("q").visible, 1);
    assert!(f.queues.ack(5 * S, "q", &[d[0].receipt]).expect("q")[0].is_ok());
    assert!(f.queues.get("q").expect("q").is_empty());
}

#[test]
fn visibility_change_gives_a_new_receipt_and_zero_shows_at_once() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a")]);
    let d = f.receive(0, "q", 1, 30);
    let r2 = f
        .queues
        .change_visibility(1, "q", &[(d[0].receipt, 60 * S)], false)
        .expect("q")[0]
        .clone()
        .expect("changed");
    assert_ne!(r2, d[0].receipt);
    // The old receipt is stale now.
    let err = f.queues.ack(2, "q", &[d[0].receipt]).expect("q")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ReceiptStale);
    assert!(
        f.receive(40 * S, "q", 1, 30).is_empty(),
        "extended past 30 s"
    );
    let r3 = f
        .queues
        .change_visibility(41 * S, "q", &[(r2, 0)], false)
        .expect("q")[0]
        .clone()
        .expect("changed");
    let again = f.receive(41 * S, "q", 1, 30);
    assert_eq!(again.len(), 1);
    // r3 went stale with the new delivery.
    let err = f
        .queues
        .change_visibility(42 * S, "q", &[(r3, 5)], false)
        .expect("q")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ReceiptStale);
}

#[test]
fn a_visibility_change_that_keeps_the_receipt_leaves_it_valid() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a")]);
    let d = f.receive(0, "q", 1, 30);
    let kept = f
        .queues
        .change_visibility(S, "q", &[(d[0].receipt, 60 * S)], true)
        .expect("q")[0]
        .clone()
        .expect("changed");
    assert_eq!(kept, d[0].receipt, "the same receipt comes back");
    assert!(f.receive(40 * S, "q", 1, 30).is_empty(), "extended to 61 s");
    let acked = f.queues.ack(50 * S, "q", &[d[0].receipt]).expect("q");
    assert!(
        acked[0].is_ok(),
        "the received receipt still acks: {acked:?}"
    );
    assert_eq!(f.counts("q").in_flight, 0);
}

#[test]
fn visibility_change_of_a_lapsed_message_is_refused() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a")]);
    let d = f.receive(0, "q", 1, 1);
    let err = f
        .queues
        .change_visibility(2 * S, "q", &[(d[0].receipt, 10)], false)
        .expect("q")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::MessageNotInFlight);
}

#[test]
fn receipts_of_another_queue_are_invalid() {
    let mut f = Fixture::new();
    f.queue("a", ConfigUpdate::default());
    f.queue("b", ConfigUpdate::default());
    f.send(0, "a", vec![msg("x")]);
    let d = f.receive(0, "a", 1, 30);
    let err = f.queues.ack(1, "b", &[d[0].receipt]).expect("b")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidReceipt);
    // A queue deleted and created again does not take the old receipts.
    f.queues.delete("a").expect("delete");
    f.queue("a", ConfigUpdate::default());
    let err = f.queues.ack(1, "a", &[d[0].receipt]).expect("a")[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidReceipt);
}

#[test]
fn higher_priority_first_then_age() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    let mut low = msg("low");
    low.priority = 16;
    let mut high = msg("high");
    high.priority = 1;
    let mut mid = msg("mid");
    mid.priority = 8;
    let locs = f.send(0, "q", vec![low.clone(), mid.clone(), high.clone(), high]);
    let got: Vec<MsgLoc> = f.receive(1, "q", 4, 30).iter().map(|d| d.loc).collect();
    assert_eq!(got, vec![locs[2], locs[3], locs[1], locs[0]]);
}

#[test]
fn priority_holds_for_redelivered_messages_too() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    let mut high = msg("high");
    high.priority = 1;
    let locs = f.send(0, "q", vec![high]);
    f.receive(0, "q", 1, 1);
    let mut low = msg("low");
    low.priority = 9;
    f.send(S, "q", vec![low]);
    let got = f.receive(5 * S, "q", 2, 30);
    assert_eq!(
        got[0].loc, locs[0],
        "the redelivered high-priority message first"
    );
    assert_eq!(got.len(), 2);
}

#[test]
fn delays_per_queue_and_per_message_and_deliver_at() {
    let mut f = Fixture::new();
    f.queue(
        "q",
        ConfigUpdate {
            delay_seconds: Some(10),
            ..Default::default()
        },
    );
    let mut own = msg("own delay");
    own.visible_at_ms = Some(3 * S);
    let locs = f.send(0, "q", vec![msg("queue delay"), own]);
    assert_eq!(f.counts("q").delayed, 2);
    assert!(f.receive(2 * S, "q", 10, 30).is_empty());
    assert_eq!(f.receive(3 * S, "q", 10, 30)[0].loc, locs[1]);
    assert!(f.receive(9 * S, "q", 10, 30).is_empty());
    assert_eq!(f.receive(10 * S, "q", 10, 30)[0].loc, locs[0]);
    let q = f.queues.get("q").expect("q");
    assert!(q.next_due().is_some());
}

#[test]
fn retention_drops_old_messages_in_every_stage() {
    let mut f = Fixture::new();
    f.queue(
        "q",
        ConfigUpdate {
            retention_seconds: Some(60),
            ..Default::default()
        },
    );
    f.send(0, "q", vec![msg("old-visible"), msg("old-in-flight")]);
    f.receive(0, "q", 1, 3600);
    f.send(30 * S, "q", vec![msg("young")]);
    // Send times are kept to the second: expiry comes within a second after retention.
    assert_eq!(f.queues.get("q").expect("q").next_due(), Some(60 * S + 999));
    f.queues.tick(59 * S);
    assert_eq!(
        f.queues.get("q").expect("q").len(),
        3,
        "not before retention"
    );
    f.queues.tick(61 * S);
    let q = f.queues.get("q").expect("q");
    assert_eq!(q.len(), 1);
    assert_eq!(q.counts().in_flight, 0);
    f.queues.tick(91 * S);
    assert!(f.queues.get("q").expect("q").is_empty());
}

fn fifo(f: &mut Fixture, name: &str, content_dedup: bool) {
    f.queue(
        name,
        ConfigUpdate {
            fifo: Some(true),
            content_dedup: Some(content_dedup),
            ..Default::default()
        },
    );
}

fn in_group(body: &str, group: &str) -> NewMessage {
    NewMessage {
        group: Some(group.into()),
        ..msg(body)
    }
}

#[test]
fn fifo_keeps_group_order_with_one_in_flight_per_group() {
    let mut f = Fixture::new();
    fifo(&mut f, "f", false);
    let locs = f.send(
        0,
        "f",
        vec![
            in_group("a1", "a"),
            in_group("b1", "b"),
            in_group("a2", "a"),
            in_group("b2", "b"),
        ],
    );
    let first: Vec<MsgLoc> = f.receive(1, "f", 10, 30).iter().map(|d| d.loc).collect();
    assert_eq!(first, vec![locs[0], locs[1]], "one per group");
    assert!(
        f.receive(2, "f", 10, 30).is_empty(),
        "both groups are locked"
    );
    let d = f.receive(31 * S, "f", 10, 30);
    assert_eq!(d.len(), 2, "lapsed: the same fronts again");
    assert_eq!(d[0].loc, locs[0]);
    assert_eq!(d[0].receive_count, 2);
    assert!(f.queues.ack(32 * S, "f", &[d[0].receipt]).expect("f")[0].is_ok());
    let next = f.receive(33 * S, "f", 10, 30);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].loc, locs[2], "a2 after a1 was acknowledged");
}

#[test]
fn fifo_dedup_returns_the_first_id_within_the_window_only() {
    let mut f = Fixture::new();
    fifo(&mut f, "f", false);
    let mut m = in_group("x", "g");
    m.dedup = Some("d1".into());
    let first = f.send(0, "f", vec![m.clone()])[0];
    f.index += 1;
    let again = f
        .queues
        .send(299 * S, "f", f.index, 0, &[m.clone()], None)
        .expect("f");
    assert_eq!(again[0], Ok(SendOutcome::Duplicate(first)));
    assert_eq!(f.queues.get("f").expect("f").len(), 1, "nothing stored");
    f.index += 1;
    let later = f
        .queues
        .send(301 * S, "f", f.index, 0, &[m], None)
        .expect("f");
    assert!(matches!(later[0], Ok(SendOutcome::Stored(_))));
    assert_eq!(f.queues.get("f").expect("f").len(), 2);
}

#[test]
fn content_dedup_uses_the_body_hash() {
    let mut f = Fixture::new();
    fifo(&mut f, "f", true);
    let a = f.send(0, "f", vec![in_group("same", "g")])[0];
    f.index += 1;
    let out = f
        .queues
        .send(
            1,
            "f",
            f.index,
            0,
            &[in_group("same", "h"), in_group("other", "g")],
            None,
        )
        .expect("f");
    assert_eq!(out[0], Ok(SendOutcome::Duplicate(a)));
    assert!(matches!(out[1], Ok(SendOutcome::Stored(_))));
}

#[test]
fn fifo_refuses_a_message_without_group_or_with_its_own_delay() {
    let mut f = Fixture::new();
    fifo(&mut f, "f", false);
    f.index += 1;
    let mut delayed = in_group("x", "g");
    delayed.visible_at_ms = Some(10 * S);
    let out = f
        .queues
        .send(0, "f", f.index, 0, &[msg("no group"), delayed], None)
        .expect("f");
    assert_eq!(out[0].clone().unwrap_err().code, ErrorCode::InvalidMessage);
    assert_eq!(out[1].clone().unwrap_err().code, ErrorCode::InvalidMessage);
    assert!(f.queues.get("f").expect("f").is_empty());
}

#[test]
fn too_large_messages_are_refused_and_nothing_is_stored() {
    let mut f = Fixture::new();
    f.queue(
        "q",
        ConfigUpdate {
            max_message_bytes: Some(1024),
            ..Default::default()
        },
    );
    f.index += 1;
    let out = f
        .queues
        .send(
            0,
            "q",
            f.index,
            0,
            &[msg(&"x".repeat(1025)), msg("ok")],
            None,
        )
        .expect("q");
    assert_eq!(out[0].clone().unwrap_err().code, ErrorCode::MessageTooLarge);
    assert!(out[1].is_ok());
    assert_eq!(f.queues.get("q").expect("q").len(), 1);
}

fn with_dead_letter(f: &mut Fixture, fifo_queues: bool) {
    let fifo_flag = Some(fifo_queues);
    f.queue(
        "dlq",
        ConfigUpdate {
            fifo: fifo_flag,
            ..Default::default()
        },
    );
    f.queue(
        "src",
        ConfigUpdate {
            fifo: fifo_flag,
            dead_letter: Some(Some(DeadLetterConfig {
                queue: "dlq".into(),
                max_receives: 2,
            })),
            ..Default::default()
        },
    );
}

#[test]
fn dead_letter_after_max_receives_remembers_the_source_and_redrives_back() {
    let mut f = Fixture::new();
    with_dead_letter(&mut f, false);
    let loc = f.send(0, "src", vec![msg("poison")])[0];
    assert_eq!(f.receive(0, "src", 1, 1).len(), 1);
    assert_eq!(f.receive(2 * S, "src", 1, 1).len(), 1);
    assert!(
        f.receive(4 * S, "src", 1, 1).is_empty(),
        "third receive moves it"
    );
    assert!(f.queues.get("src").expect("src").is_empty());
    let dlq = f.queues.get("dlq").expect("dlq");
    assert_eq!(dlq.dead_letter_count(), 1);
    let peeked = dlq.look(loc, 4 * S).expect("in the DLQ");
    let src_id = f.queues.get("src").expect("src").id;
    assert_eq!(peeked.origin, Some(src_id));
    assert_eq!(f.queues.name_of(src_id), Some("src"));

    let task = f.queues.start_redrive(5 * S, "dlq", None).expect("start");
    assert_eq!(task.total, 1);
    let err = f.queues.start_redrive(5 * S, "dlq", None).unwrap_err();
    assert_eq!(err.code, ErrorCode::RedriveConflict);
    let step = f
        .queues
        .redrive_step(6 * S, "dlq", task.id, 100)
        .expect("step");
    assert_eq!(step.moved, 1);
    assert_eq!(step.state, redrive::TaskState::Completed);
    assert!(f.queues.get("dlq").expect("dlq").is_empty());
    let back = f.receive(7 * S, "src", 1, 30);
    assert_eq!(back[0].loc, loc);
    assert_eq!(back[0].receive_count, 1, "a fresh count after the redrive");
}

#[test]
fn redrive_of_a_message_whose_source_is_gone_counts_it_failed_and_keeps_it() {
    let mut f = Fixture::new();
    with_dead_letter(&mut f, true);
    f.send(0, "src", vec![in_group("poison", "g")]);
    f.receive(0, "src", 1, 1);
    f.receive(2 * S, "src", 1, 1);
    f.receive(4 * S, "src", 1, 1);
    assert_eq!(f.queues.get("dlq").expect("dlq").len(), 1);
    f.queues.delete("src").expect("delete");
    let task = f
        .queues
        .start_redrive(5 * S, "dlq", Some(10))
        .expect("start");
    let step = f
        .queues
        .redrive_step(6 * S, "dlq", task.id, 10)
        .expect("step");
    assert_eq!((step.moved, step.failed), (0, 1));
    assert_eq!(f.queues.get("dlq").expect("dlq").len(), 1, "kept");
}

#[test]
fn a_dead_letter_target_must_exist_and_match_the_queue_type() {
    let mut f = Fixture::new();
    let update = |queue: &str| ConfigUpdate {
        dead_letter: Some(Some(DeadLetterConfig {
            queue: queue.into(),
            max_receives: 3,
        })),
        ..Default::default()
    };
    let err = f.queues.put(0, "q", &update("missing")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidAttribute);
    assert!(f.queues.get("q").is_err(), "nothing created");
    fifo(&mut f, "f", false);
    let err = f.queues.put(0, "q", &update("f")).unwrap_err();
    assert!(err.message.contains("standard"));
    let err = f.queues.put(0, "q", &update("q")).unwrap_err();
    assert!(err.message.contains("itself"));
}

#[test]
fn list_pages_by_prefix() {
    let mut f = Fixture::new();
    for name in ["a1", "a2", "a3", "b1"] {
        f.queue(name, ConfigUpdate::default());
    }
    let (page, more) = f.queues.list("a", None, 2);
    assert_eq!(
        page.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    assert!(more);
    let (page, more) = f.queues.list("a", Some("a2"), 2);
    assert_eq!(
        page.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        ["a3"]
    );
    assert!(!more);
    let (page, _) = f.queues.list("", None, 10);
    assert_eq!(page.len(), 4);
}

#[test]
fn purge_empties_and_keeps_the_queue() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    f.send(0, "q", vec![msg("a"), msg("b")]);
    f.receive(0, "q", 1, 30);
    assert_eq!(f.queues.purge("q").expect("q"), 2);
    assert!(f.queues.get("q").expect("q").is_empty());
    assert!(f.receive(60 * S, "q", 10, 30).is_empty());
}

#[test]
fn peek_and_look_change_nothing() {
    let mut f = Fixture::new();
    f.queue("q", ConfigUpdate::default());
    let locs = f.send(0, "q", vec![msg("a"), msg("b")]);
    let before = f.queues.clone();
    let peeked = f.queues.get("q").expect("q").peek(1, 10);
    assert_eq!(peeked.iter().map(|p| p.loc).collect::<Vec<_>>(), locs);
    assert_eq!(f.queues, before);
    let d = f.receive(1, "q", 1, 30);
    let looked = f
        .queues
        .get("q")
        .expect("q")
        .look(d[0].loc, 2)
        .expect("present");
    assert_eq!(looked.state, MessageState::InFlight);
    assert_eq!(looked.visible_at_ms, Some(1 + 30 * S));
    assert!(
        f.queues
            .get("q")
            .expect("q")
            .look(MsgLoc::new(99, 0), 2)
            .is_none()
    );
}

#[test]
fn state_survives_a_snapshot_round_trip() {
    let mut f = Fixture::new();
    with_dead_letter(&mut f, false);
    fifo(&mut f, "f", true);
    f.send(0, "src", vec![msg("a"), msg("b")]);
    f.send(0, "f", vec![in_group("x", "g")]);
    f.receive(1, "src", 1, 30);
    let bytes = postcard::to_allocvec(&f.queues).expect("encode");
    let back: Queues = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, f.queues);
}

#[test]
fn a_retried_send_with_its_idempotency_key_answers_the_same_and_stores_nothing() {
    let mut f = Fixture::new();
    f.queue(
        "q",
        ConfigUpdate {
            max_message_bytes: Some(1024),
            ..Default::default()
        },
    );
    let batch = [msg("a"), msg(&"x".repeat(2000)), msg("c")];
    let key = Some(7u128);
    f.index += 1;
    let first = f.queues.send(0, "q", f.index, 0, &batch, key).expect("q");
    assert!(first[0].is_ok() && first[1].is_err() && first[2].is_ok());
    f.index += 1;
    let retry = f
        .queues
        .send(1000, "q", f.index, 0, &batch, key)
        .expect("q");
    assert_eq!(retry[0], first[0]);
    assert_eq!(retry[2], first[2]);
    assert_eq!(
        retry[1].clone().unwrap_err().code,
        ErrorCode::MessageTooLarge
    );
    assert_eq!(f.queues.get("q").expect("q").len(), 2, "stored once");
    // Another key, or the same after the window, stores again.
    f.index += 1;
    f.queues
        .send(2000, "q", f.index, 0, &[msg("d")], Some(8))
        .expect("q");
    f.index += 1;
    f.queues
        .send(
            super::idempotency::WINDOW_MS + 1,
            "q",
            f.index,
            0,
            &batch,
            key,
        )
        .expect("q");
    assert_eq!(f.queues.get("q").expect("q").len(), 5);
}

#[test]
fn a_malformed_receipt_is_not_a_receipt() {
    assert!(Receipt::decode("%%%").is_none());
}
