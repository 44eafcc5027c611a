//! `[limits]`: what any one client may ask of the server — request sizes,
//! the budgets of the SMS a stranger can make Avisa send, and how long and
//! how many connections are served.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Verification codes to one phone number per hour.
    pub registrations_per_hour: u32,
    /// Verification codes asked for from one client address per hour.
    pub codes_per_address_per_hour: u32,
    /// Verification codes per hour to each allowed country.
    pub codes_per_country_per_hour: u32,
    /// Verification codes per hour in all.
    pub codes_per_hour: u32,
    /// Codes sent per minute, in all, without a proof of work; past them a
    /// registration must solve a challenge first (`GET
    /// /api/v1/devices/challenge`), so a flood of bots cannot spend the
    /// hour's codes people need. 0: always a challenge.
    pub codes_without_challenge_per_minute: u32,
    /// How hard the challenge is: the secret number is at most this (a
    /// phone tries half of them on average; 50,000 SHA-256 take a few
    /// hundred milliseconds on a cheap phone).
    pub challenge_maxnumber: u64,
    /// The countries (ISO 3166) verification codes are sent to.
    pub code_countries: Vec<String>,
    /// The countries (ISO 3166) a contact's number may be in: alerts are
    /// SMS Avisa pays for to numbers the person chooses.
    pub contact_countries: Vec<String>,
    /// Alert SMS to one person's contacts per hour, over all their alerts,
    /// in price units (`price_units`: an SMS in the US is one): past it a
    /// press still reaches the consulate and the person's phone, and the
    /// case says the limit was reached.
    pub person_sms_per_hour: u32,
    /// The same, per day.
    pub person_sms_per_day: u32,
    /// What one alert SMS to a number in each country costs against those
    /// budgets, in units of an SMS in the US (an SMS to Mexico costs the
    /// operator several times more): the budget is spent in money, not in
    /// messages. Countries not listed cost `price_units_default`.
    pub price_units: std::collections::BTreeMap<String, u32>,
    pub price_units_default: u32,
    /// The reverse proxy in front of Avisa, if any: only for requests from
    /// this address is `X-Forwarded-For` believed (its last entry is the
    /// client). Unset, the peer's own address counts.
    pub trusted_proxy: Option<std::net::IpAddr>,
    /// Unverified devices are forgotten after this long.
    #[serde(with = "humantime_serde")]
    pub unverified_ttl: Duration,
    /// A request's headers must arrive within this; it is also how long a
    /// kept-alive connection may wait idle for its next request.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request's body must arrive within this, in all.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// After its first second, a request's body must arrive at this many
    /// bytes a second at least (408 otherwise): a trickle cannot hold a
    /// connection until `body_timeout`.
    pub min_body_rate: u64,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Kept beyond `max_connections` for what saves a person: presses,
    /// cancels, the webhooks and the health checks; anything else on one of
    /// these is answered 503. A flood of other requests never makes a press
    /// wait for a connection.
    pub reserved_connections: usize,
    /// Connections served at once from one address (the trusted proxy and
    /// `console_addresses` excepted): well under `max_connections`, so a
    /// few addresses cannot take every connection.
    pub connections_per_address: usize,
    /// The addresses consulates' staff come from (an office behind one
    /// NAT): not held to `connections_per_address`.
    pub console_addresses: Vec<std::net::IpAddr>,
    /// Live streams open at once per phone (an alert's status screen).
    pub streams_per_device: usize,
    /// Live streams open at once per console session (one per tab).
    pub streams_per_session: usize,
    /// Number-and-PIN attempts per hour from one calling number, on the
    /// voice line and by "AYUDA" SMS together. A detention facility's phone
    /// is shared, so this only stops one caller from trying many pairs; each
    /// person's PIN has its own lockout besides.
    pub help_attempts_per_caller_per_hour: u32,
    /// Presses from the app handled at once; one more is answered 503 with
    /// `Retry-After` at once (the app keeps it and sends it again with the
    /// same key) instead of queueing until memory or time runs out.
    pub presses_in_flight: usize,
    /// A press not stored within this long (a database that hangs) is
    /// answered 503 with Retry-After; if it is stored later, the app's
    /// retry with the same key finds it.
    #[serde(with = "humantime_serde")]
    pub press_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024,
            registrations_per_hour: 3,
            codes_per_address_per_hour: 10,
            codes_per_country_per_hour: 300,
            codes_per_hour: 500,
            // A sixth of the hour's 500: a flood that never solves a
            // challenge spends at most 300 an hour, and people who solve
            // one still find codes.
            codes_without_challenge_per_minute: 5,
            challenge_maxnumber: 50_000,
            // The US with its territories, and Mexico.
            code_countries: ["US", "MX", "PR", "VI", "GU", "AS", "MP"]
                .map(String::from)
                .to_vec(),
            // Where the people Avisa serves have family: the Americas and
            // Spain. The operator widens it.
            contact_countries: [
                "US", "PR", "VI", "GU", "AS", "MP", "CA", "MX", "GT", "BZ", "SV", "HN", "NI", "CR",
                "PA", "CU", "DO", "HT", "JM", "BS", "BB", "TT", "AG", "DM", "GD", "KN", "LC", "VC",
                "CO", "VE", "EC", "PE", "BO", "CL", "AR", "UY", "PY", "BR", "GY", "SR", "ES",
            ]
            .map(String::from)
            .to_vec(),
            // No honest person meets these: ten contacts told six times an
            // hour, twenty times a day.
            // In units: ten contacts in Mexico (two units each) told six
            // times an hour, twenty times a day.
            person_sms_per_hour: 120,
            person_sms_per_day: 400,
            // Classes, not prices: the US and Canada (one), Mexico (two:
            // most families), anywhere else (three).
            price_units: [
                ("US", 1),
                ("CA", 1),
                ("PR", 1),
                ("VI", 1),
                ("GU", 1),
                ("AS", 1),
                ("MP", 1),
                ("MX", 2),
            ]
            .map(|(c, u)| (c.to_string(), u))
            .into(),
            price_units_default: 3,
            trusted_proxy: None,
            unverified_ttl: Duration::from_secs(24 * 3600),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            // A press is a few hundred bytes; 1 KB/s is slower than any
            // phone that can load the app.
            min_body_rate: 1024,
            // Below the usual 1,024 open files, with room for the database
            // and the gateways.
            max_connections: 900,
            // Far more than the presses in flight at once on one server.
            reserved_connections: 64,
            // Fourteen addresses' worth would hold the 900: 64 is ten
            // browsers' six connections with room. A consulate behind one
            // address goes in `console_addresses`.
            connections_per_address: 64,
            console_addresses: Vec::new(),
            // A phone shows one alert's status at a time; a few for tabs
            // and reconnects that overlap.
            streams_per_device: 4,
            // A supervisor may keep the queue open in several tabs.
            streams_per_session: 8,
            help_attempts_per_caller_per_hour: 10,
            // Each press in flight holds a few KB (its request, its sealed
            // rows, its messages): 4,096 stay within tens of MB, and are
            // 8 group commits' worth.
            presses_in_flight: 4096,
            press_deadline: Duration::from_secs(5),
        }
    }
}
