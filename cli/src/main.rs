//! `sluice`: the command line of Sluice. Every command is a call of the broker's HTTP API
//! through sluice-client; `-o json` prints the API's own JSON for scripts.

mod args;
mod commands;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use sluice_client::{Client, Error, ErrorCode};

use args::{Cli, Command};
use commands::PartialFailure;

/// How long a failing request is retried (a cluster failing over) before giving up.
const RETRY_FOR: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "sluice", &mut script);
        return match std::io::Write::write_all(&mut std::io::stdout(), &script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1), // the reader went away (e.g. `| head`)
        };
    }
    let client = match client(&cli.url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match commands::run(&cli, &client).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, message) = explain(&e, &cli.url);
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// A client of the nodes in `--url` (comma-separated for a cluster).
fn client(url: &str) -> Result<Client, String> {
    let nodes: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let http = reqwest::Client::builder()
        .timeout(commands::TIMEOUT)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    Client::with_http(&nodes, http)
        .map(|c| c.retry_for(RETRY_FOR))
        .map_err(|e| format!("{e}; --url (or SLUICE_URL) takes http://host:port"))
}

/// Where to look next when something is not found.
fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::QueueNotFound => "`sluice queue list` shows the queues",
        ErrorCode::TopicNotFound => "`sluice topic list` shows the topics",
        ErrorCode::SubscriptionNotFound => "`sluice sub list TOPIC` shows its subscriptions",
        ErrorCode::MemberNotFound => "`sluice cluster status` shows the members",
        ErrorCode::TaskNotFound => "`sluice redrive list QUEUE` shows its tasks",
        _ => "`sluice peek QUEUE` shows waiting messages",
    }
}

/// The exit code for an error, and what to tell the person.
fn explain(e: &anyhow::Error, url: &str) -> (u8, String) {
    if let Some(partial) = e.downcast_ref::<PartialFailure>() {
        return (5, format!("some entries failed:\n{partial}"));
    }
    match e.downcast_ref::<Error>() {
        Some(Error::Api { error, .. }) => match error.code {
            ErrorCode::QueueNotFound
            | ErrorCode::TopicNotFound
            | ErrorCode::SubscriptionNotFound
            | ErrorCode::MessageNotFound
            | ErrorCode::MemberNotFound
            | ErrorCode::TaskNotFound => (3, format!("{} ({})", error.message, hint(error.code))),
            ErrorCode::Unavailable
            | ErrorCode::TooManyRequests
            | ErrorCode::InsufficientStorage => (4, format!("{} (retry later)", error.message)),
            _ => (1, error.message.clone()),
        },
        Some(Error::Transport(t)) => (
            4,
            format!(
                "cannot reach the broker at {url}: {t}. Is it running? Point --url or SLUICE_URL at it."
            ),
        ),
        _ => (1, format!("{e:#}")),
    }
}
