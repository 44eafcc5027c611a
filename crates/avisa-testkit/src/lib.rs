//! Test doubles for Avisa's integration tests and `avisa-bench`.
//!
//! [`FakeTwilio`] listens on loopback and speaks Twilio's Messages API as
//! Twilio documents it: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with Basic auth and a form body (`To`, `From` or `MessagingServiceSid`,
//! `Body`, `StatusCallback`), answering `201` with a message resource, or the
//! documented error shapes (`{"code", "message", "more_info", "status"}`) for
//! 400, 401, 429 (with `Retry-After`) and 500, or never answering (a
//! timeout) — scripted per test.

pub mod postgres;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 201 with a message resource.
    Created,
    /// 400: Twilio error 21211, invalid `To` number.
    InvalidNumber,
    /// 400: Twilio error 21610, the recipient unsubscribed (replied STOP).
    Unsubscribed,
    /// Takes the message and answers 201 with a body that is not JSON (a
    /// proxy's page, a truncated answer).
    Unreadable,
    /// 401: Twilio error 20003, authentication failed.
    Unauthorized,
    /// 429 with `Retry-After` seconds.
    TooManyRequests(u64),
    /// 500.
    ServerError,
    /// Holds the request this long before answering 201 (longer than the
    /// client's timeout: a timeout).
    Hang(Duration),
    /// Takes the message, then answers 201 after this long (a slow
    /// provider; a client that dies meanwhile loses the answer, not the
    /// message).
    Slow(Duration),
}

/// A message the fake accepted (or refused).
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub status_callback: Option<String>,
    /// Our message id, from the status callback's `ref`.
    pub reference: Option<String>,
    pub sid: Option<String>,
    /// `ValidityPeriod`, seconds, as sent.
    pub validity_period: Option<u64>,
    /// The status the fake answered with (0: it held the request instead).
    pub answered: u16,
    pub at: Instant,
    /// When it arrived, Unix seconds (the list's `date_created`).
    pub created_unix: i64,
}

/// Random failures, for the fault runs: each request fails with these
/// probabilities (the rest are accepted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// 500 Internal Server Error.
    pub server_error: f64,
    /// No answer for `hang` (longer than the client's timeout).
    pub timeout: f64,
    /// 429 with `Retry-After: 1`.
    pub too_many: f64,
    /// Taken on arrival, answered only after `hang`: the client times out
    /// on a message the provider has.
    pub slow_accept: f64,
    pub hang: Duration,
}

struct Inner {
    chaos: Option<Chaos>,
    rng: u64,
    account_sid: String,
    auth_token: String,
    script: VecDeque<Reply>,
    default: Reply,
    received: Vec<Received>,
    /// Answer at most this many messages per second with 201; beyond that 429.
    per_second: Option<u32>,
    window: (Instant, u32),
    /// The message list answers 500 (a look-up that fails).
    lists_fail: bool,
    /// Post a signed "delivered" status callback this long after taking a
    /// message (None: no receipts).
    receipts: Option<Duration>,
    /// Our references of the messages a "delivered" receipt was posted for
    /// (and answered 2xx).
    receipted: Vec<String>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    std::str::from_utf8(body)
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })
        .to_string(),
    )
        .into_response()
}

