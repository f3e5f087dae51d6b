//! Proposes commands to Raft in batches: every command that arrives while the previous
//! entry is being handed to Raft joins the next entry. Raft's per-entry work (log ids,
//! replication, apply, answers) is then shared by all the requests of an entry, which is
//! most of what a small request cost.

use openraft::errors::ClientWriteError;
use openraft::impls::ProgressResponder;
use tokio::sync::{mpsc, oneshot};

use super::command::{Command, Request, Response};
use super::{ProposeError, Raft, now_ms};
use crate::queue::ids::SLOTS_PER_ENTRY;

/// Commands in one entry at most.
const MAX_COMMANDS: usize = 1024;
/// Approximate bytes of one entry at most (a single larger command goes alone).
const MAX_BYTES: usize = 8 << 20;
/// Commands waiting to be proposed at most; senders wait beyond it.
const QUEUE: usize = 16 * 1024;

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
    /// Starts the batching task of `raft`.
    pub fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Proposes a command and waits for the state machine's answer.
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { command, reply })
            .await
            .map_err(|_| ProposeError::Stopped("the proposer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ProposeError::Stopped("the proposal was dropped".into()))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>) {
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
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        let request = Request {
            time_ms: now_ms(),
            commands,
        };
        let (responder, done) = ProgressResponder::complete_only();
        // Submitted in arrival order; the answer is awaited apart, so the next entry can
        // be proposed meanwhile.
        if let Err(fatal) = raft.client_write_ff(request, Some(responder)).await {
            let e = fatal.to_string();
            for reply in replies {
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
                        let _ = reply.send(answer);
                    }
                }
                Ok(Err(e)) => {
                    for reply in replies {
                        let _ = reply.send(Err(write_error(&e)));
                    }
                }
                Err(_) => {
                    for reply in replies {
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
