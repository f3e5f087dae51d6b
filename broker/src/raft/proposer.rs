//! Proposes commands to Raft in batches: every command that arrives while the previous
//! entry is being handed to Raft joins the next entry. Raft's per-entry work (log ids,
//! replication, apply, answers) is then shared by all the requests of an entry, which is
//! most of what a small request cost.

use openraft::errors::ClientWriteError;
use openraft::impls::ProgressResponder;
use tokio::sync::{mpsc, oneshot};

use super::command::{Command, Request, Response};
use super::{ProposeError, Raft, now_ms};
use crate::queue::ids::MsgLoc;
use crate::queue::ids::SLOTS_PER_ENTRY;
use crate::queue::state::SendOutcome;

/// Commands in one entry at most.
const MAX_COMMANDS: usize = 1024;
/// Approximate bytes of one entry at most (a single larger command goes alone).
const MAX_BYTES: usize = 8 << 20;
/// Commands waiting to be proposed at most; senders wait beyond it.
const QUEUE: usize = 16 * 1024;
/// How long a proposal may take to commit before its caller is told the outcome is
/// unknown.
const PROPOSAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<Response, ProposeError>>,
}

/// The handle requests propose through.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the batching task of `raft`. `unsafe_early_sends` answers sends as soon as
    /// they have a place in the log, before commit: only for testing the test checker.
    pub fn start(raft: Raft, unsafe_early_sends: bool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx, unsafe_early_sends));
        Self { tx }
    }

    /// Proposes a command and waits for the state machine's answer, for at most
    /// `PROPOSAL_TIMEOUT` (a leader cut off from its followers cannot commit; the client
    /// is better told so than left waiting).
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { command, reply })
            .await
            .map_err(|_| ProposeError::Stopped("the proposer has stopped".into()))?;
        match tokio::time::timeout(PROPOSAL_TIMEOUT, answer).await {
            Ok(answer) => {
                answer.map_err(|_| ProposeError::Stopped("the proposal was dropped".into()))?
            }
            Err(_) => Err(ProposeError::Unknown(format!(
                "not committed within {PROPOSAL_TIMEOUT:?}"
            ))),
        }
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, unsafe_early_sends: bool) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut slots = first.command.slots();
        let mut bytes = first.command.weight();
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS {
            let Ok(next) = rx.try_recv() else { break };
            let (s, b) = (next.command.slots(), next.command.weight());
            if slots + s > SLOTS_PER_ENTRY || bytes + b > MAX_BYTES {
                carry = Some(next);
                break;
            }
            slots += s;
            bytes += b;
            batch.push(next);
        }
        let (commands, replies): (Vec<Command>, Vec<_>) = batch
            .into_iter()
            .map(|p| (p.command, Some(p.reply)))
            .unzip();
        let mut replies = replies;
        let early_sends: Vec<(usize, usize, usize)> = if unsafe_early_sends {
            let mut slot = 0;
            let mut out = Vec::new();
            for (i, command) in commands.iter().enumerate() {
                if let Command::Send { messages, .. } = command {
                    out.push((i, slot, messages.len()));
                }
                slot += command.slots();
            }
            out
        } else {
            Vec::new()
        };
        let request = Request {
            time_ms: now_ms(),
            commands,
        };
        let (responder, log_id, done) = if early_sends.is_empty() {
            let (responder, done) = ProgressResponder::complete_only();
            (responder, None, done)
        } else {
            let (responder, log_id, done) = ProgressResponder::new();
            (responder, Some(log_id), done)
        };
        if let Some(log_id) = log_id {
            // UNSAFE: answer the sends with their future ids now, before commit.
            let early: Vec<_> = early_sends
                .into_iter()
                .filter_map(|(i, first, n)| replies[i].take().map(|r| (r, first, n)))
                .collect();
            tokio::spawn(async move {
                if let Ok(log_id) = log_id.await {
                    let log_id: super::LogId = log_id;
                    for (reply, first, n) in early {
                        let outcomes = (0..n)
                            .map(|k| Ok(SendOutcome::Stored(MsgLoc::new(log_id.index, first + k))))
                            .collect();
                        let _ = reply.send(Ok(Response::Sent(outcomes)));
                    }
                }
            });
        }
        // Submitted in arrival order; the answer is awaited apart, so the next entry can
        // be proposed meanwhile.
        if let Err(fatal) = raft.client_write_ff(request, Some(responder)).await {
            let e = fatal.to_string();
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(ProposeError::Stopped(e.clone())));
            }
            continue;
        }
        tokio::spawn(async move {
            match done.await {
                Ok(Ok(written)) => {
                    let mut answers = written.data.0.into_iter();
                    for reply in replies {
                        let answer = answers.next().ok_or_else(|| {
                            ProposeError::Stopped("the state machine gave no answer".into())
                        });
                        if let Some(reply) = reply {
                            let _ = reply.send(answer);
                        }
                    }
                }
                Ok(Err(e)) => {
                    for reply in replies.into_iter().flatten() {
                        let _ = reply.send(Err(write_error(&e)));
                    }
                }
                Err(_) => {
                    for reply in replies.into_iter().flatten() {
                        let _ = reply.send(Err(ProposeError::Stopped(
                            "raft dropped the proposal".into(),
                        )));
                    }
                }
            }
        });
    }
}

fn write_error(e: &ClientWriteError<super::TypeConfig>) -> ProposeError {
    match e {
        ClientWriteError::ForwardToLeader(f) => ProposeError::NotLeader {
            leader: f
                .leader_id
                .zip(f.leader_node.as_ref().map(|n| n.addr.clone())),
        },
        ClientWriteError::LogEntryDiscarded(f) => ProposeError::Unknown(f.to_string()),
        other => ProposeError::Unknown(other.to_string()),
    }
}