/// A "delivered" status callback for message `sid`, signed as Twilio signs
/// it, posted `after` its acceptance.
async fn receipt(
    fake: FakeTwilio,
    after: Duration,
    url: String,
    sid: String,
    reference: Option<String>,
) {
    tokio::time::sleep(after).await;
    let token = lock(&fake.inner).auth_token.clone();
    let params: Vec<(String, String)> = [
        ("AccountSid", fake.account_sid.as_str()),
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = avisa_sms::twilio::signature(&token, &url, &params);
    let Ok(client) = avisa_sms::http::client(Duration::from_secs(10)) else {
        return;
    };
    let taken = client
        .post(&url)
        .header("x-twilio-signature", signature)
        .form(&params)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if let (true, Some(reference)) = (taken, reference) {
        lock(&fake.inner).receipted.push(reference);
    }
}

/// `GET …/Messages.json?To=…&PageSize=…`: the messages taken for that
/// number, newest first, as Twilio lists them.
async fn list(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let params = form(query.unwrap_or_default().as_bytes());
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let inner = lock(&fake.inner);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", inner.account_sid, inner.auth_token))
    );
    let auth_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
        && account == fake.account_sid;
    if !auth_ok {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if inner.lists_fail {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        );
    }
    let to = get("To");
    let size: usize = get("PageSize").and_then(|s| s.parse().ok()).unwrap_or(50);
    let messages: Vec<serde_json::Value> = inner
        .received
        .iter()
        .rev()
        .filter(|r| r.sid.is_some() && to.as_deref().is_none_or(|t| t == r.to))
        .take(size)
        .map(|r| {
            let created = time::OffsetDateTime::from_unix_timestamp(r.created_unix)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                .format(&time::format_description::well_known::Rfc2822)
                .unwrap_or_default();
            serde_json::json!({
                "sid": r.sid,
                "account_sid": fake.account_sid,
                "to": r.to,
                "from": r.from,
                "body": r.body,
                "status": "sent",
                "date_created": created,
                "direction": "outbound-api",
            })
        })
        .collect();
    let uri = format!("/2010-04-01/Accounts/{account}/Messages.json");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "messages": messages,
            "page": 0,
            "page_size": size,
            "start": 0,
            "end": messages.len().saturating_sub(1),
            "uri": uri,
            "first_page_uri": uri,
            "next_page_uri": null,
            "previous_page_uri": null,
        })
        .to_string(),
    )
        .into_response()
}

async fn messages(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (expected_auth, reply) = {
        let mut inner = lock(&fake.inner);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", inner.account_sid, inner.auth_token))
        );
        let mut reply = inner
            .script
            .pop_front()
            .unwrap_or_else(|| inner.default.clone());
        if let Some(chaos) = inner.chaos {
            // xorshift: reproducible enough, no dependency.
            inner.rng ^= inner.rng << 13;
            inner.rng ^= inner.rng >> 7;
            inner.rng ^= inner.rng << 17;
            let roll = (inner.rng % 10_000) as f64 / 10_000.0;
            reply = if roll < chaos.server_error {
                Reply::ServerError
            } else if roll < chaos.server_error + chaos.timeout {
                Reply::Hang(chaos.hang)
            } else if roll < chaos.server_error + chaos.timeout + chaos.too_many {
                Reply::TooManyRequests(1)
            } else if roll < chaos.server_error + chaos.timeout + chaos.too_many + chaos.slow_accept
            {
                Reply::Slow(chaos.hang)
            } else {
                Reply::Created
            };
        }
        if reply == Reply::Created
            && let Some(limit) = inner.per_second
        {
            let now = Instant::now();
            if now.duration_since(inner.window.0) >= Duration::from_secs(1) {
                inner.window = (now, 0);
            }
            if inner.window.1 >= limit {
                reply = Reply::TooManyRequests(1);
            } else {
                inner.window.1 += 1;
            }
        }
        (expected, reply)
    };
    let auth_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected_auth.as_str())
        && account == fake.account_sid;
    let to = get("To");
    let text = get("Body");
    let sender = get("From").or_else(|| get("MessagingServiceSid"));
    let callback = get("StatusCallback");
    let reference = callback
        .as_deref()
        .and_then(|c| c.split_once("ref="))
        .map(|(_, r)| r.split('&').next().unwrap_or("").to_string());
    let record = |answered: u16, sid: Option<String>| Received {
        to: to.clone().unwrap_or_default(),
        from: sender.clone(),
        body: text.clone().unwrap_or_default(),
        status_callback: callback.clone(),
        reference: reference.clone(),
        sid,
        validity_period: get("ValidityPeriod").and_then(|v| v.parse().ok()),
        answered,
        at: Instant::now(),
        created_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let push = |r: Received| lock(&fake.inner).received.push(r);
    if !auth_ok {
        push(record(401, None));
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if to.is_none() {
        push(record(400, None));
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    }
    if text.is_none() || sender.is_none() {
        push(record(400, None));
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    match reply {
        Reply::Hang(d) => {
            // Recorded on arrival with status 0: the client gives up before
            // the answer, and the answer dies with its connection.
            push(record(0, None));
            tokio::time::sleep(d).await;
            (StatusCode::CREATED, "too late").into_response()
        }
        Reply::Created | Reply::Slow(_) => {
            let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
            // Taken on arrival, as a provider does: if the answer is then lost
            // (the client died), the message went all the same.
            push(record(201, Some(sid.clone())));
            let receipts = lock(&fake.inner).receipts;
            if let (Some(after), Some(url)) = (receipts, callback.clone()) {
                tokio::spawn(receipt(
                    fake.clone(),
                    after,
                    url,
                    sid.clone(),
                    reference.clone(),
                ));
            }
            if let Reply::Slow(d) = reply {
                tokio::time::sleep(d).await;
            }
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({
                    "sid": sid,
                    "account_sid": fake.account_sid,
                    "to": to,
                    "from": get("From"),
                    "messaging_service_sid": get("MessagingServiceSid"),
                    "body": text,
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "error_code": null,
                    "error_message": null,
                    "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", fake.account_sid),
                })
                .to_string(),
            )
                .into_response()
        }
        Reply::InvalidNumber => {
            push(record(400, None));
            error(
                StatusCode::BAD_REQUEST,
                21211,
                "The 'To' number is not a valid phone number.",
            )
        }
        Reply::Unreadable => {
            let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
            push(record(201, Some(sid)));
            (StatusCode::CREATED, "<html>upstream answered</html>").into_response()
        }
        Reply::Unsubscribed => {
            push(record(400, None));
            error(
                StatusCode::BAD_REQUEST,
                21610,
                "Attempt to send to unsubscribed recipient",
            )
        }
        Reply::Unauthorized => {
            push(record(401, None));
            error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
        }
        Reply::TooManyRequests(secs) => {
            push(record(429, None));
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Reply::ServerError => {
            push(record(500, None));
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error",
            )
        }
    }
}

