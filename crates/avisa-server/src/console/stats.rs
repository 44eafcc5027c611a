//! Statistics for supervisors: alerts per day, time to acknowledge (median,
//! 90th percentile), outcomes, and per consulate for CIAM; as JSON, CSV, and
//! a server-drawn SVG chart (no chart library to ship).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use crate::extract::ApiQuery;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::{AuditAction, now_millis};

use super::StaffSession;
use crate::error::ApiResult;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize, ToSchema)]
pub struct StatsQuery {
    /// `YYYY-MM-DD` (UTC), inclusive; default: the 30 days ending with `to`.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive; default today.
    pub to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Day {
    pub date: String,
    pub alerts: usize,
}

#[derive(Serialize, ToSchema)]
pub struct PerConsulate {
    pub consulate_id: String,
    pub alerts: usize,
    pub acknowledged: usize,
    pub ack_median_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Stats {
    pub from: String,
    pub to: String,
    pub alerts: usize,
    pub cancelled: usize,
    pub acknowledged: usize,
    pub ack_median_seconds: Option<i64>,
    pub ack_p90_seconds: Option<i64>,
    pub days: Vec<Day>,
    pub outcomes: BTreeMap<String, usize>,
    /// CIAM only: every consulate.
    pub per_consulate: Vec<PerConsulate>,
    /// Each case of the period by its number, oldest first: what a report
    /// names (no personal data).
    pub cases: Vec<CaseLine>,
}

#[derive(Serialize, ToSchema)]
pub struct CaseLine {
    /// "LAX-2026-0042" (null for alerts from before case numbers).
    pub case_number: Option<String>,
    pub created_at: i64,
    /// Seconds from the alert to the case being taken; null if never.
    pub ack_seconds: Option<i64>,
    pub outcome: Option<String>,
    pub cancelled: bool,
}

fn date_of(ms: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The value at quantile `q` (nearest rank) of sorted values.
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

async fn compute(state: &AppState, who: &StaffSession, q: &StatsQuery) -> ApiResult<Stats> {
    who.require_supervisor()?;
    let today = now_millis().div_euclid(DAY_MS) * DAY_MS;
    let to = match q.to.as_deref() {
        Some(d) => super::queue::day_start(d, "to")?,
        None => today,
    } + DAY_MS;
    let from = match q.from.as_deref() {
        Some(d) => super::queue::day_start(d, "from")?,
        None => to - 30 * DAY_MS,
    };
    if from >= to || to - from > 366 * DAY_MS {
        return Err(avisa_core::Invalid::new(
            "from",
            "range_invalid",
            "from must be before to, within a year",
        )
        .into());
    }
    let rows = state
        .store
        .stat_rows(who.scope().as_deref(), from, to)
        .await?;
    let mut days: BTreeMap<String, usize> = BTreeMap::new();
    let mut day = from;
    while day < to {
        days.insert(date_of(day), 0);
        day += DAY_MS;
    }
    let mut outcomes = BTreeMap::new();
    let mut acks: Vec<i64> = Vec::new();
    let mut per: BTreeMap<String, (usize, Vec<i64>)> = BTreeMap::new();
    for r in &rows {
        *days.entry(date_of(r.created_at)).or_default() += 1;
        if let Some(o) = &r.outcome {
            *outcomes.entry(o.as_str().to_string()).or_default() += 1;
        }
        let entry = per
            .entry(r.consulate_id.clone().unwrap_or_else(|| "(none)".into()))
            .or_default();
        entry.0 += 1;
        if let Some(at) = r.acknowledged_at {
            let secs = (at - r.created_at) / 1000;
            acks.push(secs);
            entry.1.push(secs);
        }
    }
    acks.sort_unstable();
    who.audit(state, None, AuditAction::ReadStats, None).await?;
    Ok(Stats {
        from: date_of(from),
        to: date_of(to - DAY_MS),
        alerts: rows.len(),
        cancelled: rows.iter().filter(|r| r.cancelled).count(),
        acknowledged: acks.len(),
        ack_median_seconds: quantile(&acks, 0.5),
        ack_p90_seconds: quantile(&acks, 0.9),
        days: days
            .into_iter()
            .map(|(date, alerts)| Day { date, alerts })
            .collect(),
        outcomes,
        cases: rows
            .iter()
            .map(|r| CaseLine {
                case_number: r.case_number.clone(),
                created_at: r.created_at,
                ack_seconds: r.acknowledged_at.map(|at| (at - r.created_at) / 1000),
                outcome: r.outcome.map(|o| o.as_str().to_string()),
                cancelled: r.cancelled,
            })
            .collect(),
        per_consulate: if who.scope().is_none() {
            per.into_iter()
                .map(|(consulate_id, (alerts, mut secs))| {
                    secs.sort_unstable();
                    PerConsulate {
                        consulate_id,
                        alerts,
                        acknowledged: secs.len(),
                        ack_median_seconds: quantile(&secs, 0.5),
                    }
                })
                .collect()
        } else {
            Vec::new()
        },
    })
}

/// Statistics as JSON (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/console/stats", tag = "console", params(("from" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: the 30 days ending with to"), ("to" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: today")),
    responses((status = 200, body = Stats), (status = 403, body = crate::api::ErrorBody)))]
pub async fn json(
    State(state): State<AppState>,
    who: StaffSession,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    Ok(Json(compute(&state, &who, &q).await?))
}

/// Statistics as CSV: one line per day, then the totals.
#[utoipa::path(get, path = "/api/v1/console/stats.csv", tag = "console", params(("from" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: the 30 days ending with to"), ("to" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: today")),
    responses((status = 200, content_type = "text/csv")))]
