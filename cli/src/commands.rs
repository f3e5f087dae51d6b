//! Each command: one or a few calls through sluice-client, then the answer printed.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sluice_client::{
    AttributeCondition, Client, DeadLetter, DeliveryFormat, Endpoint, ListQueues, MessageQuery,
    PublishMessage, PullQuery, QueueAttributesUpdate, ReceiveRequest, RedriveRequest, RetryPolicy,
    RetryStrategy, SendMessage, SubscriptionFilter, SubscriptionSpec, TopicAttributesUpdate,
};

use crate::args::*;
use crate::output::{self, print};

/// Some entries of a batch failed (exit code 5); the others were done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PartialFailure(pub String);

/// Messages per request when sending many.
const SEND_BATCH: usize = 256;

pub async fn run(cli: &Cli, client: &Client) -> Result<()> {
    let out = cli.output;
    match &cli.command {
        Command::Queue(c) => queue(out, client, c).await,
        Command::Send(a) => send(out, client, a).await,
        Command::Receive(a) => receive(out, client, a).await,
        Command::Ack { queue, receipts } => {
            let results = client.ack(queue, receipts).await?;
            let failed: Vec<String> = receipts
                .iter()
                .zip(&results)
                .filter_map(|(r, res)| res.as_ref().err().map(|e| format!("{r}: {e}")))
                .collect();
            let acked = results.len() - failed.len();
            print(out, &serde_json::json!({"acked": acked}), |_| {
                output::pairs(&[("acknowledged", acked.to_string())])
            });
            if !failed.is_empty() {
                return Err(PartialFailure(failed.join("\n")).into());
            }
            Ok(())
        }
        Command::Peek { queue, max } => {
            let messages = client.peek(queue, *max).await?;
            print(out, &messages, |m| output::messages(m));
            Ok(())
        }
        Command::Message { queue, id } => {
            let message = client.get_message(queue, id).await?;
            print(out, &message, |m| output::messages(std::slice::from_ref(m)));
            Ok(())
        }
        Command::Query(a) => {
            let query = MessageQuery {
                key: a.key.clone(),
                since: a.since,
                until: a.until,
                limit: a.limit,
            };
            let messages = client.query_messages(&a.queue, &query).await?;
            print(out, &messages, |m| output::messages(m));
            Ok(())
        }
        Command::Drain { queue, quiet } => drain(out, client, queue, *quiet).await,
        Command::Redrive(c) => redrive(out, client, c).await,
        Command::Topic(c) => topic(out, client, c).await,
        Command::Publish(a) => publish(out, client, a).await,
        Command::Subscription(c) => subscription(out, client, c).await,
        Command::Pull(a) => pull(out, client, a).await,
        Command::Cluster(c) => cluster(out, client, c).await,
        Command::Check { queue, timeout } => {
            check(out, client, queue, Duration::from_secs(*timeout)).await
        }
        Command::Completions { .. } => Ok(()), // answered before a client is made
    }
}

fn attributes_update(a: &QueueAttributeArgs) -> QueueAttributesUpdate {
    QueueAttributesUpdate {
        visibility_seconds: a.visibility,
        delay_seconds: a.delay,
        retention_seconds: a.retention,
        max_message_bytes: a.max_bytes,
        receive_wait_seconds: a.wait,
        content_dedup: a.content_dedup,
        dead_letter: if a.no_dead_letter {
            Some(None)
        } else {
            a.dead_letter.as_ref().map(|queue| {
                Some(DeadLetter {
                    queue: queue.clone(),
                    max_receives: a.max_receives.unwrap_or(1),
                })
            })
        },
        partitions: a.partitions,
        ..QueueAttributesUpdate::default()
    }
}

