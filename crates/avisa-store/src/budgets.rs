//! SMS budgets: units counted per fixed window in the database, so a limit
//! holds under any number of parallel requests and across instances.
//!
//! A budget's key names what it counts for; numbers and addresses appear
//! only as blind indexes ([`Budget::number`], [`Budget::address`]).

use std::net::IpAddr;

use avisa_core::{PhoneNumber, UnixMillis};

use crate::db::db_run;
use crate::{Store, StoreError};

/// Units to take from budgets, all or none, in one window (the day's for a
/// person's alert SMS: the hour's budget names its hour in its key). Taken
/// where the alert is written, in the group commit
/// ([`crate::NewAlert::budget`]), so a press costs no commit of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUnits {
    pub budgets: Vec<Budget>,
    pub window_start: UnixMillis,
    pub units: i64,
}

/// One budget: what it counts for, and how many units a window holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    key: String,
    pub limit: i64,
    /// Said in logs and metrics ("number", "address", "country", "all").
    pub kind: &'static str,
}

impl Budget {
    /// Codes to one destination number.
    pub fn number(store: &Store, phone: &PhoneNumber, limit: i64) -> Budget {
        Budget {
            key: format!("number:{}", hex(&store.phone_index(phone))),
            limit,
            kind: "number",
        }
    }

    /// Codes asked for by one client address.
    pub fn address(store: &Store, addr: IpAddr, limit: i64) -> Budget {
        let bytes = match addr {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        Budget {
            key: format!(
                "address:{}",
                hex(&store.vault.blind_index("address", &bytes))
            ),
            limit,
            kind: "address",
        }
    }

    /// Codes to one country.
    pub fn country(code: &str, limit: i64) -> Budget {
        Budget {
            key: format!("country:{code}"),
            limit,
            kind: "country",
        }
    }

    /// Anything else counted per subject (an inbound sender, a provider's
    /// message id): the subject only as a blind index under `kind`.
    pub fn of(store: &Store, kind: &'static str, subject: &[u8], limit: i64) -> Budget {
        Budget {
            key: format!("{kind}:{}", hex(&store.vault.blind_index(kind, subject))),
            limit,
            kind,
        }
    }

    /// Counted per phone number (an inbound sender, a caller): the number
    /// only as a blind index under `kind`, one of [`NUMBER_KINDS`], so a
    /// deleted person's rows can be found and go with them.
    pub fn of_number(store: &Store, kind: &'static str, phone: &PhoneNumber, limit: i64) -> Budget {
        debug_assert!(
            NUMBER_KINDS.contains(&kind),
            "{kind} is not listed in NUMBER_KINDS"
        );
        Budget::of(store, kind, phone.as_str().as_bytes(), limit)
    }

    /// A person's alert SMS in the hour that starts at `hour`.
    pub fn person_hour(store: &Store, person: uuid::Uuid, hour: UnixMillis, limit: i64) -> Budget {
        let subject = [person.as_bytes().as_slice(), &hour.to_be_bytes()].concat();
        Budget::of(store, "person-sms-hour", &subject, limit)
    }

    /// A person's alert SMS in a day (the window says which).
    pub fn person_day(store: &Store, person: uuid::Uuid, limit: i64) -> Budget {
        Budget::of(store, "person-sms-day", person.as_bytes(), limit)
    }

    /// Every code, everywhere.
    pub fn all(limit: i64) -> Budget {
        Budget {
            key: "all".into(),
            limit,
            kind: "all",
        }
    }
}

/// The kinds of budget counted per phone number ([`Budget::of_number`]).
pub const NUMBER_KINDS: &[&str] = &[
    "help-caller",
    "optout-confirm",
    "help-reply",
    "inbound-miss",
    "reply",
];

/// How far back budget windows are kept: the purge job forgets older ones
/// (the longest window is a day), and a deleted person's hourly rows are
/// looked for that far.
pub const BUDGET_WINDOWS_KEPT_MS: i64 = 2 * 24 * 3_600_000;

/// The start of the fixed window of `length` ms that holds `now`, and the
/// seconds left in it (rounded up: the true wait, never a second early).
pub fn window(now: UnixMillis, length: i64) -> (UnixMillis, u64) {
    let start = now - now.rem_euclid(length);
    (start, ((start + length - now + 999) / 1000) as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Takes one unit from every budget for the window that starts at
    /// `window_start`, all or none. Returns the first budget found spent
    /// (nothing is taken then), or None when every one gave its unit.
    pub async fn take_budgets<'a>(
        &self,
        budgets: &'a [Budget],
        window_start: UnixMillis,
    ) -> Result<Option<&'a Budget>, StoreError> {
        self.take_budget_units(budgets, window_start, 1).await
    }

