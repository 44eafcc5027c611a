//! The console's SQL, shared by both backends like `sql.rs`.

pub(crate) const CASE_COLUMNS: &str = "case_state, assigned_to, acknowledged_at, acknowledged_by, \
     escalated_at, resolved_at, outcome, outcome_detail_enc";
pub(crate) const ALERT_COLUMNS_A: &str = "a.id, a.person_id, a.device_id, a.idempotency_key, \
     a.source, a.practice, a.state, a.consulate_id, a.coverage, a.created_at, a.cancelled_at, \
     a.updated_at";
pub(crate) const STAFF_COLUMNS: &str = "id, username, password_hash, consulate_id, role, disabled, \
     failed_logins, locked_until, created_at, updated_at";
pub(crate) const SESSION_COLUMNS: &str =
    "token_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at";
pub(crate) const EVENT_COLUMNS: &str = "id, alert_id, at, staff_id, kind, detail_enc";
pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, staff_id, staff_username, consulate_id, alert_id, action, detail";

/// The [`ConsoleBackend`] implementation shared by both databases; used
/// inside the module that instantiated `shared_backend!` (it reuses its row
/// decoders).
macro_rules! console_backend {
    ($ty:ty, $db:ty, $row:ty) => {
        fn staff_from(r: &$row) -> Result<StaffRow, sqlx::Error> {
            Ok(StaffRow {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
                password_hash: r.try_get("password_hash")?,
                consulate_id: r.try_get("consulate_id")?,
                role: r.try_get("role")?,
                disabled: r.try_get("disabled")?,
                failed_logins: r.try_get("failed_logins")?,
                locked_until: r.try_get("locked_until")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn session_from(r: &$row) -> Result<SessionRow, sqlx::Error> {
            Ok(SessionRow {
                token_hash: r.try_get("token_hash")?,
                staff_id: r.try_get("staff_id")?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: r.try_get("created_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        }

        fn case_from(r: &$row) -> Result<CaseRow, sqlx::Error> {
            Ok(CaseRow {
                case_state: r.try_get("case_state")?,
                assigned_to: r.try_get("assigned_to")?,
                acknowledged_at: r.try_get("acknowledged_at")?,
                acknowledged_by: r.try_get("acknowledged_by")?,
                escalated_at: r.try_get("escalated_at")?,
                resolved_at: r.try_get("resolved_at")?,
                outcome: r.try_get("outcome")?,
                outcome_detail_enc: r.try_get("outcome_detail_enc")?,
            })
        }

        fn event_from(r: &$row) -> Result<EventRow, sqlx::Error> {
            Ok(EventRow {
                id: r.try_get("id")?,
                alert_id: r.try_get("alert_id")?,
                at: r.try_get("at")?,
                staff_id: r.try_get("staff_id")?,
                kind: r.try_get("kind")?,
                detail_enc: r.try_get("detail_enc")?,
            })
        }

        fn audit_from(r: &$row) -> Result<AuditRow, sqlx::Error> {
            Ok(AuditRow {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                staff_id: r.try_get("staff_id")?,
                staff_username: r.try_get("staff_username")?,
                consulate_id: r.try_get("consulate_id")?,
                alert_id: r.try_get("alert_id")?,
                action: r.try_get("action")?,
                detail: r.try_get("detail")?,
            })
        }

        async fn insert_event<'c, E>(exec: &mut E, e: &EventRow) -> Result<(), sqlx::Error>
        where
            for<'e> &'e mut E: sqlx::Executor<'e, Database = $db>,
        {
            q!("INSERT INTO alert_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(e.id)
                .bind(e.alert_id)
                .bind(e.at)
                .bind(e.staff_id)
                .bind(&e.kind)
                .bind(&e.detail_enc)
                .execute(&mut *exec)
                .await?;
            Ok(())
        }

        #[async_trait]
        impl ConsoleBackend for $ty {
            async fn staff_insert(&self, s: &StaffRow) -> Result<(), StoreError> {
                let done = q!("INSERT INTO staff ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                               ON CONFLICT (username) DO NOTHING")
                .bind(s.id)
                .bind(&s.username)
                .bind(&s.password_hash)
                .bind(&s.consulate_id)
                .bind(&s.role)
                .bind(s.disabled)
                .bind(s.failed_logins)
                .bind(s.locked_until)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(self.writer())
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                Ok(())
            }

            async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRow>, StoreError> {
                let row = q!("SELECT {STAFF_COLUMNS} FROM staff WHERE username = $1")
                    .bind(username)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(staff_from).transpose()?)
            }

            async fn staff_by_id(&self, id: Uuid) -> Result<Option<StaffRow>, StoreError> {
                let row = q!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(staff_from).transpose()?)
            }

            async fn staff_all(&self) -> Result<Vec<StaffRow>, StoreError> {
                let rows = q!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY consulate_id, username")
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.iter().map(staff_from).collect::<Result<_, _>>()?)
            }

            async fn staff_set_password(&self, id: Uuid, hash: &str, at: UnixMillis) -> Result<(), StoreError> {
                sqlx::query("UPDATE staff SET password_hash = $1, failed_logins = 0, locked_until = NULL, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind(at)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn staff_set_disabled(&self, id: Uuid, disabled: bool, at: UnixMillis) -> Result<(), StoreError> {
                sqlx::query("UPDATE staff SET disabled = $1, updated_at = $2 WHERE id = $3")
                    .bind(disabled)
                    .bind(at)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn staff_login_failed(&self, id: Uuid, max: i32, lock_until: UnixMillis) -> Result<(i32, Option<UnixMillis>), StoreError> {
                let row = sqlx::query(
                    "UPDATE staff SET \
                       locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END, \
                       failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END \
                     WHERE id = $3 RETURNING failed_logins, locked_until",
                )
                .bind(max)
                .bind(lock_until)
                .bind(id)
                .fetch_one(self.writer())
                .await?;
                Ok((row.try_get("failed_logins")?, row.try_get("locked_until")?))
            }

            async fn staff_login_ok(&self, id: Uuid) -> Result<(), StoreError> {
                sqlx::query("UPDATE staff SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn session_insert(&self, s: &SessionRow) -> Result<(), StoreError> {
                q!("INSERT INTO staff_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&s.token_hash)
                    .bind(s.staff_id)
                    .bind(&s.csrf_token)
                    .bind(s.created_at)
                    .bind(s.last_seen_at)
                    .bind(s.expires_at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn session_get(&self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
                let row = q!("SELECT {SESSION_COLUMNS} FROM staff_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(session_from).transpose()?)
            }

            async fn session_touch(&self, token_hash: &[u8], at: UnixMillis, expires_at: UnixMillis) -> Result<(), StoreError> {
                sqlx::query("UPDATE staff_sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3")
                    .bind(at)
                    .bind(expires_at)
                    .bind(token_hash)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn session_delete(&self, token_hash: &[u8]) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn sessions_delete_for(&self, staff_id: Uuid) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
                    .bind(staff_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn queue(&self, f: &QueueFilter) -> Result<Vec<QueueRow>, StoreError> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ALERT_COLUMNS_A}, a.{}, p.name_enc AS person_name_enc, \
                       (SELECT l.id FROM alert_locations l WHERE l.alert_id = a.id \
                          ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS loc_id, \
                       (SELECT l.location_enc FROM alert_locations l WHERE l.alert_id = a.id \
                          ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS loc_enc, \
                       (SELECT l.created_at FROM alert_locations l WHERE l.alert_id = a.id \
                          ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS loc_at \
                     FROM alerts a JOIN people p ON p.id = a.person_id WHERE a.practice = ",
                    CASE_COLUMNS.replace(", ", ", a.")
                ));
                b.push_bind(false);
                if let Some(c) = &f.consulate_id {
                    b.push(" AND a.consulate_id = ").push_bind(c.clone());
                }
                match f.state.as_deref() {
                    Some("new") => { b.push(" AND a.case_state = 'new' AND a.state = 'active'"); }
                    Some("acknowledged") => { b.push(" AND a.case_state = 'acknowledged' AND a.state = 'active'"); }
                    Some("resolved") => { b.push(" AND a.case_state = 'resolved'"); }
                    Some("cancelled") => { b.push(" AND a.state = 'cancelled'"); }
                    _ => { b.push(" AND a.case_state <> 'resolved'"); }
                }
                if let Some(from) = f.from {
                    b.push(" AND a.created_at >= ").push_bind(from);
                }
                if let Some(to) = f.to {
                    b.push(" AND a.created_at < ").push_bind(to);
                }
                // Urgency: unacknowledged first, then the oldest first.
                b.push(" ORDER BY CASE WHEN a.case_state = 'new' THEN 0 ELSE 1 END, a.created_at, a.id LIMIT ")
                    .push_bind(f.limit);
                let rows = b.build().persistent(false).fetch_all(self.reader()).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let loc_id: Option<Uuid> = r.try_get("loc_id")?;
                    let latest_location = match loc_id {
                        Some(id) => Some(LocationRow {
                            id,
                            alert_id: r.try_get("id")?,
                            location_enc: r.try_get("loc_enc")?,
                            created_at: r.try_get("loc_at")?,
                        }),
                        None => None,
                    };
                    out.push(QueueRow {
                        alert: alert_from(r)?,
                        case: case_from(r)?,
                        person_name_enc: r.try_get("person_name_enc")?,
                        latest_location,
                    });
                }
                Ok(out)
            }

            async fn case_get(&self, alert_id: Uuid) -> Result<Option<CaseRow>, StoreError> {
                let row = q!("SELECT {CASE_COLUMNS} FROM alerts WHERE id = $1")
                    .bind(alert_id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(case_from).transpose()?)
            }

            async fn delivery_counts(&self, alert_ids: &[Uuid]) -> Result<Vec<(Uuid, String, i64)>, StoreError> {
                if alert_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "SELECT alert_id, status, COUNT(*) AS n FROM outbox WHERE purpose = 'alert' AND alert_id IN (",
                );
                let mut list = b.separated(", ");
                for id in alert_ids {
                    list.push_bind(*id);
                }
                b.push(") GROUP BY alert_id, status");
                let rows = b.build().persistent(false).fetch_all(self.reader()).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push((r.try_get("alert_id")?, r.try_get("status")?, r.try_get("n")?));
                }
                Ok(out)
            }

            async fn alert_trail(&self, alert_id: Uuid) -> Result<Vec<LocationRow>, StoreError> {
                let rows = q!("SELECT {LOCATION_COLUMNS} FROM alert_locations WHERE alert_id = $1 ORDER BY created_at, id")
                    .bind(alert_id)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.iter().map(location_from).collect::<Result<_, _>>()?)
            }

            async fn case_change(&self, alert_id: Uuid, change: &CaseChange, event: &EventRow) -> Result<bool, StoreError> {
                let mut tx = self.writer().begin().await?;
                let applied = match change {
                    CaseChange::Acknowledge { staff } => sqlx::query(
                        "UPDATE alerts SET case_state = 'acknowledged', acknowledged_at = $1, acknowledged_by = $2, \
                         assigned_to = COALESCE(assigned_to, $2) WHERE id = $3 AND case_state = 'new'",
                    )
                    .bind(event.at)
                    .bind(staff)
                    .bind(alert_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    CaseChange::Assign { staff } => sqlx::query(
                        "UPDATE alerts SET assigned_to = $1 WHERE id = $2 AND case_state <> 'resolved'",
                    )
                    .bind(staff)
                    .bind(alert_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    CaseChange::Resolve { outcome, detail_enc } => sqlx::query(
                        "UPDATE alerts SET case_state = 'resolved', resolved_at = $1, outcome = $2, \
                         outcome_detail_enc = $3 WHERE id = $4 AND case_state <> 'resolved'",
                    )
                    .bind(event.at)
                    .bind(outcome)
                    .bind(detail_enc)
                    .bind(alert_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    CaseChange::Reopen => sqlx::query(
                        "UPDATE alerts SET case_state = CASE WHEN acknowledged_at IS NULL THEN 'new' ELSE 'acknowledged' END, \
                         resolved_at = NULL, outcome = NULL, outcome_detail_enc = NULL \
                         WHERE id = $1 AND case_state = 'resolved'",
                    )
                    .bind(alert_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    CaseChange::Note => 1,
                };
                if applied != 1 {
                    return Ok(false);
                }
                insert_event(&mut *tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn events(&self, alert_id: Uuid) -> Result<Vec<EventRow>, StoreError> {
                let rows = q!("SELECT {EVENT_COLUMNS} FROM alert_events WHERE alert_id = $1 ORDER BY at, id")
                    .bind(alert_id)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.iter().map(event_from).collect::<Result<_, _>>()?)
            }

            async fn escalate_due(&self, before: UnixMillis, at: UnixMillis) -> Result<Vec<Uuid>, StoreError> {
                let mut tx = self.writer().begin().await?;
                let rows = sqlx::query(
                    "UPDATE alerts SET escalated_at = $1 WHERE case_state = 'new' AND escalated_at IS NULL \
                     AND state = 'active' AND practice = $2 AND created_at <= $3 RETURNING id",
                )
                .bind(at)
                .bind(false)
                .bind(before)
                .fetch_all(&mut *tx)
                .await?;
                let mut ids = Vec::with_capacity(rows.len());
                for r in &rows {
                    let id: Uuid = r.try_get("id")?;
                    insert_event(
                        &mut *tx,
                        &EventRow { id: Uuid::now_v7(), alert_id: id, at, staff_id: None, kind: "escalated".into(), detail_enc: None },
                    )
                    .await?;
                    ids.push(id);
                }
                tx.commit().await?;
                Ok(ids)
            }

            async fn audit_insert(&self, a: &AuditRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO audit_log (at, staff_id, staff_username, consulate_id, alert_id, action, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(a.at)
                .bind(a.staff_id)
                .bind(&a.staff_username)
                .bind(&a.consulate_id)
                .bind(a.alert_id)
                .bind(&a.action)
                .bind(&a.detail)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn audit_list(&self, alert_id: Option<Uuid>, consulate_id: Option<&str>, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
                if let Some(id) = alert_id {
                    b.push(" AND alert_id = ").push_bind(id);
                }
                if let Some(c) = consulate_id {
                    b.push(" AND consulate_id = ").push_bind(c.to_string());
                }
                b.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                let rows = b.build().persistent(false).fetch_all(self.reader()).await?;
                Ok(rows.iter().map(audit_from).collect::<Result<_, _>>()?)
            }

            async fn stats_rows(&self, consulate_id: Option<&str>, from: UnixMillis, to: UnixMillis) -> Result<Vec<(AlertRow, CaseRow)>, StoreError> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ALERT_COLUMNS_A}, a.{} FROM alerts a WHERE a.practice = ",
                    CASE_COLUMNS.replace(", ", ", a.")
                ));
                b.push_bind(false);
                b.push(" AND a.created_at >= ").push_bind(from);
                b.push(" AND a.created_at < ").push_bind(to);
                if let Some(c) = consulate_id {
                    b.push(" AND a.consulate_id = ").push_bind(c.to_string());
                }
                b.push(" ORDER BY a.created_at");
                let rows = b.build().persistent(false).fetch_all(self.reader()).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push((alert_from(r)?, case_from(r)?));
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use console_backend;