async fn queue(out: Format, client: &Client, command: &QueueCommand) -> Result<()> {
    match command {
        QueueCommand::Create {
            name,
            fifo,
            attributes,
        } => {
            let mut update = attributes_update(attributes);
            update.fifo = fifo.then_some(true);
            let q = client.put_queue(name, &update).await?;
            print(out, &q, output::queue);
        }
        QueueCommand::Set { name, attributes } => {
            client.get_queue(name).await?; // set never creates
            let q = client
                .put_queue(name, &attributes_update(attributes))
                .await?;
            print(out, &q, output::queue);
        }
        QueueCommand::List { prefix, limit } => {
            let page = client
                .list_queues(&ListQueues {
                    prefix: prefix.clone(),
                    limit: Some(*limit),
                    after: None,
                })
                .await?;
            print(out, &page.queues, |q| output::queues(q));
        }
        QueueCommand::Get { name } => {
            let q = client.get_queue(name).await?;
            print(out, &q, output::queue);
        }
        QueueCommand::Delete { name } => {
            client.delete_queue(name).await?;
            print(out, &serde_json::json!({"deleted": name}), |_| {
                output::pairs(&[("deleted", name.clone())])
            });
        }
        QueueCommand::Purge { name } => {
            let purged = client.purge_queue(name).await?;
            print(out, &purged, |p| {
                output::pairs(&[("purged", p.purged.to_string())])
            });
        }
    }
    Ok(())
}

/// The body from the argument, the file, or standard input.
fn read_body(body: &Option<String>, file: &Option<std::path::PathBuf>) -> Result<String> {
    if let Some(body) = body {
        return Ok(body.clone());
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading the body from {}", path.display()));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the body from standard input (give it as an argument or --file)")?;
    Ok(text)
}

fn attribute_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

async fn send(out: Format, client: &Client, a: &SendArgs) -> Result<()> {
    let template = SendMessage {
        delay_seconds: a.delay,
        priority: a.priority,
        group_id: a.group.clone(),
        dedup_id: a.dedup_id.clone(),
        key: a.key.clone(),
        attributes: attribute_map(&a.attributes),
        ..SendMessage::default()
    };
    if !a.lines {
        let message = SendMessage {
            body: Some(read_body(&a.body, &a.file)?),
            ..template
        };
        let sent = client.send(&a.queue, &message).await?;
        print(out, &sent, |s| output::pairs(&[("id", s.id.clone())]));
        return Ok(());
    }
    // Many messages: one per line, in batches, with a progress bar on standard error.
    let lines: Vec<String> = match &a.file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading standard input")?,
    };
    let bar = progress(lines.len() as u64, "sending");
    let (mut sent, mut failed) = (0usize, Vec::new());
    for chunk in lines.chunks(SEND_BATCH) {
        let batch: Vec<SendMessage> = chunk
            .iter()
            .map(|line| SendMessage {
                body: Some(line.clone()),
                ..template.clone()
            })
            .collect();
        for result in client.send_batch(&a.queue, &batch).await? {
            match result {
                Ok(_) => sent += 1,
                Err(e) => failed.push(e.to_string()),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    print(
        out,
        &serde_json::json!({"sent": sent, "failed": failed.len()}),
        |_| {
            output::pairs(&[
                ("sent", sent.to_string()),
                ("failed", failed.len().to_string()),
            ])
        },
    );
    if !failed.is_empty() {
        return Err(PartialFailure(failed.join("\n")).into());
    }
    Ok(())
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

async fn receive(out: Format, client: &Client, a: &ReceiveArgs) -> Result<()> {
    let messages = client
        .receive(
            &a.queue,
            &ReceiveRequest {
                max: Some(a.max),
                wait_seconds: a.wait,
                visibility_seconds: a.visibility,
            },
        )
        .await?;
    if a.ack && !messages.is_empty() {
        let receipts: Vec<String> = messages.iter().filter_map(|m| m.receipt.clone()).collect();
        let failed: Vec<String> = client
            .ack(&a.queue, &receipts)
            .await?
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        print(out, &messages, |m| output::messages(m));
        if !failed.is_empty() {
            return Err(PartialFailure(failed.join("\n")).into());
        }
        return Ok(());
    }
    print(out, &messages, |m| output::messages(m));
    Ok(())
}

/// Sends a unique message and receives it back; acknowledges what it receives of its own.
async fn check(out: Format, client: &Client, queue: &str, timeout: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    if let Err(e) = client.get_queue(queue).await {
        if e.code() != Some(sluice_client::ErrorCode::QueueNotFound) {
            return Err(e.into());
        }
        client
            .put_queue(queue, &QueueAttributesUpdate::default())
            .await?;
    }
    let body = format!("sluice check {}", sluice_client::random_token());
    let sent = client.send(queue, &SendMessage::text(body.clone())).await?;
    while started.elapsed() < timeout {
        let messages = client
            .receive(
                queue,
                &ReceiveRequest {
                    max: Some(32),
                    wait_seconds: Some(1),
                    visibility_seconds: None,
                },
            )
            .await?;
        // Earlier checks' leftovers are acknowledged too; another client's are not.
        let ours: Vec<String> = messages
            .iter()
            .filter(|m| {
                m.body
                    .as_deref()
                    .is_some_and(|b| b.starts_with("sluice check "))
            })
            .filter_map(|m| m.receipt.clone())
            .collect();
        if !ours.is_empty() {
            client.ack(queue, &ours).await?;
        }
        if messages.iter().any(|m| m.id == sent.id) {
            let millis = started.elapsed().as_millis();
            match out {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"ok": true, "queue": queue, "id": sent.id, "millis": millis})
                ),
                Format::Table => {
                    println!("ok: {queue} sent, received and acknowledged in {millis} ms")
                }
            }
            return Ok(());
        }
    }
    bail!(
        "message {} sent to {queue} did not come back within {} s",
        sent.id,
        timeout.as_secs()
    )
}

