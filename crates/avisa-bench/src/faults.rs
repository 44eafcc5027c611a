//! The fault runs: SIGKILLs during a burst (`crash`) and a faulty
//! provider with a second gateway behind it (`faults`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::prelude::*;

/// SIGKILL at random points during a burst; after each restart every accepted
/// alert's messages must reach the gateway.
pub(crate) async fn crash(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, 0, "")?;
    // Short leases so restarted servers pick up what a dead one held.
    let text = std::fs::read_to_string(&config)? + "\n[dispatch]\nlease = \"2s\"\n";
    std::fs::write(&config, text)?;
    let mut server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people(&server, args.people.min(100)).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    // Each owed message, with the alert and the token that can read it.
    let mut owed: HashMap<String, (String, String)> = HashMap::new();
    let mut refused = 0usize;
    let per_round = args.alerts / (args.kills + 1);
    for round in 0..=args.kills {
        let next = Arc::new(AtomicUsize::new(0));
        let tokens = Arc::new(tokens.clone());
        let mut set = JoinSet::new();
        for _ in 0..32 {
            let (client, next, tokens, base) =
                (client.clone(), next.clone(), tokens.clone(), base.clone());
            set.spawn(async move {
                let mut accepted = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= per_round {
                        return (accepted, failed);
                    }
                    match press(
                        &client,
                        &base,
                        &tokens[i % tokens.len()],
                        &format!("crash-{round}-{i:08}"),
                    )
                    .await
                    {
                        Ok((alert, ids, _)) => {
                            let token = &tokens[i % tokens.len()];
                            accepted.extend(
                                ids.into_iter()
                                    .map(|id| (id, (alert.clone(), token.clone()))),
                            )
                        }
                        Err(_) => failed += 1,
                    }
                }
            });
        }
        if round < args.kills {
            // Kill at a random moment in the burst.
            let wait = 50 + getrandom::u64().unwrap_or(0) % 400;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            server.kill();
        }
        while let Some(r) = set.join_next().await {
            let (ids, failed) = r?;
            refused += failed;
            owed.extend(ids);
        }
        if round < args.kills {
            server.restart().await?;
        }
    }
    // Every accepted message must reach the gateway; count the copies.
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let (lines, _) = read_log(&server.sms_log(), 0);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (id, _) in lines {
            if owed.contains_key(&id) {
                *counts.entry(id).or_default() += 1;
            }
        }
        if counts.len() == owed.len() || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lost = owed.len() - counts.len();
    // What the server shows for each lost message, to say why.
    let mut shown = Vec::new();
    for (id, (alert, token)) in owed.iter().filter(|(id, _)| !counts.contains_key(*id)) {
        let (_, v) = call(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/alerts/{alert}"),
            Some(token),
            Value::Null,
        )
        .await
        .unwrap_or((0, Value::Null));
        let recipient = v["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == id.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        shown.push(format!("{id} of alert {alert}: {recipient}"));
    }
    server.stop();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    report.section(
        "crash",
        vec![
            ("alerts pressed", json!(per_round * (args.kills + 1)), ""),
            ("SIGKILLs", json!(args.kills), ""),
            (
                "presses that got no 2xx (in flight at a kill)",
                json!(refused),
                "",
            ),
            ("messages owed to accepted alerts", json!(owed.len()), ""),
            ("lost", json!(lost), ""),
            ("duplicates", json!(duplicates), ""),
        ],
    );
    if lost > 0 {
        bail!(
            "{lost} messages of accepted alerts never reached the gateway; the server shows:\n{}",
            shown.join("\n")
        );
    }
    Ok(())
}

/// A faulty provider with a second gateway behind it, twice: a mix of
/// every fault (30 % 500s, 10 % timeouts, 5 % 429s, 10 % taken but
/// answered too late), then only the fault that can make a duplicate (10 %
/// taken but answered too late, so each such message is in doubt). Every
/// message is delivered or visibly failed/expired; lost and duplicated
/// copies counted.
///
/// `admin` is the PostgreSQL server's URL, if any: each run gets a fresh
/// database there (each has its own data key).
pub(crate) async fn faults(
    args: &BenchArgs,
    admin: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let hang = Duration::from_secs(3);
    let mix = avisa_testkit::Chaos {
        server_error: 0.30,
        timeout: 0.10,
        too_many: 0.05,
        slow_accept: 0.10,
        hang,
    };
    let late = avisa_testkit::Chaos {
        server_error: 0.0,
        timeout: 0.0,
        too_many: 0.0,
        slow_accept: 0.10,
        hang,
    };
    for (label, chaos) in [("faults", mix), ("faults: 10 % taken, answered late", late)] {
        let fresh = match admin {
            Some(admin) => Some(pg_fresh(admin).await?),
            None => None,
        };
        let result = faults_run(
            args,
            fresh.as_ref().map(|(url, _)| url.as_str()),
            report,
            label,
            chaos,
        )
        .await;
        if let (Some(admin), Some((_, name))) = (admin, &fresh) {
            pg_drop(admin, name).await;
        }
        result?;
    }
    Ok(())
}