pub async fn csv(
    State(state): State<AppState>,
    who: StaffSession,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<impl IntoResponse> {
    let s = compute(&state, &who, &q).await?;
    let mut out = String::from("date,alerts\n");
    for d in &s.days {
        out.push_str(&format!("{},{}\n", d.date, d.alerts));
    }
    let fmt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    out.push_str(&format!("\nmetric,value\nalerts,{}\ncancelled,{}\nacknowledged,{}\nack_median_seconds,{}\nack_p90_seconds,{}\n",
        s.alerts, s.cancelled, s.acknowledged, fmt(s.ack_median_seconds), fmt(s.ack_p90_seconds)));
    for (o, n) in &s.outcomes {
        out.push_str(&format!("outcome_{o},{n}\n"));
    }
    if !s.per_consulate.is_empty() {
        out.push_str("\nconsulate,alerts,acknowledged,ack_median_seconds\n");
        for p in &s.per_consulate {
            out.push_str(&format!(
                "{},{},{},{}\n",
                p.consulate_id,
                p.alerts,
                p.acknowledged,
                fmt(p.ack_median_seconds)
            ));
        }
    }
    out.push_str("\ncase,created_at_utc,ack_seconds,outcome,cancelled\n");
    for c in &s.cases {
        let created = time::OffsetDateTime::from_unix_timestamp(c.created_at.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{created},{},{},{}\n",
            c.case_number.as_deref().unwrap_or(""),
            fmt(c.ack_seconds),
            c.outcome.as_deref().unwrap_or(""),
            c.cancelled
        ));
    }
    let name = format!(
        "attachment; filename=\"avisa-stats-{}-{}.csv\"",
        s.from, s.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        out,
    ))
}

/// Alerts per day as an SVG bar chart.
#[utoipa::path(get, path = "/api/v1/console/stats.svg", tag = "console", params(("from" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: the 30 days ending with to"), ("to" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive; default: today")),
    responses((status = 200, content_type = "image/svg+xml")))]
pub async fn svg(
    State(state): State<AppState>,
    who: StaffSession,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<impl IntoResponse> {
    let s = compute(&state, &who, &q).await?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], chart(&s.days)))
}

/// Draws the days as bars with a labelled axis.
pub fn chart(days: &[Day]) -> String {
    let (w, h, left, bottom, top) = (720.0_f64, 240.0_f64, 36.0_f64, 28.0_f64, 12.0_f64);
    let max = days.iter().map(|d| d.alerts).max().unwrap_or(0).max(1) as f64;
    let n = days.len().max(1) as f64;
    let slot = (w - left - 8.0) / n;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Alertas por día / Alerts per day\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#444\"/><line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        h - bottom,
        h - bottom,
        w - 4.0,
        h - bottom,
        left - 4.0,
        top + 8.0,
        max as usize,
        left - 4.0,
        h - bottom
    );
    let label_every = (n / 10.0).ceil().max(1.0) as usize;
    for (i, d) in days.iter().enumerate() {
        let bar = (h - bottom - top) * d.alerts as f64 / max;
        let x = left + 2.0 + slot * i as f64;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"#b00020\"><title>{}: {}</title></rect>",
            h - bottom - bar, (slot - 2.0).max(1.0), d.date, d.alerts
        ));
        if i % label_every == 0 {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + slot / 2.0,
                h - 10.0,
                &d.date[5..]
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.9), Some(90));
        assert_eq!(quantile(&[7], 0.9), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_chart_has_a_bar_per_day() {
        let days = vec![
            Day {
                date: "2026-11-20".into(),
                alerts: 3,
            },
            Day {
                date: "2026-11-21".into(),
                alerts: 0,
            },
        ];
        let svg = chart(&days);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("2026-11-20: 3"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