async fn drain(out: Format, client: &Client, queue: &str, quiet: bool) -> Result<()> {
    let total = client.get_queue(queue).await?.counts.visible;
    let bar = progress(total, "draining");
    let mut drained = 0u64;
    loop {
        let messages = client
            .receive(
                queue,
                &ReceiveRequest {
                    max: Some(32),
                    wait_seconds: Some(0),
                    visibility_seconds: None,
                },
            )
            .await?;
        if messages.is_empty() {
            break;
        }
        let receipts: Vec<String> = messages.iter().filter_map(|m| m.receipt.clone()).collect();
        let results = client.ack(queue, &receipts).await?;
        for (m, r) in messages.iter().zip(results) {
            if r.is_err() {
                continue; // received again elsewhere: not ours to count
            }
            drained += 1;
            if !quiet {
                bar.suspend(|| match out {
                    Format::Json => println!(
                        "{}",
                        serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
                    ),
                    Format::Table => println!(
                        "{}",
                        m.body.clone().or(m.body_base64.clone()).unwrap_or_default()
                    ),
                });
            }
        }
        bar.set_position(drained.min(bar.length().unwrap_or(drained)));
    }
    bar.finish_and_clear();
    eprintln!("drained {drained} messages from {queue}");
    Ok(())
}

async fn redrive(out: Format, client: &Client, command: &RedriveCommand) -> Result<()> {
    let tasks = match command {
        RedriveCommand::Start {
            queue,
            max_per_second,
        } => vec![
            client
                .start_redrive(
                    queue,
                    &RedriveRequest {
                        max_per_second: *max_per_second,
                    },
                )
                .await?,
        ],
        RedriveCommand::List { queue } => client.list_redrives(queue).await?,
        RedriveCommand::Cancel { queue } => vec![client.cancel_redrive(queue).await?],
    };
    print(out, &tasks, |t| output::redrives(t));
    Ok(())
}

async fn topic(out: Format, client: &Client, command: &TopicCommand) -> Result<()> {
    match command {
        TopicCommand::Create {
            name,
            retention,
            max_bytes,
            partitions,
        } => {
            let topic = client
                .put_topic(
                    name,
                    &TopicAttributesUpdate {
                        retention_seconds: *retention,
                        max_message_bytes: *max_bytes,
                        partitions: *partitions,
                    },
                )
                .await?;
            print(out, &topic, |t| output::topics(std::slice::from_ref(t)));
        }
        TopicCommand::List { prefix, limit } => {
            let page = client
                .list_topics(&ListQueues {
                    prefix: prefix.clone(),
                    limit: Some(*limit),
                    after: None,
                })
                .await?;
            print(out, &page.topics, |t| output::topics(t));
        }
        TopicCommand::Get { name } => {
            let topic = client.get_topic(name).await?;
            print(out, &topic, |t| output::topics(std::slice::from_ref(t)));
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(name).await?;
            print(out, &serde_json::json!({"deleted": name}), |_| {
                output::pairs(&[("deleted", name.clone())])
            });
        }
    }
    Ok(())
}

async fn publish(out: Format, client: &Client, a: &PublishArgs) -> Result<()> {
    let message = PublishMessage {
        body: Some(read_body(&a.body, &a.file)?),
        tag: a.tag.clone(),
        key: a.key.clone(),
        attributes: attribute_map(&a.attributes),
        ..PublishMessage::default()
    };
    let sent = client.publish(&a.topic, &message).await?;
    print(out, &sent, |s| output::pairs(&[("id", s.id.clone())]));
    Ok(())
}

