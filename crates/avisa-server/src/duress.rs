//! A session unlocked with a duress PIN: it looks and answers exactly as a
//! real one, and nothing it changes weakens the person.
//!
//! Whoever forced the duress PIN out of the person holds the phone. Every
//! change such a session makes to what protects the person is answered as
//! done, reads back as done on that session, and takes no effect on the
//! alert path:
//!
//! - a **cancel PIN** it sets becomes the duress PIN (the PIN it gave stops
//!   working, as after a real change), so a cancel with it is a forced one;
//! - a **duress PIN** it sets becomes a second duress PIN
//!   (`people.decoy_hash`), and comparing it with the real PIN is no oracle:
//!   it is compared only with what that session itself knows;
//! - the **profile** (name, home state, keyword, language) and the
//!   **contacts** it writes go to a view of its own ([`View`], sealed with
//!   the person's key), which duress sessions read back and alerts never
//!   read: every contact keeps its real number and message for alerts, and
//!   the SMS keyword still raises the alert;
//! - the **locator details** (legal name, birth, A-number) are never shown
//!   to such a session, which reads back only what it wrote itself (none at
//!   first), and what it writes goes to the view: the real ones still go to
//!   the contacts the person chose;
//! - check-ins and "delete my data" take a PIN each time, and a duress PIN
//!   there already acts out of sight (see `api/checkins.rs`, `api/profile.rs`).
//!
//! Each attempt is put on the timeline of the person's active alerts
//! (`duress_change`), so the consulate sees what was tried. A later save of
//! the profile with the real PIN drops the view and the second duress PIN:
//! the person has their phone back.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use avisa_core::{Language, PhoneNumber, now_millis};
use avisa_store::{Contact, ContactInput, Profile};

use crate::state::AppState;
use avisa_store::StoreError;

/// What duress sessions read back instead of the real profile and contacts.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct View {
    /// The profile as such a session last wrote it; None: the real one.
    #[serde(default)]
    pub profile: Option<ViewProfile>,
    /// The contacts as such sessions left them; None: the real ones.
    #[serde(default)]
    pub contacts: Option<Vec<ViewContact>>,
    /// The locator details as such sessions wrote them (never the real
    /// ones: whoever forced the PIN learns nothing of them).
    #[serde(default)]
    pub locator: Option<avisa_core::locator::Locator>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ViewProfile {
    pub name: Option<String>,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
    pub keyword: Option<String>,
    pub language: Language,
    #[serde(default)]
    pub name_at_end: bool,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ViewContact {
    pub id: Uuid,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub message: String,
    pub language: Language,
    pub location_updates: bool,
    #[serde(default)]
    pub locator: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Contact> for ViewContact {
    fn from(c: &Contact) -> Self {
        ViewContact {
            id: c.id,
            name: c.name.clone(),
            phone: c.phone.as_str().to_string(),
            message: c.message.clone(),
            language: c.language,
            location_updates: c.location_updates,
            locator: c.locator,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl ViewContact {
    pub fn new(input: &ContactInput, id: Uuid, now: i64) -> Self {
        ViewContact {
            id,
            name: input.name.clone(),
            phone: input.phone.as_str().to_string(),
            message: input.message.clone(),
            language: input.language,
            location_updates: input.location_updates,
            locator: input.locator,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn contact(&self) -> Contact {
        Contact {
            id: self.id,
            name: self.name.clone(),
            // Written from a parsed number by this module only.
            phone: PhoneNumber::from_e164_unchecked(self.phone.clone()),
            message: self.message.clone(),
            language: self.language,
            location_updates: self.location_updates,
            locator: self.locator,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl From<&Profile> for ViewProfile {
    fn from(p: &Profile) -> Self {
        ViewProfile {
            name: p.name.clone(),
            home_state: p.home_state.clone(),
            home_county: p.home_county.clone(),
            keyword: p.keyword.clone(),
            language: p.language,
            name_at_end: p.name_at_end,
        }
    }
}

impl From<&ViewProfile> for Profile {
    fn from(p: &ViewProfile) -> Self {
        Profile {
            name: p.name.clone(),
            home_state: p.home_state.clone(),
            home_county: p.home_county.clone(),
            keyword: p.keyword.clone(),
            language: p.language,
            name_at_end: p.name_at_end,
        }
    }
}

/// The person's view for duress sessions (empty when none wrote yet).
pub async fn load(state: &AppState, person_id: Uuid) -> Result<View, StoreError> {
    Ok(match state.store.decoy_view(person_id).await? {
        // A view that no longer reads (a format from another version) is
        // started again rather than refused: the session must look real.
        Some(text) => serde_json::from_str(&text).unwrap_or_default(),
        None => View::default(),
    })
}

pub async fn save(state: &AppState, person_id: Uuid, view: &View) -> anyhow::Result<()> {
    let text = serde_json::to_string(view)?;
    state.store.set_decoy_view(person_id, Some(&text)).await?;
    Ok(())
}

/// The person's profile as a duress session sees it.
pub fn seen_profile(view: &View, person: &avisa_store::Person) -> avisa_store::Person {
    let mut seen = person.clone();
    if let Some(p) = &view.profile {
        seen.profile = p.into();
    }
    seen
}

/// The contacts as a duress session sees them (starting from the real ones).
pub async fn seen_contacts(
    state: &AppState,
    view: &View,
    person_id: Uuid,
) -> Result<Vec<ViewContact>, StoreError> {
    Ok(match &view.contacts {
        Some(list) => list.clone(),
        None => state
            .store
            .contacts(person_id)
            .await?
            .iter()
            .map(ViewContact::from)
            .collect(),
    })
}

/// Puts what a duress session tried on the timeline of the person's active
/// alerts. A failure is logged: the session's answer must not change.
pub async fn attempted(state: &AppState, person_id: Uuid, what: &str) {
    metrics::counter!("avisa_duress_changes_total").increment(1);
    tracing::warn!(what, "a change under the duress PIN: answered, not applied");
    if let Err(e) = state
        .store
        .record_duress_change(person_id, what, now_millis())
        .await
    {
        tracing::error!(error = %e, "cannot record a change under duress");
    }
}