    /// Takes `units` from every budget for the window that starts at
    /// `window_start`, all or none (as [`Store::take_budgets`]).
    /// [`Store::take_budget_units`] inside a transaction (the group
    /// commit's): all or none, a budget taken before one that is spent
    /// given back in the same transaction. Some(index of the spent one).
    pub(crate) async fn take_units_in(
        tx: &mut crate::db::Tx,
        units: &BudgetUnits,
    ) -> Result<Option<usize>, StoreError> {
        let take = "INSERT INTO sms_budgets (key, window_start, used) VALUES ($1, $2, $4) \
                    ON CONFLICT (key, window_start) DO UPDATE SET used = sms_budgets.used + $4 \
                    WHERE sms_budgets.used + $4 <= $3 RETURNING used";
        let give_back =
            "UPDATE sms_budgets SET used = used - $3 WHERE key = $1 AND window_start = $2";
        if units.units <= 0 {
            return Ok(None);
        }
        if let Some(i) = units.budgets.iter().position(|b| b.limit < units.units) {
            return Ok(Some(i));
        }
        for (i, budget) in units.budgets.iter().enumerate() {
            let used: Option<i64> = db_run!(&mut *tx, |t| {
                sqlx::query_scalar(take)
                    .bind(&budget.key)
                    .bind(units.window_start)
                    .bind(budget.limit)
                    .bind(units.units)
                    .fetch_optional(&mut **t)
                    .await?
            });
            if used.is_none() {
                for taken in &units.budgets[..i] {
                    db_run!(&mut *tx, |t| {
                        sqlx::query(give_back)
                            .bind(&taken.key)
                            .bind(units.window_start)
                            .bind(units.units)
                            .execute(&mut **t)
                            .await?;
                    });
                }
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    pub async fn take_budget_units<'a>(
        &self,
        budgets: &'a [Budget],
        window_start: UnixMillis,
        units: i64,
    ) -> Result<Option<&'a Budget>, StoreError> {
        let sql = "INSERT INTO sms_budgets (key, window_start, used) VALUES ($1, $2, $4) \
                   ON CONFLICT (key, window_start) DO UPDATE SET used = sms_budgets.used + $4 \
                   WHERE sms_budgets.used + $4 <= $3 RETURNING used";
        if units <= 0 {
            return Ok(None);
        }
        if let Some(spent) = budgets.iter().find(|b| b.limit < units) {
            return Ok(Some(spent));
        }
        let mut tx = self.db.begin().await?;
        for budget in budgets {
            let used: Option<i64> = db_run!(&mut tx, |t| {
                sqlx::query_scalar(sql)
                    .bind(&budget.key)
                    .bind(window_start)
                    .bind(budget.limit)
                    .bind(units)
                    .fetch_optional(&mut **t)
                    .await?
            });
            if used.is_none() {
                // Dropped without a commit: nothing was taken.
                return Ok(Some(budget));
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Removes, in `tx`, every budget row that names the person or their
    /// number: a deleted person's number must not be confirmable by
    /// guessing it against the keys (`number:` and [`NUMBER_KINDS`]), nor
    /// their id against the alert SMS budgets of the windows still kept.
    pub(crate) async fn forget_budgets_of(
        &self,
        tx: &mut crate::db::Tx,
        person: uuid::Uuid,
        phone: &PhoneNumber,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        const HOUR_MS: i64 = 3_600_000;
        let mut keys = vec![
            Budget::number(self, phone, 0).key,
            Budget::person_day(self, person, 0).key,
        ];
        keys.extend(
            NUMBER_KINDS
                .iter()
                .map(|kind| Budget::of_number(self, kind, phone, 0).key),
        );
        let (hour, _) = window(now, HOUR_MS);
        keys.extend(
            (0..=BUDGET_WINDOWS_KEPT_MS / HOUR_MS)
                .map(|h| Budget::person_hour(self, person, hour - h * HOUR_MS, 0).key),
        );
        let mut removed = 0;
        for key in &keys {
            removed += db_run!(&mut *tx, |t| {
                sqlx::query("DELETE FROM sms_budgets WHERE key = $1")
                    .bind(key)
                    .execute(&mut **t)
                    .await?
                    .rows_affected()
            });
        }
        Ok(removed)
    }

    /// Forgets budget windows that ended before `before`, and devices never
    /// verified that were registered before `unverified_before`. Returns
    /// (windows, devices) removed.
    pub async fn purge_budgets_and_unverified(
        &self,
        before: UnixMillis,
        unverified_before: UnixMillis,
    ) -> Result<(u64, u64), StoreError> {
        Ok(db_run!(self.db.writer(), |pool| {
            let windows = sqlx::query("DELETE FROM sms_budgets WHERE window_start < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected();
            let devices =
                sqlx::query("DELETE FROM devices WHERE verified_at IS NULL AND created_at < $1")
                    .bind(unverified_before)
                    .execute(pool)
                    .await?
                    .rows_affected();
            (windows, devices)
        }))
    }
}
