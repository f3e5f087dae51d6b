//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver) against a real broker: the page loads and
//! shows the cluster, a queue is created from its form, traffic moves the queue's plot,
//! and a message is sent, peeked, looked up, received and acknowledged from the page.
//! Screenshots land in `target/test-artifacts/console/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_client::{ReceiveRequest, SendMessage};
use sluice_e2e::browser::Browser;
use sluice_e2e::{Broker, BrokerOptions, test_dir};

const WAIT: Duration = Duration::from_secs(20);

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_cluster_and_acts_on_a_queue() {
    let dir = test_dir("console").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    let client = broker.client.clone();
    let browser = Browser::start().await.expect("chromium starts");
    let shots = artifacts();

    browser
        .open(&format!("{}/console", broker.url()))
        .await
        .expect("open");
    browser
        .wait_text("#cluster-members", WAIT, |t| {
            t.contains("voter") && t.contains("leader")
        })
        .await
        .expect("the cluster shows");
    browser
        .screenshot(&shots, "1-overview")
        .await
        .expect("shot");

    // A queue made from the page's form exists in the broker, with its attribute.
    browser
        .type_into("#create-queue-name", "console-orders", WAIT)
        .await
        .expect("form");
    browser
        .type_into("#create-queue-visibility", "45", WAIT)
        .await
        .expect("field");
    browser
        .click_on("#create-queue-submit", WAIT)
        .await
        .expect("button");
    browser
        .wait_text(r#"tr[data-queue="console-orders"] td.visible"#, WAIT, |t| {
            t == "0"
        })
        .await
        .expect("the new queue is listed");
    let made = client.get_queue("console-orders").await.expect("created");
    assert_eq!(made.attributes.visibility_seconds, 45);

    // Its page; traffic from a client moves the plot.
    browser
        .click_on(r#"tr[data-queue="console-orders"] a"#, WAIT)
        .await
        .expect("link");
    browser.find("#queue", WAIT).await.expect("queue page");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (client, stop) = (client.clone(), stop.clone());
        async move {
            let batch: Vec<SendMessage> = (0..20)
                .map(|i| SendMessage::text(format!("t{i}")))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                client
                    .send_batch("console-orders", &batch)
                    .await
                    .expect("send");
                let got = client
                    .receive(
                        "console-orders",
                        &ReceiveRequest {
                            max: Some(20),
                            wait_seconds: Some(1),
                            visibility_seconds: None,
                        },
                    )
                    .await
                    .expect("receive");
                let receipts: Vec<String> = got.into_iter().filter_map(|m| m.receipt).collect();
                client.ack("console-orders", &receipts).await.expect("ack");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    // The plot moved: a line of several rate samples, and a peak above zero.
    let deadline = Instant::now() + WAIT;
    let (peak, samples) = loop {
        let plot = browser.find("svg.plot", WAIT).await.expect("plot");
        let number = |name: &'static str| {
            let (browser, plot) = (&browser, plot.clone());
            async move {
                browser
                    .attribute(&plot, name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|p| p.parse::<f64>().ok())
                    .unwrap_or(0.0)
            }
        };
        let (peak, samples) = (number("data-peak").await, number("data-samples").await);
        if (peak > 0.0 && samples >= 3.0) || Instant::now() > deadline {
            break (peak, samples);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        peak > 0.0 && samples >= 3.0,
        "the plot never moved: peak {peak}, {samples} samples"
    );
    browser
        .screenshot(&shots, "2-queue-plot")
        .await
        .expect("shot");
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic");
    // Whatever the traffic left in flight, acknowledged or not, drains before we go on.
    let drain_deadline = Instant::now() + WAIT;
    loop {
        let counts = client
            .get_queue("console-orders")
            .await
            .expect("get")
            .counts;
        if counts.visible + counts.in_flight == 0 {
            break;
        }
        assert!(Instant::now() < drain_deadline, "left over: {counts:?}");
        let got = client
            .receive(
                "console-orders",
                &ReceiveRequest {
                    max: Some(32),
                    wait_seconds: Some(1),
                    visibility_seconds: None,
                },
            )
            .await
            .expect("receive");
        let receipts: Vec<String> = got.into_iter().filter_map(|m| m.receipt).collect();
        client.ack("console-orders", &receipts).await.expect("ack");
    }

    // Send from the page; the count changes; peek and look-up show it.
    browser
        .type_into("#send-body", "hello from the console", WAIT)
        .await
        .expect("body field");
    browser.click_on("#send-submit", WAIT).await.expect("send");
    browser
        .wait_text("#count-visible", WAIT, |t| t == "1")
        .await
        .expect("the count changes");
    browser.click_on("#peek-button", WAIT).await.expect("peek");
    browser
        .wait_text("#peek-results", WAIT, |t| {
            t.contains("hello from the console")
        })
        .await
        .expect("peek shows the message");
    let id = client.peek("console-orders", 1).await.expect("peek")[0]
        .id
        .clone();
    browser
        .type_into("#lookup-id", &id, WAIT)
        .await
        .expect("lookup field");
    browser
        .click_on("#lookup-button", WAIT)
        .await
        .expect("button");
    browser
        .wait_text("#lookup-results", WAIT, |t| t.contains(&id))
        .await
        .expect("look-up shows the message");

    // Receive it and acknowledge it from the page: the broker has nothing left.
    browser
        .click_on("#receive-button", WAIT)
        .await
        .expect("receive");
    browser
        .wait_text("#receive-results", WAIT, |t| {
            t.contains("hello from the console")
        })
        .await
        .expect("received");
    browser
        .click_on("#receive-results button.ack", WAIT)
        .await
        .expect("ack");
    browser
        .wait_text("#count-in-flight", WAIT, |t| t == "0")
        .await
        .expect("acknowledged");
    browser
        .screenshot(&shots, "3-acknowledged")
        .await
        .expect("shot");
    let counts = client
        .get_queue("console-orders")
        .await
        .expect("get")
        .counts;
    assert_eq!((counts.visible, counts.in_flight), (0, 0));
}