async fn faults_run(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
    label: &str,
    chaos: avisa_testkit::Chaos,
) -> anyhow::Result<()> {
    let fake = avisa_testkit::FakeTwilio::start().await;
    let dir = tempfile::tempdir()?;
    let extra = format!(
        "validity = \"2m\"\nreceipt_timeout = \"5s\"\n[[sms.gateways]]\nkind = \"twilio\"\nbase_url = \"{}\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\nfrom = \"+15005550006\"\ntimeout = \"1s\"\n",
        fake.base_url, fake.account_sid, fake.auth_token
    );
    let (config, base) = Server::write_config(dir.path(), database, 0, &extra)?;
    let text = std::fs::read_to_string(&config)?
        + "\n[dispatch]\nretry_base = \"200ms\"\nretry_max = \"5s\"\n";
    std::fs::write(&config, text)?;
    let mut server = Server::start(dir.path(), &config, &base).await?;
    // The provider confirms each message it took half a second later, as a
    // handset's receipt: some arrive before the send's late answer.
    fake.send_receipts(Some(Duration::from_millis(500)));
    let tokens = people_via(&server, args.people.min(50), Some(&fake)).await?;
    // The provider turns faulty once the people are registered. Taken, then
    // answered too late: the message is in doubt, and the provider is
    // asked before it is sent again, by it or by the second gateway.
    fake.set_chaos(Some(chaos));
    let n = args.burst.min(1000);
    let client = reqwest::Client::new();
    let mut alerts = Vec::new();
    for i in 0..n {
        let token = &tokens[i % tokens.len()];
        let (id, _, _) = press(&client, &base, token, &format!("faults-{i:08}")).await?;
        alerts.push((token.clone(), id));
    }
    // Wait until no message is queued any more (validity is 2 minutes).
    let started = Instant::now();
    let mut tally: HashMap<String, usize>;
    // Every message of every alert, with its status as the person sees it.
    let mut messages: Vec<(String, String)>;
    let mut unconfirmed: usize;
    // Delivered by the provider (its receipt taken by the server) and yet
    // not shown delivered: a receipt dropped.
    let mut not_shown: usize;
    let mut none_queued_at: Option<Instant> = None;
    loop {
        tally = HashMap::new();
        messages = Vec::new();
        unconfirmed = 0;
        for (token, id) in &alerts {
            let (_, v) = call(
                &client,
                reqwest::Method::GET,
                &format!("{base}/api/v1/alerts/{id}"),
                Some(token),
                Value::Null,
            )
            .await
            .unwrap_or((0, Value::Null));
            for r in v["recipients"].as_array().into_iter().flatten() {
                let status = r["status"].as_str().unwrap_or("?").to_string();
                *tally.entry(status.clone()).or_default() += 1;
                if r["unconfirmed"] == true {
                    unconfirmed += 1;
                }
                messages.push((r["id"].as_str().unwrap_or("").to_string(), status));
            }
        }
        let receipted: std::collections::HashSet<String> = fake.receipted().into_iter().collect();
        not_shown = messages
            .iter()
            .filter(|(id, status)| receipted.contains(id) && status != "delivered")
            .count();
        if tally.get("queued").copied().unwrap_or(0) == 0 {
            let since = *none_queued_at.get_or_insert_with(Instant::now);
            // Receipts still on their way get a few seconds more.
            if not_shown == 0 || since.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(200) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let answered: Vec<u16> = fake.received().iter().map(|r| r.answered).collect();
    server.stop();
    let count = |s: &str| json!(tally.get(s).copied().unwrap_or(0));
    let log_lines = read_log(&server.sms_log(), 0).0;
    let by_log = log_lines.len();
    // Copies each message made at either gateway: the provider's by our
    // reference, the log's by our id.
    let mut copies: HashMap<String, usize> = HashMap::new();
    for r in fake.accepted() {
        if let Some(reference) = r.reference {
            *copies.entry(reference).or_default() += 1;
        }
    }
    for (id, _) in log_lines {
        *copies.entry(id).or_default() += 1;
    }
    let shown_sent = |s: &str| matches!(s, "sent" | "delivered");
    let lost = messages
        .iter()
        .filter(|(id, status)| shown_sent(status) && copies.get(id).copied().unwrap_or(0) == 0)
        .count();
    let duplicates: usize = messages
        .iter()
        .map(|(id, _)| copies.get(id).copied().unwrap_or(0).saturating_sub(1))
        .sum();
    report.section(
        label,
        vec![
            ("alerts", json!(n), ""),
            (
                "provider answers: 201",
                json!(answered.iter().filter(|a| **a == 201).count()),
                "",
            ),
            (
                "provider answers: 500",
                json!(answered.iter().filter(|a| **a == 500).count()),
                "",
            ),
            (
                "provider answers: 429 + Retry-After",
                json!(answered.iter().filter(|a| **a == 429).count()),
                "",
            ),
            (
                "provider answers: none (timeout)",
                json!(answered.iter().filter(|a| **a == 0).count()),
                "",
            ),
            ("messages through the second gateway", json!(by_log), ""),
            (
                "messages shown sent that reached no gateway (lost)",
                json!(lost),
                "",
            ),
            ("extra copies (duplicates)", json!(duplicates), ""),
            (
                "duplicates, % of messages",
                json!((duplicates as f64 * 1000.0 / messages.len().max(1) as f64).round() / 10.0),
                "%",
            ),
            (
                "messages without confirmation (sin confirmación)",
                json!(unconfirmed),
                "",
            ),
            (
                "receipts the provider posted and the server took",
                json!(fake.receipted().len()),
                "",
            ),
            (
                "delivered by the provider, not shown delivered",
                json!(not_shown),
                "",
            ),
            ("messages sent", count("sent"), ""),
            ("messages delivered", count("delivered"), ""),
            ("messages failed (visible)", count("failed"), ""),
            ("messages expired (visible)", count("expired"), ""),
            ("messages still queued", count("queued"), ""),
            (
                "seconds until none queued",
                json!(started.elapsed().as_secs_f64()),
                "s",
            ),
        ],
    );
    Ok(())
}