impl FakeTwilio {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeTwilio {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Twilio");
        let addr = listener.local_addr().expect("local addr");
        let fake = FakeTwilio {
            base_url: format!("http://{addr}"),
            account_sid: "AC00000000000000000000000000000001".into(),
            auth_token: "fake-twilio-auth-token".into(),
            inner: Arc::new(Mutex::new(Inner {
                chaos: None,
                rng: 0x2545_F491_4F6C_DD1D,
                account_sid: "AC00000000000000000000000000000001".into(),
                auth_token: "fake-twilio-auth-token".into(),
                script: VecDeque::new(),
                default: Reply::Created,
                received: Vec::new(),
                per_second: None,
                window: (Instant::now(), 0),
                lists_fail: false,
                receipts: None,
                receipted: Vec::new(),
            })),
        };
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages).get(list),
            )
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// The next requests get these answers, in order; then the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.inner).script.extend(replies);
    }

    /// The account's auth token as the fake checks it: set another one and
    /// every request with the configured token gets 401 (a credential
    /// outage, as when the token was rotated); set it back and it works.
    pub fn set_auth_token(&self, token: &str) {
        lock(&self.inner).auth_token = token.to_string();
    }

    /// Post a signed "delivered" status callback to each message's
    /// `StatusCallback` this long after taking it, as Twilio does when the
    /// handset confirms (None: no receipts, the default). A receipt may
    /// thus arrive before a late answer to the send.
    pub fn send_receipts(&self, after: Option<Duration>) {
        lock(&self.inner).receipts = after;
    }

    /// Our references of the messages a "delivered" receipt was posted for
    /// and taken (2xx) by the server.
    pub fn receipted(&self) -> Vec<String> {
        lock(&self.inner).receipted.clone()
    }

    /// While on, the message list answers 500: a look-up that fails.
    pub fn fail_lists(&self, on: bool) {
        lock(&self.inner).lists_fail = on;
    }

    /// The answer once the script is used up (`Created` at first).
    pub fn set_default(&self, reply: Reply) {
        lock(&self.inner).default = reply;
    }

    /// Fails requests at random (see [`Chaos`]); None to stop.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        lock(&self.inner).chaos = chaos;
    }

    /// Accept at most this many messages per second; 429 beyond.
    pub fn limit_per_second(&self, per_second: Option<u32>) {
        lock(&self.inner).per_second = per_second;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner).received.clone()
    }

    /// The messages accepted (201) so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == 201)
            .collect()
    }

    /// Waits until `n` messages were accepted, or panics after `timeout`.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "the fake Twilio accepted {} of {n} messages",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
