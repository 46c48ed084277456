//! The supervisor console's data side over real sockets: acknowledging,
//! assigning and resolving alerts (gRPC and HTTP), the JSON endpoints, the
//! event stream with `Last-Event-ID` resume, and who may do what.

use callguard::grpc::auth::{hash_token, Role, TokenEntry};
use callguard::grpc::client::ClientConfig;
use callguard::grpc::pb;
use tonic::Code;

use crate::support::*;

const SUPERVISOR_ACME: &str = "tok-console-sv-acme";
const SUPERVISOR_GLOBEX: &str = "tok-console-sv-globex";
const INGEST_ACME: &str = "tok-console-gw-acme";

fn token(name: &str, token: &str, role: Role, tenant: &str) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        sha256: hash_token(token),
        role,
        tenant: tenant.into(),
    }
}

fn tokens() -> Vec<TokenEntry> {
    vec![
        token("sv-acme", SUPERVISOR_ACME, Role::Supervisor, "acme"),
        token("sv-globex", SUPERVISOR_GLOBEX, Role::Supervisor, "globex"),
        token("gw-acme", INGEST_ACME, Role::Ingest, "acme"),
    ]
}

async fn alerts_as(
    server: &TestServer,
    token: Option<&str>,
) -> pb::alerts_client::AlertsClient<callguard::grpc::client::AuthChannel> {
    let channel = ClientConfig {
        token: token.map(str::to_owned),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    pb::alerts_client::AlertsClient::new(channel)
}

fn ack(
    alert_id: u64,
    state: pb::HandlingState,
    assignee: &str,
    note: &str,
) -> pb::AcknowledgeRequest {
    pb::AcknowledgeRequest {
        alert_id,
        state: state as i32,
        assignee: assignee.into(),
        note: note.into(),
    }
}

fn handling(alert: &pb::Alert) -> (i32, &str, &str, &str) {
    let h = alert.handling.as_ref().expect("handling set");
    (h.state, h.by.as_str(), h.assignee.as_str(), h.note.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_assign_resolve_are_updates_of_the_same_alert_on_subscribe() {
    let server = TestServer::spawn().await;
    let mut sub = server.subscription(0).await;
    let mut ingest = server.stream().await;
    let started = ingest.send(start_event("c1", "acme")).await;
    let interim = ingest
        .send(fragment("c1", 1, "u1", "お前ころすぞ", false))
        .await;
    let provisional = interim.alerts[0].clone();
    assert_eq!(provisional.status, pb::AlertStatus::Provisional as i32);
    assert!(provisional.handling.is_none());
    let mut alerts = server.alerts().await;

    // Acknowledged while still provisional.
    let acked = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Unspecified,
            "",
            "on it",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(acked.alert_id, provisional.alert_id);
    assert!(acked.event_id > provisional.event_id);
    assert_eq!(acked.status, pb::AlertStatus::Provisional as i32);
    assert_eq!(
        handling(&acked),
        (pb::HandlingState::Acknowledged as i32, "open", "", "on it")
    );

    // The final text confirms it: the detection update keeps the handling.
    let fin = ingest
        .send(fragment("c1", 2, "u1", "お前ころすぞ", true))
        .await;
    let confirmed = fin.alerts[0].clone();
    assert_eq!(confirmed.alert_id, provisional.alert_id);
    assert_eq!(confirmed.status, pb::AlertStatus::Confirmed as i32);
    assert_eq!(
        handling(&confirmed).0,
        pb::HandlingState::Acknowledged as i32
    );

    // Assigned, then resolved: the assignee stays, the status stays confirmed.
    let assigned = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Assigned,
            "lead-2",
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(assigned.status, pb::AlertStatus::Confirmed as i32);
    let resolved = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Resolved,
            "",
            "apologised, call ended",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(
        handling(&resolved),
        (
            pb::HandlingState::Resolved as i32,
            "open",
            "lead-2",
            "apologised, call ended"
        )
    );

    // Subscribe sees every version, in order, with the same ids.
    let mut want = started.alerts.clone();
    want.extend([provisional, acked, confirmed, assigned, resolved.clone()]);
    assert_eq!(take(&mut sub, want.len()).await, want);

    // Assigning to nobody, over-long notes and unknown alerts are refused.
    for (request, want) in [
        (
            ack(resolved.alert_id, pb::HandlingState::Assigned, " ", ""),
            Code::InvalidArgument,
        ),
        (
            ack(
                resolved.alert_id,
                pb::HandlingState::Resolved,
                "",
                &"x".repeat(2_001),
            ),
            Code::InvalidArgument,
        ),
        (
            ack(999_999, pb::HandlingState::Acknowledged, "", ""),
            Code::NotFound,
        ),
    ] {
        let got = alerts
            .acknowledge(request)
            .await
            .map(drop)
            .err()
            .map_or(Code::Ok, |s| s.code());
        assert_eq!(got, want);
    }
    let mut raw = ack(resolved.alert_id, pb::HandlingState::Acknowledged, "", "");
    raw.state = 9;
    assert_eq!(
        alerts.acknowledge(raw).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    ingest.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_follows_roles_and_tenants_and_agent_filters_narrow() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.tokens = tokens();
    let server = TestServer::spawn_with(cfg).await;
    let channel = ClientConfig {
        token: Some(INGEST_ACME.into()),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    let mut ingest = IngestStream::open(channel).await.unwrap();
    let started = ingest.send(start_event("c1", "acme")).await;
    let hit = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    let alert_id = hit.alerts.last().unwrap().alert_id;

    let mut globex = alerts_as(&server, Some(SUPERVISOR_GLOBEX)).await;
    let request = || ack(alert_id, pb::HandlingState::Acknowledged, "", "");
    assert_eq!(
        globex.acknowledge(request()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut gateway = alerts_as(&server, Some(INGEST_ACME)).await;
    assert_eq!(
        gateway.acknowledge(request()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut nobody = alerts_as(&server, None).await;
    assert_eq!(
        nobody.acknowledge(request()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut acme = alerts_as(&server, Some(SUPERVISOR_ACME)).await;
    let stored = acme
        .acknowledge(request())
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(
        stored.handling.unwrap().by,
        "sv-acme",
        "the token's name, never the token"
    );

    // agent_id narrows ListCalls and Subscribe (the call's agent is a1).
    let calls = |agent: &str| pb::ListCallsRequest {
        agent_id: agent.into(),
        ..Default::default()
    };
    assert_eq!(
        acme.list_calls(calls("a1"))
            .await
            .unwrap()
            .into_inner()
            .calls
            .len(),
        1
    );
    assert!(acme
        .list_calls(calls("a2"))
        .await
        .unwrap()
        .into_inner()
        .calls
        .is_empty());
    let subscribe = |agent: &str| pb::SubscribeRequest {
        agent_id: agent.into(),
        from_start: true,
        ..Default::default()
    };
    let mut mine = acme.subscribe(subscribe("a1")).await.unwrap().into_inner();
    let got = take(&mut mine, started.alerts.len() + hit.alerts.len() + 1).await;
    assert_eq!(got.last().unwrap().event_id, stored.event_id);
    assert!(got.iter().all(|a| a.agent_id == "a1"));
    let mut other = acme.subscribe(subscribe("a2")).await.unwrap().into_inner();
    assert_quiet(&mut other).await;
    ingest.close().await;
    server.stop().await;
}
