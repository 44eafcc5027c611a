//! Every state and kind Avisa stores, as enums: one spelling each, shared
//! by the database (a `TEXT` column), the JSON API and the console.
//!
//! Each parses with [`std::str::FromStr`], which refuses an unknown value
//! instead of guessing a default, and (with the `sqlx` feature, which the
//! store turns on) reads and writes itself as text on either backend.

/// A stored word that is not one of its type's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {what}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        // Written by hand: utoipa's derive does not see a rename that
        // comes through a macro, and would document the Rust names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its one spelling, in the database and the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::kinds::UnknownValue;
            fn from_str(s: &str) -> Result<Self, $crate::kinds::UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::kinds::UnknownValue { what: $what, value: other.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}

pub(crate) use text_enum;

text_enum! {
    /// Where an outbox message stands.
    OutboxStatus ("message status") {
        Queued = "queued",
        /// Claimed by a dispatcher (shown to people as queued).
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Failed = "failed",
        Expired = "expired",
        Withdrawn = "withdrawn",
    }
}

impl OutboxStatus {
    /// As the phone and the console show it: a message being handed to a
    /// gateway is still queued.
    pub fn public(self) -> OutboxStatus {
        match self {
            OutboxStatus::Sending => OutboxStatus::Queued,
            other => other,
        }
    }
}

text_enum! {
    /// How a message reaches its recipient. Each gateway declares the
    /// channels it carries; a message waits for, and fails over between,
    /// the gateways of its own channel only.
    Channel ("message channel") {
        /// A text message to a phone number.
        Sms = "sms",
    }
}

text_enum! {
    /// Whether an alert still stands.
    AlertState ("alert state") {
        Active = "active",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// What raised an alert.
    AlertSource ("alert source") {
        /// The button in the phone app.
        App = "app",
        /// The keyword by SMS, or "AYUDA <number> <PIN>" from another phone.
        Sms = "sms",
        /// The voice line: number and PIN dialled from any phone.
        Call = "call",
        /// A check-in timer whose deadline passed without a check-out.
        Checkin = "checkin",
    }
}

text_enum! {
    /// Where an alert's routing landed.
    Coverage ("coverage") {
        Nearest = "nearest",
        HomeCounty = "home_county",
        HomeState = "home_state",
        /// A place no office covers (Guam, the Northern Marianas, American
        /// Samoa): the 24-hour centre, CIAM, has it.
        Ciam = "ciam",
        Outside = "outside",
        None = "none",
    }
}

text_enum! {
    /// Who a message is for.
    MessageKind ("message kind") {
        Contact = "contact",
        /// The person's own phone.
        SelfPhone = "self",
        /// A consulate's duty phone.
        Consulate = "consulate",
        Verification = "verification",
        Reply = "reply",
    }
}

text_enum! {
    /// Where a check-in timer stands.
    CheckinState ("check-in state") {
        /// Waiting for the person to check out before the deadline.
        Scheduled = "scheduled",
        CheckedOut = "checked_out",
        /// The deadline passed without a check-out: the alert was raised.
        Fired = "fired",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// Why a message exists.
    Purpose ("message purpose") {
        Alert = "alert",
        /// "I'm safe", after a cancel.
        Safe = "safe",
        Code = "code",
        Reply = "reply",
        /// A follow-up about an active alert: "nueva ubicación" to a
        /// contact who chose such updates, an escalation to the duty phones.
        Update = "update",
    }
}

text_enum! {
    /// Where a consulate's case stands.
    CaseState ("case state") {
        New = "new",
        Acknowledged = "acknowledged",
        Resolved = "resolved",
    }
}

text_enum! {
    /// Whom an officer called about a case.
    CallWith ("call with") {
        Person = "person",
        Contact = "contact",
        Facility = "facility",
        Ice = "ice",
        Lawyer = "lawyer",
        Other = "other",
    }
}

text_enum! {
    /// How a call about a case went.
    CallResult ("call result") {
        Spoke = "spoke",
        NoAnswer = "no_answer",
        Voicemail = "voicemail",
        Busy = "busy",
        WrongNumber = "wrong_number",
    }
}

text_enum! {
    /// How a case ended.
    Outcome ("outcome") {
        FalseAlarm = "false_alarm",
        PersonSafe = "person_safe",
        Detained = "detained",
        Released = "released",
        NoContact = "no_contact",
        Other = "other",
    }
}

text_enum! {
    /// A staff member's role in the console.
    Role ("role") {
        Operator = "operator",
        Supervisor = "supervisor",
        Admin = "admin",
    }
}

text_enum! {
    /// An entry of a case's timeline.
    CaseEventKind ("case event") {
        Acknowledged = "acknowledged",
        Assigned = "assigned",
        Note = "note",
        /// A call an officer made, with whom and how it went.
        Call = "call",
        Resolved = "resolved",
        Reopened = "reopened",
        Escalated = "escalated",
        /// Still nobody took it at the second threshold: the duty phones
        /// are told again.
        EscalatedAgain = "escalated_again",
        /// The person "cancelled" with the duress PIN: forced, the alert stands.
        Duress = "duress",
        /// The person stopped sharing their location, with their PIN.
        SharingStopped = "sharing_stopped",
        /// "Stopped" sharing with the duress PIN: the phone stops, the
        /// server would still take points, and the consulate is told.
        SharingForced = "sharing_forced",
        /// A session unlocked with the duress PIN changed something that
        /// protects the person (`detail`: what, e.g. `cancel_pin`,
        /// `contacts`): answered as done, with no effect on alerts.
        DuressChange = "duress_change",
        /// Raised past the person's alert limit or SMS budget: the
        /// consulate has it, contacts already messaged were not again.
        LimitReached = "limit_reached",
    }
}

text_enum! {
    /// What a staff member did, in the audit log.
    AuditAction ("audit action") {
        Login = "login",
        LoginFailed = "login_failed",
        Logout = "logout",
        /// Opened an alert.
        View = "view",
        Acknowledge = "acknowledge",
        Assign = "assign",
        Note = "note",
        /// Logged a call on the case.
        Call = "call",
        Resolve = "resolve",
        Reopen = "reopen",
        ReadAudit = "read_audit",
        ReadStats = "read_stats",
        /// Asked for, or tried to change, an alert outside their scope (it
        /// was answered 404, as a missing one).
        Denied = "denied",
        /// Listed past or filtered cases (the live queue itself is the
        /// shift's standing screen, polled every few seconds, and is not).
        Search = "search",
        /// Avisa itself escalated an unacknowledged alert (`detail`: the
        /// number of duty SMS written with it).
        Escalate = "escalate",
    }
}

/// The office id of Mexico's 24-hour centre: its staff see every
/// consulate's alerts, and unacknowledged alerts escalate to it.
pub const CIAM: &str = "ciam";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_unknown_ones_fail() {
        for s in OutboxStatus::ALL {
            assert_eq!(s.as_str().parse::<OutboxStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
        }
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>(), Ok(*k));
        }
        assert_eq!(
            "assignd".parse::<CaseEventKind>(),
            Err(UnknownValue {
                what: "case event",
                value: "assignd".into()
            })
        );
        assert!("".parse::<Role>().is_err());
        assert!("Active".parse::<AlertState>().is_err(), "one spelling only");
    }
}