async fn subscription(out: Format, client: &Client, command: &SubscriptionCommand) -> Result<()> {
    match command {
        SubscriptionCommand::Create(a) => {
            let endpoint = match (&a.queue, &a.http, &a.email, a.pull, a.websocket) {
                (Some(q), ..) => Endpoint::Queue(q.clone()),
                (_, Some(url), ..) => Endpoint::Http { url: url.clone() },
                (_, _, Some(to), ..) => Endpoint::Email { to: to.clone() },
                (_, _, _, true, _) => Endpoint::Pull {},
                (_, _, _, _, true) => Endpoint::Websocket {},
                _ => bail!("give one endpoint: --queue, --http, --email, --pull or --websocket"),
            };
            let mut spec = SubscriptionSpec::new(endpoint);
            if !a.tags.is_empty() || !a.attributes.is_empty() {
                spec.filter = Some(SubscriptionFilter {
                    tags: a.tags.clone(),
                    attributes: a
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), vec![AttributeCondition::Exact(v.clone())]))
                        .collect(),
                });
            }
            spec.format = a.format.map(|f| match f {
                DeliveryFormatArg::Json => DeliveryFormat::Json,
                DeliveryFormatArg::Xml => DeliveryFormat::Xml,
                DeliveryFormatArg::Simplified => DeliveryFormat::Simplified,
                DeliveryFormatArg::Sns => DeliveryFormat::Sns,
            });
            if a.retry.is_some() || a.max_retries.is_some() {
                spec.retry = Some(RetryPolicy {
                    strategy: match a.retry {
                        Some(RetryArg::Exponential) => RetryStrategy::ExponentialDecayRetry,
                        _ => RetryStrategy::BackoffRetry,
                    },
                    max_retries: a.max_retries,
                    interval_seconds: None,
                });
            }
            spec.dead_letter_queue = a.dead_letter.clone();
            spec.max_in_flight = a.max_in_flight;
            let sub = client.put_subscription(&a.topic, &a.name, &spec).await?;
            print(out, &sub, |s| {
                output::subscriptions(std::slice::from_ref(s))
            });
        }
        SubscriptionCommand::List { topic } => {
            let subs = client.list_subscriptions(topic).await?;
            print(out, &subs, |s| output::subscriptions(s));
        }
        SubscriptionCommand::Get { topic, name } => {
            let sub = client.get_subscription(topic, name).await?;
            print(out, &sub, |s| {
                output::subscriptions(std::slice::from_ref(s))
            });
        }
        SubscriptionCommand::Delete { topic, name } => {
            client.delete_subscription(topic, name).await?;
            print(out, &serde_json::json!({"deleted": name}), |_| {
                output::pairs(&[("deleted", name.clone())])
            });
        }
    }
    Ok(())
}

async fn pull(out: Format, client: &Client, a: &PullArgs) -> Result<()> {
    let answer = client
        .pull(
            &a.topic,
            &a.subscription,
            &PullQuery {
                after: a.after.clone(),
                device: a.device.clone(),
                max: Some(a.max),
                wait_seconds: a.wait,
            },
        )
        .await?;
    if a.commit
        && let Some(device) = &a.device
        && !answer.messages.is_empty()
    {
        client
            .commit_cursor(&a.topic, &a.subscription, device, &answer.cursor)
            .await?;
    }
    print(out, &answer, |r| {
        let mut t = output::topic_messages(&r.messages);
        t.add_row(vec!["next cursor".to_string(), r.cursor.clone()]);
        t
    });
    Ok(())
}

async fn cluster(out: Format, client: &Client, command: &ClusterCommand) -> Result<()> {
    let status = match command {
        ClusterCommand::Status => client.cluster().await?,
        ClusterCommand::Add { id, peer_address } => client.add_member(*id, peer_address).await?,
        ClusterCommand::Drain { id } => client.drain_member(*id).await?,
        ClusterCommand::Remove { id } => client.remove_member(*id).await?,
    };
    print(out, &status, output::cluster);
    Ok(())
}

/// How long a command may take before it gives up: past the longest long poll.
pub const TIMEOUT: Duration = Duration::from_secs(60);
