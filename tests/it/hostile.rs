//! Hostile clients and failing disks (issue #18): each test is named after
//! the finding it reproduces (F1 … F11) and drives a real server over a
//! real socket. Tests that read process-wide metrics or kill the server run
//! the binary as a child process, as in `faults.rs`.

use callguard::grpc::pb;

use crate::faults::*;
use crate::support::*;

// ---------------------------------------------------------------------------
// F1. Cancelled subscriptions are never freed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_cancelled_subscriptions_end_without_an_alert_being_due() {
    const CYCLES: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "");
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    let subscribers = || async { metric(server.http, "callguard_subscribers").await };

    // One subscriber that stays: the baseline the gauge must come back to.
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    let mut staying = alerts.subscribe(subscribe_request(0)).await.unwrap().into_inner();
    eventually("one subscriber", || async { subscribers().await == Some(1.0) }).await;

    // A reconnect loop: subscribe, then cancel (RST_STREAM) on a shared
    // connection, and every tenth one by closing its own connection.
    for i in 0..CYCLES {
        if i % 10 == 0 {
            let mut own = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
            let stream = own.subscribe(subscribe_request(0)).await.unwrap();
            drop((stream, own));
        } else {
            let stream = alerts.subscribe(subscribe_request(0)).await.unwrap();
            drop(stream);
        }
    }
    // No alert is due to any of them; they end all the same.
    eventually("the subscriber gauge back at its baseline", || async {
        subscribers().await == Some(1.0)
    })
    .await;

    // The one that stayed is still served.
    let mut ingest = IngestStream::open(
        callguard::grpc::client::ClientConfig::plain(format!("http://{}", server.grpc))
            .connect()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let raised = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(take(&mut staying, 1).await, raised);
}
