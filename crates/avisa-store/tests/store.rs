//! The store suite: every test runs on SQLite and on PostgreSQL, each on a
//! fresh database.

#[path = "store/tls.rs"]
mod tls;

use std::path::PathBuf;

use avisa_core::crypto::DataKey;
use avisa_core::{Language, PhoneNumber};
use avisa_store::{
    ContactInput, MAX_CONTACTS, Profile, QueueFilter, Store, StoreError, VerifyOutcome, testing,
};

/// A fresh database on one backend, with what a test may need to look at.
struct Fixture {
    url: String,
    key: DataKey,
    _dir: tempfile::TempDir,
    sqlite_file: Option<PathBuf>,
}

impl Fixture {
    async fn new(backend: &str) -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, sqlite_file) = match backend {
            "sqlite" => (
                testing::sqlite_url(dir.path()),
                Some(dir.path().join("avisa.db")),
            ),
            _ => (testing::fresh_postgres_url().await?, None),
        };
        Some(Fixture {
            url,
            key: DataKey::generate().expect("key"),
            _dir: dir,
            sqlite_file,
        })
    }

    async fn store(&self) -> Store {
        let backend = avisa_store::connect(&self.url).await.expect("connect");
        Store::open(backend, &self.key).await.expect("open")
    }
}

macro_rules! both_backends {
    ($($name:ident;)+) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    if let Some(f) = super::Fixture::new("sqlite").await {
                        super::$name(f).await;
                    }
                }
                #[tokio::test]
                async fn postgres() {
                    if let Some(f) = super::Fixture::new("postgres").await {
                        super::$name(f).await;
                    }
                }
            }
        )+
    };
}

both_backends! {
    a_deleted_person_s_budgets_go_with_them;
    a_copy_two_messages_took_goes_back_for_one;
    a_press_s_budget_is_taken_in_its_group_commit;
    a_silent_instance_s_messages_come_back_in_seconds;
    outcomes_written_plain_are_sealed_at_start;
    changes_are_told_at_most_once_a_window;
    no_code_waits_ahead_of_an_alert;
    verification_flow;
    expired_code_is_refused;
    second_device_joins_the_same_person;
    profile_round_trip;
    contacts_crud_and_limit;
    contacts_are_private_to_their_person;
    kept_contacts_follow_every_change;
    press_lookup_reads_key_and_window;
    deleting_a_person_removes_everything;
    wrong_key_is_refused;
    nothing_personal_at_rest;
    alerts_batch_with_a_reused_key;
    case_numbers_are_unique_per_office_and_year;
    case_counters_never_deadlock;
    a_small_key_cache_never_loses_a_message;
    the_queue_shows_the_longest_waiting_first;
    the_alert_limit_holds_where_alerts_are_written;
    checkin_timers_end_once_and_remind_once;
    claims_go_by_rank_and_leases_come_back;
    alerts_committed_leased_come_back_if_never_recorded;
    receipts_never_move_backwards_and_expiry_sweeps;
    a_delivered_receipt_of_another_copy_still_delivers;
    cancel_withdraws_and_follows_up;
    budgets_are_all_or_nothing_and_purged;
    pin_attempts_are_taken_before_the_check;
}

const NOW: i64 = 1_800_000_000_000;

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).expect("valid phone")
}

async fn verified_person(store: &Store, number: &str) -> uuid::Uuid {
    let device = store
        .register_device(
            &phone(number),
            Language::Es,
            avisa_core::crypto::token_hash(number),
            "123456",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    match store
        .verify_device(device.id, "123456", NOW)
        .await
        .expect("verify")
    {
        VerifyOutcome::Verified { person_id } => person_id,
        other => panic!("not verified: {other:?}"),
    }
}

async fn verification_flow(f: Fixture) {
    let store = f.store().await;
    let token_hash = vec![1u8; 32];
    let device = store
        .register_device(
            &phone("+12135550100"),
            Language::Es,
            token_hash.clone(),
            "424242",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    let found = store
        .device_by_token_hash(&token_hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (found.id, found.person_id, found.verified_at),
        (device.id, None, None)
    );

    // Wrong codes count down.
    for left in [4, 3] {
        assert_eq!(
            store
                .verify_device(device.id, "000000", NOW)
                .await
                .expect("verify"),
            VerifyOutcome::Wrong {
                attempts_left: left
            }
        );
    }
    // The right one within the attempts verifies and consumes the code.
    let VerifyOutcome::Verified { person_id } = store
        .verify_device(device.id, "424242", NOW)
        .await
        .expect("verify")
    else {
        panic!("should verify");
    };
    assert_eq!(
        store
            .verify_device(device.id, "424242", NOW)
            .await
            .expect("again"),
        VerifyOutcome::NoCode
    );
    let device = store
        .device_by_token_hash(&token_hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(device.person_id, Some(person_id));
    assert_eq!(device.verified_at, Some(NOW));
    let person = store
        .person(person_id)
        .await
        .expect("person")
        .expect("exists");
    assert_eq!(person.phone.as_str(), "+12135550100");
    assert_eq!(
        person.profile,
        Profile {
            language: Language::Es,
            name_at_end: false,
            ..Profile::default()
        }
    );

    // Five wrong codes burn a code: even the right one is refused after.
    let other = store
        .register_device(
            &phone("+12135550101"),
            Language::En,
            vec![2; 32],
            "111111",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    for left in (0..5).rev() {
        assert_eq!(
            store
                .verify_device(other.id, "999999", NOW)
                .await
                .expect("verify"),
            VerifyOutcome::Wrong {
                attempts_left: left
            }
        );
    }
    assert_eq!(
        store
            .verify_device(other.id, "111111", NOW)
            .await
            .expect("burnt"),
        VerifyOutcome::NoCode
    );
}

async fn expired_code_is_refused(f: Fixture) {
    let store = f.store().await;
    let device = store
        .register_device(
            &phone("+12135550100"),
            Language::Es,
            vec![1; 32],
            "424242",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    assert_eq!(
        store
            .verify_device(device.id, "424242", NOW + 600_000)
            .await
            .expect("verify"),
        VerifyOutcome::NoCode
    );
}

async fn second_device_joins_the_same_person(f: Fixture) {
    let store = f.store().await;
    let first = verified_person(&store, "+12135550100").await;
    let device = store
        .register_device(
            &phone("(213) 555-0100"),
            Language::En,
            vec![9; 32],
            "654321",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    let VerifyOutcome::Verified { person_id } = store
        .verify_device(device.id, "654321", NOW)
        .await
        .expect("verify")
    else {
        panic!("should verify");
    };
    assert_eq!(person_id, first, "the same phone is the same person");
}

async fn profile_round_trip(f: Fixture) {
    let store = f.store().await;
    let id = verified_person(&store, "+12135550100").await;
    let profile = Profile {
        name: Some("María Pérez".into()),
        home_state: Some("CA".into()),
        home_county: Some("Los Angeles".into()),
        keyword: Some("AYUDA".into()),
        language: Language::En,
        name_at_end: false,
    };
    store
        .update_profile(
            id,
            &profile,
            Some("$argon2id$fake".into()),
            Some("$argon2id$other".into()),
            NOW,
        )
        .await
        .expect("update");
    let person = store.person(id).await.expect("get").expect("exists");
    assert_eq!(person.profile, profile);
    assert_eq!(person.pin_hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(person.duress_hash.as_deref(), Some("$argon2id$other"));
    // None keeps the duress hash.
    store
        .update_profile(id, &profile, Some("$argon2id$new".into()), None, NOW)
        .await
        .expect("update");
    let person = store.person(id).await.expect("get").expect("exists");
    assert_eq!(person.duress_hash.as_deref(), Some("$argon2id$other"));
    let missing = store
        .update_profile(uuid::Uuid::now_v7(), &profile, None, None, NOW)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

fn contact(n: usize) -> ContactInput {
    ContactInput {
        name: format!("Contacto {n}"),
        phone: phone(&format!("+1213555{:04}", 200 + n)),
        message: format!("Mensaje número {n}: llama a la abogada."),
        language: if n.is_multiple_of(2) {
            Language::Es
        } else {
            Language::En
        },
        location_updates: n == 1,
        locator: false,
    }
}

async fn contacts_crud_and_limit(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let first = store
        .add_contact(person, &contact(0), NOW)
        .await
        .expect("add");
    assert_eq!(first.name, "Contacto 0");
    assert_eq!(
        store.contact(person, first.id).await.expect("get"),
        Some(first.clone())
    );

    let edited = store
        .update_contact(person, first.id, &contact(1), NOW + 1)
        .await
        .expect("update");
    assert_eq!(
        (edited.name.as_str(), edited.created_at, edited.updated_at),
        ("Contacto 1", NOW, NOW + 1)
    );
    assert!(!first.location_updates && edited.location_updates);
    assert_eq!(
        store.contact(person, first.id).await.expect("get"),
        Some(edited.clone()),
        "the choice of location updates is kept"
    );

    for n in 1..MAX_CONTACTS as usize {
        store
            .add_contact(person, &contact(n), NOW + n as i64)
            .await
            .expect("add");
    }
    let all = store.contacts(person).await.expect("list");
    assert_eq!(all.len(), MAX_CONTACTS as usize);
    assert_eq!(all[0].id, first.id, "listed in the order they were added");
    assert!(matches!(
        store.add_contact(person, &contact(11), NOW).await,
        Err(StoreError::LimitReached)
    ));
    assert_eq!(
        store.contacts(person).await.expect("list").len(),
        MAX_CONTACTS as usize
    );

    assert!(
        store
            .delete_contact(person, first.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_contact(person, first.id)
            .await
            .expect("delete again")
    );
    assert_eq!(store.contact(person, first.id).await.expect("get"), None);
    assert!(matches!(
        store
            .update_contact(person, first.id, &contact(2), NOW)
            .await,
        Err(StoreError::NotFound)
    ));
}

/// The contacts a press uses may come from memory; every change, made by
/// this process or another one on the same database, must show in the next
/// press.
async fn kept_contacts_follow_every_change(f: Fixture) {
    let here = f.store().await;
    let elsewhere = f.store().await;
    let person = verified_person(&here, "+12135550100").await;
    let version = |store: Store| async move {
        store
            .person(person)
            .await
            .expect("person")
            .expect("exists")
            .contacts_version
    };
    let names =
        |list: &[avisa_store::Contact]| list.iter().map(|c| c.name.clone()).collect::<Vec<_>>();

    let v0 = version(here.clone()).await;
    assert!(
        here.alert_contacts(person, v0)
            .await
            .expect("kept")
            .is_empty()
    );

    let first = elsewhere
        .add_contact(person, &contact(0), NOW)
        .await
        .expect("add");
    let v1 = version(here.clone()).await;
    assert_ne!(v1, v0, "adding a contact changes the version");
    assert_eq!(
        names(&here.alert_contacts(person, v1).await.expect("kept")),
        ["Contacto 0"]
    );

    elsewhere
        .update_contact(person, first.id, &contact(3), NOW + 1)
        .await
        .expect("update");
    let v2 = version(here.clone()).await;
    assert_ne!(v2, v1, "editing a contact changes the version");
    let kept = here.alert_contacts(person, v2).await.expect("kept");
    assert_eq!(names(&kept), ["Contacto 3"]);
    assert_eq!(kept[0].message, contact(3).message);

    // Unchanged: the same list, without reading it again.
    let again = here.alert_contacts(person, v2).await.expect("kept");
    assert!(std::sync::Arc::ptr_eq(&kept, &again));

    assert!(
        elsewhere
            .delete_contact(person, first.id)
            .await
            .expect("delete")
    );
    let v3 = version(here.clone()).await;
    assert_ne!(v3, v2, "deleting a contact changes the version");
    assert!(
        here.alert_contacts(person, v3)
            .await
            .expect("kept")
            .is_empty()
    );

    // Another person's contacts change nothing here.
    let other = verified_person(&here, "+12135550199").await;
    here.add_contact(other, &contact(1), NOW)
        .await
        .expect("add");
    assert_eq!(version(here.clone()).await, v3);
}

/// One read before a press writes: the device, its person, the alert the
/// key made and the count in the rate-limit window.
async fn press_lookup_reads_key_and_window(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let token = avisa_core::crypto::token_hash("+12135550100");

    let none = store
        .press_lookup(&token, "key-000001", NOW - 600_000, false)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!(none.person.as_ref().map(|p| p.id), Some(person));
    assert_eq!((none.existing, none.recent), (None, 0));

    let a = alert(person, "key-000001", NOW - 700_000, &[0]);
    let b = alert(person, "key-000002", NOW - 1_000, &[0]);
    let sealed = [
        store.seal_alert(&a, &key).expect("seal"),
        store.seal_alert(&b, &key).expect("seal"),
    ];
    store.insert_alerts(&sealed).await.expect("insert");

    let seen = store
        .press_lookup(&token, "key-000001", NOW - 600_000, false)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!(
        seen.existing,
        Some(a.id),
        "the key's alert, outside the window too"
    );
    assert_eq!(seen.recent, 1, "only the alert inside the window counts");

    let fresh = store
        .press_lookup(&token, "key-000003", NOW - 600_000, false)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!((fresh.existing, fresh.recent), (None, 1));

    // A practice press counts against practice only, and a real alert taken
    // back counts against nothing.
    let mut rehearsal = alert(person, "key-000004", NOW - 1_000, &[0]);
    rehearsal.practice = true;
    store
        .insert_alerts(&[store.seal_alert(&rehearsal, &key).expect("seal")])
        .await
        .expect("insert");
    let real = store
        .press_lookup(&token, "key-000005", NOW - 600_000, false)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!(real.recent, 1, "the practice press does not count");
    let practice = store
        .press_lookup(&token, "key-000005", NOW - 600_000, true)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!(practice.recent, 1, "practice counts its own");
    let safe = |_: MessageKind, _: Language| "a salvo".to_string();
    store
        .cancel_alert(b.id, NOW, NOW + 3_600_000, Some(&safe))
        .await
        .expect("cancel")
        .expect("was active");
    let after = store
        .press_lookup(&token, "key-000005", NOW - 600_000, false)
        .await
        .expect("lookup")
        .expect("device");
    assert_eq!(
        after.recent, 1,
        "a cancelled alert still counts: press-and-cancel must not pump SMS"
    );
    // The limit frees a place when the oldest counted alert leaves the window.
    let c = alert(person, "key-000006", NOW - 300_000, &[0]);
    let d = alert(person, "key-000007", NOW - 100, &[0]);
    store
        .insert_alerts(&[
            store.seal_alert(&c, &key).expect("seal"),
            store.seal_alert(&d, &key).expect("seal"),
        ])
        .await
        .expect("insert");
    assert_eq!(
        store
            .oldest_recent(person, NOW - 600_000, false)
            .await
            .expect("oldest"),
        Some(NOW - 300_000)
    );
    assert_eq!(
        store
            .oldest_recent(person, NOW - 600_000, true)
            .await
            .expect("oldest"),
        Some(NOW - 1_000),
        "practice's own"
    );

    assert!(
        store
            .press_lookup(
                &avisa_core::crypto::token_hash("nobody"),
                "key-000001",
                0,
                false
            )
            .await
            .expect("lookup")
            .is_none()
    );
}

async fn contacts_are_private_to_their_person(f: Fixture) {
    let store = f.store().await;
    let alice = verified_person(&store, "+12135550100").await;
    let bob = verified_person(&store, "+12135550111").await;
    let c = store
        .add_contact(alice, &contact(0), NOW)
        .await
        .expect("add");
    assert_eq!(store.contact(bob, c.id).await.expect("get"), None);
    assert!(store.contacts(bob).await.expect("list").is_empty());
    assert!(!store.delete_contact(bob, c.id).await.expect("delete"));
    assert!(matches!(
        store.update_contact(bob, c.id, &contact(1), NOW).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.contacts(alice).await.expect("list").len(), 1);
}

async fn deleting_a_person_removes_everything(f: Fixture) {
    let store = f.store().await;
    let token = vec![5u8; 32];
    let device = store
        .register_device(
            &phone("+12135550100"),
            Language::Es,
            token.clone(),
            "123123",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    let VerifyOutcome::Verified { person_id } = store
        .verify_device(device.id, "123123", NOW)
        .await
        .expect("verify")
    else {
        panic!("should verify");
    };
    store
        .add_contact(person_id, &contact(0), NOW)
        .await
        .expect("add");
    assert!(store.delete_person(person_id).await.expect("delete"));
    assert!(store.person(person_id).await.expect("get").is_none());
    assert!(store.contacts(person_id).await.expect("list").is_empty());
    assert!(
        store
            .device_by_token_hash(&token)
            .await
            .expect("device")
            .is_none()
    );
}

/// An outcome an older Avisa wrote in plain text is sealed with the
/// person's key at the next start, and still reads the same.
async fn outcomes_written_plain_are_sealed_at_start(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "plain-outcome", NOW, &[0]);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    store.close().await;
    let done = avisa_store::testing::execute(
        &f.url,
        "UPDATE alerts SET case_state = 'resolved', resolved_at = 1, outcome = 'detained'",
    )
    .await
    .expect("write as before");
    assert_eq!(done, 1);
    let store = f.store().await;
    let case = store.case(a.id).await.expect("read").expect("case");
    assert_eq!(case.outcome, Some(avisa_core::Outcome::Detained));
    store.close().await;
    let left = avisa_store::testing::execute(
        &f.url,
        "UPDATE alerts SET case_state = 'resolved' WHERE outcome IS NOT NULL OR outcome_enc IS NULL",
    )
    .await
    .expect("count");
    assert_eq!(left, 0, "no plain outcome left, the sealed one written");
}

/// Two instances on one database: what A holds comes back, marked in
/// doubt, as soon as A stops beating (or leaves) — not at the end of its
/// lease — and never while A beats; and never to an instance that is not
/// trusted to judge yet (it passes no `dead_before`).
async fn a_silent_instance_s_messages_come_back_in_seconds(f: Fixture) {
    let a = f.store().await;
    let b = f.store().await;
    assert_ne!(a.instance_id(), b.instance_id());
    let person = verified_person(&a, "+12135550100").await;
    let key = a.sealing_key(person).await.expect("key");
    a.insert_alerts(&[a
        .seal_alert(&alert(person, "held", NOW, &[0, 1]), &key)
        .expect("seal")])
        .await
        .expect("insert");
    assert_eq!(a.beat(NOW, NOW - 2_000).await.expect("beat"), 1);
    assert_eq!(b.beat(NOW, NOW - 2_000).await.expect("beat"), 2, "two live");
    let held = a.claim(NOW, 10, 30_000).await.expect("claim");
    assert_eq!(held.len(), 2);
    // A beats: B takes nothing.
    a.beat(NOW + 1_000, NOW - 1_000).await.expect("beat");
    assert_eq!(
        b.reclaim_expired_leases(NOW + 2_500, Some(NOW + 500))
            .await
            .expect("reclaim"),
        0
    );
    // A goes silent: B takes both, 3 s after A's last beat, not 30 s.
    assert_eq!(
        b.reclaim_expired_leases(NOW + 3_000, None)
            .await
            .expect("reclaim"),
        0,
        "not without dead_before"
    );
    assert_eq!(
        b.reclaim_expired_leases(NOW + 4_000, Some(NOW + 2_000))
            .await
            .expect("reclaim"),
        2
    );
    let again = b.claim(NOW + 4_000, 10, 30_000).await.expect("claim");
    assert_eq!(again.len(), 2);
    assert!(
        again.iter().all(|m| m.in_doubt_since == Some(NOW)),
        "in doubt from when A took them: the gateway is asked first"
    );
    // B leaves: A (back) takes them at once.
    b.leave().await.expect("leave");
    a.beat(NOW + 5_000, NOW + 3_000).await.expect("beat");
    assert_eq!(
        a.reclaim_expired_leases(NOW + 5_000, Some(NOW + 3_000))
            .await
            .expect("reclaim"),
        2
    );
}

async fn wrong_key_is_refused(f: Fixture) {
    let store = f.store().await;
    verified_person(&store, "+12135550100").await;
    store.close().await;
    let connect = || async { avisa_store::connect(&f.url).await.expect("connect") };
    assert!(
        avisa_store::has_data_key(&connect().await)
            .await
            .expect("check")
    );
    let other = DataKey::generate().expect("key");
    assert!(matches!(
        Store::open(connect().await, &other).await,
        Err(StoreError::WrongKey)
    ));
    // The right key still opens it.
    assert!(Store::open(connect().await, &f.key).await.is_ok());
}

/// Writes known personal values, then reads the raw database bytes (SQLite
/// files including the WAL; a PostgreSQL dump) and finds none of them.
async fn nothing_personal_at_rest(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550177").await;
    let profile = Profile {
        name: Some("Guadalupe Xochitl Ramirez".into()),
        home_state: Some("AZ".into()),
        home_county: Some("Maricopa".into()),
        keyword: Some("SOCORRO".into()),
        language: Language::Es,
        name_at_end: false,
    };
    store
        .update_profile(person, &profile, None, None, NOW)
        .await
        .expect("profile");
    store
        .add_contact(
            person,
            &ContactInput {
                name: "Esperanza Quetzalli".into(),
                phone: phone("+525512345678"),
                message: "Llama a la licenciada Torres inmediatamente".into(),
                language: Language::Es,
                location_updates: false,
                locator: false,
            },
            NOW,
        )
        .await
        .expect("contact");
    store
        .add_checkin(
            &avisa_store::NewCheckin {
                person_id: person,
                appointment_at: NOW,
                deadline: NOW + 3_600_000,
                place: Some("Tribunal de Inmigracion Tonatiuh".into()),
                note: Some("Expediente Citlalli".into()),
                location: None,
            },
            NOW,
        )
        .await
        .expect("check-in");
    let needles = [
        "Tonatiuh",
        "Citlalli",
        "Guadalupe",
        "Xochitl",
        "Maricopa",
        "SOCORRO",
        "Esperanza",
        "Quetzalli",
        "licenciada Torres",
        "2135550177",
        "5512345678",
    ];
    let haystack: Vec<u8> = match &f.sqlite_file {
        Some(db) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", db.display()));
                if let Ok(b) = std::fs::read(&path) {
                    bytes.extend(b);
                }
            }
            assert!(bytes.len() > 4096, "the database files were read");
            bytes
        }
        None => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", "--inserts", &f.url])
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("INSERT INTO public.contacts"));
            out.stdout
        }
    };
    let text = String::from_utf8_lossy(&haystack);
    for needle in needles {
        assert!(
            !text.contains(needle),
            "{needle:?} found in plain text at rest"
        );
    }
    // And the data is really there, behind the key.
    let back = store.person(person).await.expect("get").expect("exists");
    assert_eq!(
        back.profile.name.as_deref(),
        Some("Guadalupe Xochitl Ramirez")
    );
}

// ---- alerts and the outbox ------------------------------------------------

use avisa_core::{AlertSource, AlertState, OutboxStatus};
use avisa_store::{Coverage, Inserted, MessageKind, NewAlert, NewMessage, OutboxUpdate, Purpose};

fn message(rank: i32, to: &str, expires_at: i64) -> NewMessage {
    NewMessage::new(
        avisa_core::Channel::Sms,
        MessageKind::Contact,
        Purpose::Alert,
        phone(to),
        format!("mensaje de rango {rank}"),
        Language::Es,
        expires_at,
    )
    .to_contact(None, Some(format!("rank {rank}")))
    .ranked(rank)
}

fn alert(person: uuid::Uuid, key: &str, created_at: i64, ranks: &[i32]) -> NewAlert {
    NewAlert {
        id: uuid::Uuid::now_v7(),
        person_id: person,
        device_id: None,
        idempotency_key: key.into(),
        source: AlertSource::App,
        practice: false,
        consulate_id: Some("chicago".into()),
        coverage: Coverage::Nearest,
        location: Some(avisa_core::Location::new(41.88, -87.63, Some(10.0)).expect("loc")),
        caller: None,
        created_at,
        messages: ranks
            .iter()
            .map(|r| message(*r, "+13125550100", created_at + 3_600_000))
            .collect(),
        limit: None,
        case_prefix: None,
        budget: None,
    }
}

/// More people than the key cache holds, pressing while the console reads
/// and another instance sends: every message opens and goes, none is
/// withdrawn as "deleted", every read opens. (The ring used to clear itself
/// when full, and a key missing from memory meant "person deleted": a
/// living person's alert SMS withdrawn unsent; issue 37.)
async fn a_small_key_cache_never_loses_a_message(f: Fixture) {
    const PEOPLE: usize = 24;
    let store = f.store().await.with_key_cache(4);
    let sender = f.store().await.with_key_cache(4);
    let mut numbers = Vec::new();
    for i in 0..PEOPLE {
        let number = format!("+1213555{:04}", 1000 + i);
        let person = verified_person(&store, &number).await;
        let profile = Profile {
            name: Some(format!("Persona {i}")),
            ..Profile::default()
        };
        store
            .update_profile(person, &profile, None, None, NOW)
            .await
            .expect("profile");
        numbers.push(number);
    }
    // Each press seals with the key its lookup handed out, while the
    // console reads the queue and every case.
    let presses: Vec<_> = numbers
        .iter()
        .map(|number| {
            let store = store.clone();
            let token = avisa_core::crypto::token_hash(number);
            tokio::spawn(async move {
                let lookup = store
                    .press_lookup(&token, "tiny-cache", NOW - 600_000, false)
                    .await
                    .expect("lookup")
                    .expect("device");
                let person = lookup.person.expect("verified");
                let mut a = alert(person.id, "tiny-cache", NOW, &[0, 1]);
                for m in &mut a.messages {
                    m.owner = Some(person.id);
                }
                let sealed = store.seal_alert(&a, &person.key).expect("seal");
                store.insert_alerts(&[sealed]).await.expect("insert");
                a.id
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let filter = QueueFilter {
                limit: 100,
                ..QueueFilter::default()
            };
            let mut opened = 0;
            for _ in 0..20 {
                for item in store.queue(&filter).await.expect("the queue opens") {
                    assert!(item.person_name.is_some_and(|n| n.starts_with("Persona ")));
                    store
                        .alert(item.alert_id)
                        .await
                        .expect("the case opens")
                        .expect("the case");
                    opened += 1;
                }
                tokio::task::yield_now().await;
            }
            opened
        })
    };
    let mut alerts = Vec::new();
    for p in presses {
        alerts.push(p.await.expect("press"));
    }
    reader.await.expect("reader");
    // Another instance, its own cache as small, sends them all at once.
    let claimed = sender.claim(NOW, 1_000, 30_000).await.expect("claim");
    assert_eq!(
        claimed.len(),
        PEOPLE * 2,
        "every message claimed and opened"
    );
    assert!(
        claimed
            .iter()
            .all(|c| c.body.starts_with("mensaje de rango"))
    );
    for id in alerts {
        let view = store.alert(id).await.expect("read").expect("alert");
        assert!(
            view.recipients
                .iter()
                .all(|r| r.status != avisa_core::OutboxStatus::Withdrawn),
            "nothing withdrawn: {:?}",
            view.recipients
        );
    }
    let (hits, misses) = store.key_cache_stats();
    assert!(
        misses > 0,
        "the small cache was exceeded: {hits} hits, {misses} misses"
    );
}

/// Eight alerts waiting: the one waiting longest is the first row an
/// officer sees, the newest the last (they were newest first, and with
/// five rows on a laptop's screen the oldest sank out of sight; issue 40).
async fn the_queue_shows_the_longest_waiting_first(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    // Inserted newest first, so the order is the queue's, not the table's.
    let mut waiting = Vec::new();
    for i in (0..8).rev() {
        let a = alert(person, &format!("wait-{i}"), NOW + i * 1_000, &[0]);
        waiting.push(a.id);
        store
            .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
            .await
            .expect("insert");
    }
    waiting.reverse();
    let queue = store
        .queue(&QueueFilter {
            limit: 100,
            ..QueueFilter::default()
        })
        .await
        .expect("queue");
    let shown: Vec<_> = queue.iter().map(|q| q.alert_id).collect();
    assert_eq!(shown, waiting, "oldest first");
}

/// Group commits of several instances, each numbering four offices in its
/// own order, all go through: the counters are locked in one order (on
/// PostgreSQL a cycle was `deadlock detected`, a second lost and every
/// alert of the batch written again one by one; issue 37).
async fn case_counters_never_deadlock(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    const PREFIXES: [&str; 4] = ["LAX-2026", "CHI-2026", "SAN-2026", "NYC-2026"];
    let mut tasks = Vec::new();
    for writer in 0..6usize {
        let store = store.clone();
        let batches: Vec<Vec<_>> = (0..8usize)
            .map(|round| {
                (0..PREFIXES.len())
                    .map(|i| {
                        let mut a = alert(person, &format!("dl-{writer}-{round}-{i}"), NOW, &[0]);
                        a.case_prefix =
                            Some(PREFIXES[(i + writer + round) % PREFIXES.len()].to_string());
                        store.seal_alert(&a, &key).expect("seal")
                    })
                    .collect()
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            for batch in batches {
                store.insert_alerts_numbered(&batch).await?;
            }
            Ok::<_, avisa_store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .expect("join")
            .expect("every group commit went through");
    }
    // 6 writers x 8 rounds: 12 numbers for each office, none twice.
    let mut all = std::collections::BTreeSet::new();
    for view in store.person_alerts(person, 1000).await.expect("alerts") {
        assert!(all.insert(view.case_number.expect("numbered")));
    }
    assert_eq!(all.len(), 6 * 8 * 4);
    for p in PREFIXES {
        assert!(
            all.contains(&format!("{p}-0048")) && !all.contains(&format!("{p}-0049")),
            "{p}"
        );
    }
}

/// Case numbers: one counter per office and year, advanced in the commit,
/// never shared (not by a batch, not by parallel writers), none for a
/// reused key or practice; the first duty SMS carries its number.
async fn case_numbers_are_unique_per_office_and_year(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let numbered = |key: &str, prefix: Option<&str>| {
        let mut a = alert(person, key, NOW, &[0]);
        a.case_prefix = prefix.map(str::to_string);
        a
    };
    let mut first = numbered("k1", Some("LAX-2026"));
    first.messages[0].kind = MessageKind::Consulate;
    first.messages[0].body = format!("AVISA ALERTA {}: Maria", avisa_core::messages::CASE_SLOT);
    let second = numbered("k2", Some("LAX-2026"));
    let chicago = numbered("k3", Some("CHI-2026"));
    let again = numbered("k1", Some("LAX-2026"));
    let mut practice = numbered("k4", None);
    practice.practice = true;
    let batch: Vec<_> = [&first, &second, &chicago, &again, &practice]
        .iter()
        .map(|a| store.seal_alert(a, &key).expect("seal"))
        .collect();
    let results = store.insert_alerts_numbered(&batch).await.expect("insert");
    let numbers: Vec<Option<&str>> = results.iter().map(|(_, n)| n.as_deref()).collect();
    assert_eq!(
        numbers,
        [
            Some("LAX-2026-0001"),
            Some("LAX-2026-0002"),
            Some("CHI-2026-0001"),
            None,
            None
        ]
    );
    assert_eq!(results[3].0, Inserted::Existing(first.id));
    let view = store.alert(first.id).await.expect("get").expect("exists");
    assert_eq!(view.case_number.as_deref(), Some("LAX-2026-0001"));
    // The stored duty SMS says the number, not the slot.
    let texts = store.message_texts(first.id).await.expect("texts");
    assert_eq!(
        texts[0].text.as_deref(),
        Some("AVISA ALERTA LAX-2026-0001: Maria")
    );
    assert_eq!(texts[0].to.as_deref(), Some("+13125550100"));
    // Parallel commits (other instances) never take the same number.
    let parallel: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let sealed = store
                .seal_alert(&numbered(&format!("p{i}"), Some("LAX-2026")), &key)
                .expect("seal");
            tokio::spawn(async move { store.insert_alerts_numbered(&[sealed]).await })
        })
        .collect();
    let mut taken = std::collections::BTreeSet::new();
    for p in parallel {
        let (_, n) = p.await.expect("join").expect("insert").remove(0);
        assert!(taken.insert(n.expect("numbered")));
    }
    let expected: std::collections::BTreeSet<String> =
        (3..=10).map(|n| format!("LAX-2026-{n:04}")).collect();
    assert_eq!(taken, expected);
    // A new year starts again at 1.
    let next_year = store
        .insert_alerts_numbered(&[store
            .seal_alert(&numbered("y", Some("LAX-2027")), &key)
            .expect("seal")])
        .await
        .expect("insert");
    assert_eq!(next_year[0].1.as_deref(), Some("LAX-2027-0001"));
}

async fn alerts_batch_with_a_reused_key(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "key-one", NOW, &[0, 1]);
    let b = alert(person, "key-two", NOW, &[0]);
    let again = alert(person, "key-one", NOW, &[0, 1, 2]);
    let sealed: Vec<_> = [&a, &b, &again]
        .iter()
        .map(|x| store.seal_alert(x, &key).expect("seal"))
        .collect();
    let results = store.insert_alerts(&sealed).await.expect("insert");
    assert_eq!(
        results,
        vec![
            Inserted::Created(a.id),
            Inserted::Created(b.id),
            Inserted::Existing(a.id)
        ]
    );
    let view = store.alert(a.id).await.expect("get").expect("exists");
    assert_eq!(view.recipients.len(), 2, "the reused key added no messages");
    assert_eq!(view.location.map(|l| (l.lat, l.lon)), Some((41.88, -87.63)));
    assert!(store.alert(again.id).await.expect("get").is_none());
    // A later batch with the key again: still the first alert.
    let later = store
        .insert_alerts(&[store
            .seal_alert(&alert(person, "key-one", NOW, &[0]), &key)
            .expect("seal")])
        .await
        .expect("insert");
    assert_eq!(later, vec![Inserted::Existing(a.id)]);
    // What a press reads first: the key's alert and the recent count.
    assert_eq!(
        store
            .key_and_recent(person, "key-two", NOW, false)
            .await
            .expect("key"),
        (Some(b.id), 2)
    );
    assert_eq!(
        store
            .key_and_recent(person, "unused-key", NOW + 1, false)
            .await
            .expect("key"),
        (None, 0)
    );
}

async fn the_alert_limit_holds_where_alerts_are_written(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let limit = Some(avisa_store::AlertLimit {
        since: NOW - 600_000,
        max: 2,
    });
    let limited = |key: &str, at: i64| {
        let mut a = alert(person, key, at, &[0]);
        a.limit = limit;
        a
    };
    // One older real alert counts; a practice one and one before the
    // window do not.
    let before = alert(person, "before", NOW - 700_000, &[0]);
    let mut practice = alert(person, "practice", NOW - 100, &[0]);
    practice.practice = true;
    let first = limited("first", NOW - 1000);
    for a in [&before, &practice, &first] {
        store
            .insert_alerts(&[store.seal_alert(a, &key).expect("seal")])
            .await
            .expect("insert");
    }
    // Three presses in one batch, all of which read "one so far": one
    // place is left; the first key again is answered, never limited.
    let (a, b, c) = (limited("a", NOW), limited("b", NOW), limited("c", NOW));
    let again = limited("first", NOW);
    let sealed: Vec<_> = [&a, &b, &again, &c]
        .iter()
        .map(|x| store.seal_alert(x, &key).expect("seal"))
        .collect();
    let results = store.insert_alerts(&sealed).await.expect("insert");
    assert_eq!(
        results,
        vec![
            Inserted::Created(a.id),
            Inserted::Limited { oldest: NOW - 1000 },
            Inserted::Existing(first.id),
            Inserted::Limited { oldest: NOW - 1000 },
        ]
    );
    assert!(store.alert(b.id).await.expect("get").is_none());
    // A later batch: still full.
    let d = limited("d", NOW + 1);
    assert_eq!(
        store
            .insert_alerts(&[store.seal_alert(&d, &key).expect("seal")])
            .await
            .expect("insert"),
        vec![Inserted::Limited { oldest: NOW - 1000 }]
    );
    // A cancelled alert keeps its place: press-and-cancel in a loop must
    // not message the contacts without end.
    let safe = |_: MessageKind, _: Language| "a salvo".to_string();
    store
        .cancel_alert(first.id, NOW + 2, NOW + 3_600_000, Some(&safe))
        .await
        .expect("cancel")
        .expect("was active");
    let e = limited("e", NOW + 3);
    assert_eq!(
        store
            .insert_alerts(&[store.seal_alert(&e, &key).expect("seal")])
            .await
            .expect("insert"),
        vec![Inserted::Limited { oldest: NOW - 1000 }]
    );
    // A retry racing its first press, in a batch with a new press one
    // place below the limit: the retry takes no place, the new one passes.
    let other = verified_person(&store, "+12135550101").await;
    let key = store.sealing_key(other).await.expect("key");
    let for_other = |key: &str| {
        let mut a = alert(other, key, NOW, &[0]);
        a.limit = limit;
        a
    };
    let x1 = for_other("x-one");
    store
        .insert_alerts(&[store.seal_alert(&x1, &key).expect("seal")])
        .await
        .expect("insert");
    let (retry, x2) = (for_other("x-one"), for_other("x-two"));
    assert_eq!(
        store
            .insert_alerts(&[
                store.seal_alert(&retry, &key).expect("seal"),
                store.seal_alert(&x2, &key).expect("seal")
            ])
            .await
            .expect("insert"),
        vec![Inserted::Existing(x1.id), Inserted::Created(x2.id)]
    );
}

async fn claims_go_by_rank_and_leases_come_back(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    // Three alerts, the oldest with only late ranks.
    let old = alert(person, "old", NOW - 1000, &[2, 3]);
    let mid = alert(person, "mid", NOW - 500, &[0, 1]);
    let new = alert(person, "new", NOW, &[0]);
    for a in [&old, &mid, &new] {
        store
            .insert_alerts(&[store.seal_alert(a, &key).expect("seal")])
            .await
            .expect("insert");
    }
    let first = store.claim(NOW, 3, 30_000).await.expect("claim");
    let ranks: Vec<i32> = first.iter().map(|c| c.rank).collect();
    assert_eq!(ranks, [0, 0, 1], "every rank 0 before anything later");
    assert_eq!(first[0].alert_id, Some(mid.id), "same rank: oldest first");
    assert_eq!(first[0].body, "mensaje de rango 0");
    assert_eq!(first[0].to.as_str(), "+13125550100");
    assert!(first.iter().all(|c| c.attempts == 1));
    assert!(
        first.iter().all(|c| c.channel == avisa_core::Channel::Sms),
        "each message keeps the channel it was queued for"
    );
    // Leased rows are not claimed again while the lease holds.
    let second = store.claim(NOW, 10, 30_000).await.expect("claim");
    assert_eq!(second.iter().map(|c| c.rank).collect::<Vec<_>>(), [2, 3]);
    assert!(
        store
            .claim(NOW, 10, 30_000)
            .await
            .expect("claim")
            .is_empty()
    );
    // The worker "died": nothing comes back before the lease runs out...
    assert_eq!(
        store
            .reclaim_expired_leases(NOW + 29_999, None)
            .await
            .expect("reclaim"),
        0
    );
    // ...everything after.
    assert_eq!(
        store
            .reclaim_expired_leases(NOW + 30_000, None)
            .await
            .expect("reclaim"),
        5
    );
    let again = store.claim(NOW + 30_000, 10, 30_000).await.expect("claim");
    assert_eq!(again.len(), 5);
    assert!(
        again.iter().all(|c| c.attempts == 2),
        "each claim counts an attempt"
    );
    let mut ids: Vec<_> = again.iter().map(|c| c.id).collect();
    let mut before: Vec<_> = first.iter().chain(second.iter()).map(|c| c.id).collect();
    ids.sort();
    before.sort();
    assert_eq!(ids, before, "the same messages, none lost");

    // The end of a round and the start of the next in one transaction: the
    // outcomes are recorded, and what is claimed next is what is still due.
    let late = alert(person, "late", NOW + 30_001, &[0, 1]);
    store
        .insert_alerts(&[store.seal_alert(&late, &key).expect("seal")])
        .await
        .expect("insert");
    let outcomes: Vec<OutboxUpdate> = again
        .iter()
        .enumerate()
        .map(|(n, c)| OutboxUpdate::Sent {
            id: c.id,
            gateway: "log".into(),
            provider_id: format!("log-{n}"),
            at: NOW + 30_001,
            possible_duplicate: false,
            found: false,
        })
        .collect();
    let (touched, next) = store
        .apply_then_claim(&outcomes, NOW + 30_002, 1, 30_000)
        .await
        .expect("apply then claim");
    let mut alerts = vec![old.id, mid.id, new.id];
    alerts.sort();
    assert_eq!(touched, alerts, "each alert whose messages changed, once");
    for (n, c) in again.iter().enumerate() {
        assert_eq!(
            store.message(c.id).await.expect("m"),
            Some((
                OutboxStatus::Sent,
                Some("log".into()),
                Some(format!("log-{n}"))
            )),
            "each message keeps its own provider id"
        );
    }
    assert_eq!(next.len(), 1, "the limit holds");
    assert_eq!((next[0].alert_id, next[0].rank), (Some(late.id), 0));
    assert_eq!(
        store
            .claim(NOW + 30_002, 10, 30_000)
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn alerts_committed_leased_come_back_if_never_recorded(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    // Written already leased, for a dispatcher that takes the text from
    // memory: as a claim leaves them, so no claim takes them again.
    let a = alert(person, "leased", NOW, &[0, 1]);
    let handed = a.leased_messages();
    let mut sealed = store.seal_alert(&a, &key).expect("seal");
    sealed.lease_outbox(NOW + 30_000, store.instance_id());
    store.insert_alerts(&[sealed]).await.expect("insert");
    assert!(
        store
            .claim(NOW, 10, 30_000)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(handed.len(), 2);
    assert!(handed.iter().all(|c| c.attempts == 1));
    assert_eq!(handed[0].body, "mensaje de rango 0");
    // The person sees them as queued until a gateway takes them.
    let view = store.alert(a.id).await.expect("get").expect("exists");
    assert!(
        view.recipients
            .iter()
            .all(|r| r.status == OutboxStatus::Queued)
    );
    // The process died before recording anything: when the lease runs out
    // they are queued again, the same messages, their attempt counted.
    assert_eq!(
        store
            .reclaim_expired_leases(NOW + 29_999, None)
            .await
            .expect("reclaim"),
        0
    );
    assert_eq!(
        store
            .reclaim_expired_leases(NOW + 30_000, None)
            .await
            .expect("reclaim"),
        2
    );
    let again = store.claim(NOW + 30_000, 10, 30_000).await.expect("claim");
    let mut ids: Vec<_> = again.iter().map(|c| c.id).collect();
    let mut before: Vec<_> = handed.iter().map(|c| c.id).collect();
    ids.sort();
    before.sort();
    assert_eq!(ids, before, "none lost");
    assert!(again.iter().all(|c| c.attempts == 2));
    // Recorded as sent like any claimed message.
    let sent: Vec<OutboxUpdate> = handed
        .iter()
        .map(|c| OutboxUpdate::Sent {
            id: c.id,
            gateway: "log".into(),
            provider_id: format!("log-{}", c.id),
            at: NOW + 30_001,
            possible_duplicate: false,
            found: false,
        })
        .collect();
    assert_eq!(store.apply(&sent).await.expect("apply"), vec![a.id]);
}

/// Two instances, one provider copy: a message in doubt on one took as its
/// own the copy another instance had just sent for a message alike. The
/// one found goes back to the queue (it was never sent); of two found, the
/// later; a copy nobody else holds, and a found row that had its own
/// receipt, stay sent.
async fn a_copy_two_messages_took_goes_back_for_one(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "taken twice", NOW, &[0, 1, 1, 1, 1, 1]);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    let claimed = store.claim(NOW, 6, 30_000).await.expect("claim");
    let ids: Vec<uuid::Uuid> = claimed.iter().map(|c| c.id).collect();
    let sent = |id, sid: &str, at, found| OutboxUpdate::Sent {
        id,
        gateway: "twilio".into(),
        provider_id: sid.into(),
        at,
        possible_duplicate: false,
        found,
    };
    // One round each, as two instances record them.
    for update in [
        // Sent by another instance, and found here: the found one goes.
        sent(ids[0], "SM-X", NOW + 1, false),
        sent(ids[1], "SM-X", NOW + 2, true),
        // Found by both: the one recorded later goes.
        sent(ids[2], "SM-Y", NOW + 3, true),
        sent(ids[3], "SM-Y", NOW + 4, true),
        // Found, and nobody else's.
        sent(ids[4], "SM-Z", NOW + 5, true),
    ] {
        store.apply(&[update]).await.expect("apply");
    }
    // Found too, but its own receipt came: it was sent, whatever copy.
    store
        .apply(&[sent(ids[5], "SM-X", NOW + 6, true)])
        .await
        .expect("apply");
    store
        .receipt(
            ids[5],
            None,
            OutboxStatus::Sent,
            &[OutboxStatus::Sent],
            None,
            NOW + 7,
        )
        .await
        .expect("receipt");
    let touched = store
        .release_copies_taken_twice(NOW + 10)
        .await
        .expect("release");
    assert_eq!(touched, vec![a.id; 2]);
    let status = |id| {
        let store = store.clone();
        async move { store.message(id).await.expect("m").expect("row") }
    };
    assert_eq!(status(ids[0]).await.0, OutboxStatus::Sent);
    assert_eq!(status(ids[1]).await, (OutboxStatus::Queued, None, None));
    assert_eq!(status(ids[2]).await.0, OutboxStatus::Sent);
    assert_eq!(status(ids[3]).await.0, OutboxStatus::Queued);
    assert_eq!(status(ids[4]).await.0, OutboxStatus::Sent);
    assert_eq!(status(ids[5]).await.0, OutboxStatus::Sent);
    // Claimed again at once (in the dispatcher, a found row is in doubt:
    // the gateway is asked again, and the copy is now taken).
    let again = store.claim(NOW + 10, 6, 30_000).await.expect("claim");
    let mut back: Vec<_> = again.iter().map(|c| c.id).collect();
    back.sort();
    let mut want = vec![ids[1], ids[3]];
    want.sort();
    assert_eq!(back, want);
    // Nothing more to give back.
    assert!(
        store
            .release_copies_taken_twice(NOW + 11)
            .await
            .expect("release")
            .is_empty()
    );
}

/// Two sends in doubt of one text to one number, found in the provider's
/// list by recipient and text, can trade provider ids: a "delivered" for
/// the message (named by our reference) is applied whatever copy's id it
/// carries, kept or not; a failure of another copy still changes nothing.
async fn a_delivered_receipt_of_another_copy_still_delivers(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "copies", NOW, &[0, 1]);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    let claimed = store.claim(NOW, 2, 30_000).await.expect("claim");
    let (one, two) = (claimed[0].id, claimed[1].id);
    // One: its send timed out (in doubt); its receipt, under the id of the
    // copy it really is, is kept while it waits...
    store
        .apply(&[OutboxUpdate::Retry {
            id: one,
            next_attempt_at: NOW,
            gateway_index: 0,
            permanent_failures: 0,
            reason: "no answer".into(),
            at: NOW,
            in_doubt: Some(NOW),
        }])
        .await
        .expect("apply");
    assert!(
        store
            .keep_receipt(one, Some("SM-own"), OutboxStatus::Delivered, None, NOW + 1)
            .await
            .expect("keep")
    );
    // ...and applied when the look-up records it under the other copy's id.
    let again = store.claim(NOW + 2, 2, 30_000).await.expect("claim");
    assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), vec![one]);
    let sent = |id, sid: &str| OutboxUpdate::Sent {
        id,
        gateway: "twilio".into(),
        provider_id: sid.into(),
        at: NOW + 3,
        possible_duplicate: false,
        found: false,
    };
    store
        .apply(&[sent(one, "SM-other"), sent(two, "SM-two")])
        .await
        .expect("apply");
    assert_eq!(
        store.message(one).await.expect("m").map(|m| m.0),
        Some(OutboxStatus::Delivered)
    );
    // Two: another copy's failure is not this message's...
    let (failed, from) = (
        OutboxStatus::Failed,
        [OutboxStatus::Sending, OutboxStatus::Sent],
    );
    assert_eq!(
        store
            .receipt(two, Some("SM-elsewhere"), failed, &from, None, NOW + 4)
            .await
            .expect("receipt"),
        None
    );
    // ...but its delivery is.
    assert!(
        store
            .receipt(
                two,
                Some("SM-elsewhere"),
                OutboxStatus::Delivered,
                &from,
                None,
                NOW + 5
            )
            .await
            .expect("receipt")
            .is_some()
    );
    assert_eq!(
        store.message(two).await.expect("m").map(|m| m.0),
        Some(OutboxStatus::Delivered)
    );
}

async fn receipts_never_move_backwards_and_expiry_sweeps(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "receipts", NOW, &[0, 1, 2]);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    let claimed = store.claim(NOW, 2, 30_000).await.expect("claim");
    let (one, two) = (claimed[0].id, claimed[1].id);
    // A receipt can arrive before the send is recorded: delivered wins.
    assert_eq!(
        store
            .receipt(
                one,
                None,
                OutboxStatus::Delivered,
                &[OutboxStatus::Sending, OutboxStatus::Sent],
                None,
                NOW
            )
            .await
            .expect("receipt"),
        Some(Some(a.id))
    );
    let touched = store
        .apply(&[
            OutboxUpdate::Sent {
                id: one,
                gateway: "twilio".into(),
                provider_id: "SM1".into(),
                at: NOW,
                possible_duplicate: false,
                found: false,
            },
            OutboxUpdate::Retry {
                id: two,
                next_attempt_at: NOW + 5_000,
                gateway_index: 1,
                permanent_failures: 0,
                reason: "twilio 500".into(),
                at: NOW,
                in_doubt: None,
            },
        ])
        .await
        .expect("apply");
    assert_eq!(touched, vec![a.id]);
    assert_eq!(
        store.message(one).await.expect("m"),
        Some((
            OutboxStatus::Delivered,
            Some("twilio".into()),
            Some("SM1".into())
        ))
    );
    // Failed after delivered changes nothing.
    assert_eq!(
        store
            .receipt(
                one,
                None,
                OutboxStatus::Failed,
                &[OutboxStatus::Sending, OutboxStatus::Sent],
                Some("late"),
                NOW
            )
            .await
            .expect("receipt"),
        None
    );
    let view = store.alert(a.id).await.expect("get").expect("exists");
    let st: Vec<(&str, Option<&str>)> = view
        .recipients
        .iter()
        .map(|r| (r.status.as_str(), r.reason.as_deref()))
        .collect();
    assert_eq!(
        st,
        [
            ("delivered", None),
            ("queued", Some("twilio 500")),
            ("queued", None)
        ]
    );
    // The retried message is not due before its next attempt time: only the
    // third, never claimed, is. Put it back untouched.
    let due = store.claim(NOW + 4_999, 10, 30_000).await.expect("claim");
    assert_eq!(due.iter().map(|c| c.rank).collect::<Vec<_>>(), [2]);
    store
        .apply(&[OutboxUpdate::Release {
            id: due[0].id,
            next_attempt_at: NOW,
            at: NOW,
        }])
        .await
        .expect("release");
    // Past validity, what is still queued expires.
    let expired = store.expire_due(NOW + 3_600_000).await.expect("expire");
    assert_eq!(expired, vec![a.id]);
    let view = store.alert(a.id).await.expect("get").expect("exists");
    let st: Vec<&str> = view.recipients.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(st, ["delivered", "expired", "expired"]);
}

async fn cancel_withdraws_and_follows_up(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let a = alert(person, "cancel", NOW, &[0, 1]);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    let claimed = store.claim(NOW, 1, 30_000).await.expect("claim");
    store
        .apply(&[OutboxUpdate::Sent {
            id: claimed[0].id,
            gateway: "log".into(),
            provider_id: "x".into(),
            at: NOW,
            possible_duplicate: false,
            found: false,
        }])
        .await
        .expect("apply");
    let text = |_: MessageKind, lang: Language| format!("estoy bien ({})", lang.code());
    let withdrawn = store
        .cancel_alert(a.id, NOW + 1, NOW + 3_600_000, Some(&text))
        .await
        .expect("cancel");
    assert_eq!(withdrawn, Some(1));
    assert_eq!(
        store
            .cancel_alert(a.id, NOW + 2, NOW + 3_600_000, Some(&text))
            .await
            .expect("again"),
        None
    );
    let view = store.alert(a.id).await.expect("get").expect("exists");
    assert_eq!(view.state, AlertState::Cancelled);
    let st: Vec<(&str, Option<&str>)> = view
        .recipients
        .iter()
        .map(|r| (r.status.as_str(), r.safe_status.map(|s| s.as_str())))
        .collect();
    assert_eq!(st, [("sent", Some("queued")), ("withdrawn", None)]);
    let follow = store.claim(NOW + 2, 10, 30_000).await.expect("claim");
    assert_eq!(follow.len(), 1);
    assert_eq!(
        (follow[0].body.as_str(), follow[0].purpose),
        ("estoy bien (es)", Purpose::Safe)
    );
    assert_eq!(follow[0].parent_id, Some(claimed[0].id));
}

/// The notice that contacts or the keyword changed: now when nobody was
/// told within the window, else once at the window's end for every change
/// in it.
async fn changes_are_told_at_most_once_a_window(f: Fixture) {
    let store = f.store().await;
    let id = verified_person(&store, "+12135550100").await;
    const W: i64 = 600_000;
    let at = |now| {
        let store = store.clone();
        async move { store.changes_notice(id, now, W).await.expect("notice") }
    };
    assert_eq!(at(NOW).await, Some(NOW), "never told: now");
    assert_eq!(
        at(NOW + 1).await,
        Some(NOW + W),
        "told a moment ago: at the window's end"
    );
    assert_eq!(at(NOW + 2).await, None, "that notice is already planned");
    assert_eq!(at(NOW + W - 1).await, None);
    assert_eq!(at(NOW + W + 1).await, Some(NOW + 2 * W), "the next window");
    assert_eq!(
        at(NOW + 3 * W + 5).await,
        Some(NOW + 3 * W + 5),
        "long after: now"
    );
}

/// Verification codes queued earlier still go after every message of an
/// alert committed later, its last contact's included.
async fn no_code_waits_ahead_of_an_alert(f: Fixture) {
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let mut code = message(
        avisa_store::RANK_AFTER_ALERTS,
        "+12135550111",
        NOW + 600_000,
    );
    code.kind = MessageKind::Verification;
    code.purpose = Purpose::Code;
    store
        .enqueue(&[code.clone()], NOW - 60_000)
        .await
        .expect("code");
    let ranks: Vec<i32> = (0..avisa_store::MAX_CONTACTS as i32).collect();
    let a = alert(person, "key-after-codes", NOW, &ranks);
    store
        .insert_alerts(&[store.seal_alert(&a, &key).expect("seal")])
        .await
        .expect("insert");
    let claimed = store.claim(NOW, 100, 30_000).await.expect("claim");
    let order: Vec<uuid::Uuid> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(order.len(), ranks.len() + 1);
    assert_eq!(
        order.last(),
        Some(&code.id),
        "the code goes after all {} of the alert's messages",
        ranks.len()
    );
}

/// The person's SMS budget is taken where the alert is written: an alert
/// the budget cannot pay for is not written (the press comes back to go
/// without its contacts), and the hour's units it took before the day's
/// budget said no are given back in the same transaction.
async fn a_press_s_budget_is_taken_in_its_group_commit(f: Fixture) {
    use avisa_store::{Budget, BudgetUnits};
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let key = store.sealing_key(person).await.expect("key");
    let hour = Budget::of(&store, "person-sms-hour", b"p-hour", 5);
    let units = |budgets: Vec<Budget>, n| BudgetUnits {
        budgets,
        window_start: NOW,
        units: n,
    };
    let day = || Budget::of(&store, "person-sms-day", b"p-day", 3);
    let press = |name: &str, budget| {
        let mut a = alert(person, name, NOW, &[0, 1]);
        a.budget = Some(budget);
        a
    };
    let first = press("first", units(vec![hour.clone(), day()], 2));
    let second = press("second", units(vec![hour.clone(), day()], 2));
    let third = press("third", units(vec![hour.clone()], 3));
    let written = store
        .insert_alerts(&[
            store.seal_alert(&first, &key).expect("seal"),
            store.seal_alert(&second, &key).expect("seal"),
        ])
        .await
        .expect("insert");
    assert_eq!(
        written,
        vec![Inserted::Created(first.id), Inserted::OverBudget]
    );
    assert!(store.alert(second.id).await.expect("read").is_none());
    // The hour holds 2 of 5, not 4: the second press's 2 were given back.
    let written = store
        .insert_alerts(&[store.seal_alert(&third, &key).expect("seal")])
        .await
        .expect("insert");
    assert_eq!(written, vec![Inserted::Created(third.id)]);
}

async fn budgets_are_all_or_nothing_and_purged(f: Fixture) {
    use avisa_store::Budget;
    let store = f.store().await;
    let number = phone("+12135550100");
    let window = NOW - NOW % 3_600_000;
    let budgets = [Budget::number(&store, &number, 2), Budget::all(3)];
    for _ in 0..2 {
        assert_eq!(
            store.take_budgets(&budgets, window).await.expect("take"),
            None
        );
    }
    let spent = store.take_budgets(&budgets, window).await.expect("take");
    assert_eq!(spent.map(|b| b.kind), Some("number"));
    // The number's budget refused, so nothing was taken from "all": one
    // unit of it is left for another number.
    let other = [
        Budget::number(&store, &phone("+12135550101"), 2),
        Budget::all(3),
    ];
    assert_eq!(
        store.take_budgets(&other, window).await.expect("take"),
        None
    );
    let spent = store.take_budgets(&other, window).await.expect("take");
    assert_eq!(spent.map(|b| b.kind), Some("all"));
    // A new window starts afresh.
    assert_eq!(
        store
            .take_budgets(&budgets, window + 3_600_000)
            .await
            .expect("take"),
        None
    );

    // An unverified device older than the cut is forgotten; a verified one
    // and a recent one stay.
    let person = verified_person(&store, "+12135550102").await;
    let recent = store
        .register_device(
            &phone("+12135550103"),
            Language::Es,
            vec![9u8; 32],
            "111111",
            NOW + 600_000,
            NOW,
        )
        .await
        .expect("register");
    let old = store
        .register_device(
            &phone("+12135550104"),
            Language::Es,
            vec![8u8; 32],
            "222222",
            NOW,
            NOW - 86_400_000,
        )
        .await
        .expect("register");
    let (windows, devices) = store
        .purge_budgets_and_unverified(window + 3_600_000, NOW - 3_600_000)
        .await
        .expect("purge");
    assert_eq!(
        (windows, devices),
        (3, 1),
        "the first window's three budgets and one device"
    );
    assert!(
        store
            .device_by_token_hash(&[8u8; 32])
            .await
            .expect("read")
            .is_none(),
        "{old:?}"
    );
    assert!(
        store
            .device_by_token_hash(&[9u8; 32])
            .await
            .expect("read")
            .is_some(),
        "{recent:?}"
    );
    assert!(store.person(person).await.expect("read").is_some());
}

async fn checkin_timers_end_once_and_remind_once(f: Fixture) {
    use avisa_core::CheckinState;
    use avisa_store::{MAX_SCHEDULED_CHECKINS, NewCheckin};
    let store = f.store().await;
    let person = verified_person(&store, "+12135550100").await;
    let new = |deadline| NewCheckin {
        person_id: person,
        appointment_at: NOW,
        deadline,
        place: Some("Oficina de ICE".into()),
        note: Some("A-123".into()),
        location: Some(avisa_core::Location::new(34.05, -118.24, Some(30.0)).expect("loc")),
    };
    let soon = store
        .add_checkin(&new(NOW + 60_000), NOW)
        .await
        .expect("add");
    let later = store
        .add_checkin(&new(NOW + 3_600_000), NOW)
        .await
        .expect("add");
    // Read back whole, the sealed fields opened.
    let read = store
        .checkin(person, soon.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(read, soon);
    // Due: only the one whose deadline came.
    let due = store.due_checkins(NOW + 60_000, 10).await.expect("due");
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), vec![soon.id]);
    // Reminders: each taken once, however often asked.
    let taken = store
        .take_reminders(NOW + 30_000, 15 * 60_000, 10)
        .await
        .expect("remind");
    assert_eq!(taken.iter().map(|t| t.0).collect::<Vec<_>>(), vec![soon.id]);
    assert!(
        store
            .take_reminders(NOW + 31_000, 15 * 60_000, 10)
            .await
            .expect("remind")
            .is_empty()
    );
    // Ended once: the second of two racing ends loses.
    assert!(
        store
            .end_checkin(soon.id, CheckinState::CheckedOut, None, NOW + 1)
            .await
            .expect("end")
    );
    assert!(
        !store
            .end_checkin(soon.id, CheckinState::Fired, None, NOW + 2)
            .await
            .expect("end")
    );
    assert!(
        store
            .due_checkins(NOW + 60_000, 10)
            .await
            .expect("due")
            .is_empty()
    );
    // Extended: a later deadline, its reminder owed again.
    assert!(
        store
            .extend_checkin(later.id, NOW + 7_200_000, None, NOW + 3)
            .await
            .expect("extend")
    );
    // At most MAX_SCHEDULED_CHECKINS scheduled.
    for _ in 1..MAX_SCHEDULED_CHECKINS {
        store
            .add_checkin(&new(NOW + 3_600_000), NOW)
            .await
            .expect("add");
    }
    assert!(matches!(
        store.add_checkin(&new(NOW + 3_600_000), NOW).await,
        Err(StoreError::LimitReached)
    ));
    assert_eq!(
        store.checkins_of(person).await.expect("list").len() as i64,
        MAX_SCHEDULED_CHECKINS + 1
    );
}

/// 50 checks of one person's PIN at once (as from several instances): the
/// attempt is taken before anything is verified, so exactly the limit get
/// through and every other one finds the lock; a right PIN gives its attempt
/// back; an ended lock counts again from one.
async fn pin_attempts_are_taken_before_the_check(f: Fixture) {
    use avisa_store::PinAttempt;
    let store = f.store().await;
    let person = verified_person(&store, "+12135550177").await;
    let lock_until = NOW + 900_000;
    let tries: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.pin_attempt(person, 5, NOW, lock_until).await })
        })
        .collect();
    let mut taken = Vec::new();
    let mut locked = 0;
    for t in tries {
        match t.await.expect("task").expect("attempt") {
            PinAttempt::Taken { attempt, .. } => taken.push(attempt),
            PinAttempt::Locked { until } => {
                assert_eq!(until, lock_until);
                locked += 1;
            }
        }
    }
    taken.sort();
    assert_eq!(taken, vec![1, 2, 3, 4, 5], "each attempt number once");
    assert_eq!(locked, 45);
    // Still locked a moment before the end, for everyone.
    assert_eq!(
        store
            .pin_attempt(person, 5, lock_until - 1, lock_until + 900_000)
            .await
            .expect("attempt"),
        PinAttempt::Locked { until: lock_until }
    );
    // Once it ends, the count starts again at one.
    assert_eq!(
        store
            .pin_attempt(person, 5, lock_until, lock_until + 900_000)
            .await
            .expect("attempt"),
        PinAttempt::Taken {
            attempt: 1,
            locks_until: None
        }
    );
    // A right PIN gives its attempt back.
    store.pin_reset(person).await.expect("reset");
    for n in 1..=4 {
        assert_eq!(
            store
                .pin_attempt(person, 5, lock_until, lock_until + 900_000)
                .await
                .expect("attempt"),
            PinAttempt::Taken {
                attempt: n,
                locks_until: None
            }
        );
    }
    assert_eq!(
        store
            .pin_attempt(person, 5, lock_until, lock_until + 900_000)
            .await
            .expect("attempt"),
        PinAttempt::Taken {
            attempt: 5,
            locks_until: Some(lock_until + 900_000)
        },
        "the last attempt sets the lock as it is taken"
    );
}

/// "Delete my data" leaves no budget row that names the person's number
/// (a guessed number could be confirmed against it with the keys) or their
/// id; another person's rows still count.
async fn a_deleted_person_s_budgets_go_with_them(f: Fixture) {
    use avisa_store::{Budget, window};
    let store = f.store().await;
    let gone = verified_person(&store, "+12135550110").await;
    let stays = verified_person(&store, "+12135550111").await;
    let now = avisa_core::now_millis();
    let (hour, _) = window(now, 3_600_000);
    let (day, _) = window(now, 86_400_000);
    let of = |person: uuid::Uuid, number: &str| {
        let number = phone(number);
        [
            (Budget::number(&store, &number, 1), hour),
            (Budget::of_number(&store, "reply", &number, 1), day),
            (Budget::of_number(&store, "help-caller", &number, 1), hour),
            (Budget::of_number(&store, "inbound-miss", &number, 1), hour),
            // An earlier hour's alert SMS, whose window is still kept.
            (
                Budget::person_hour(&store, person, hour - 3_600_000, 1),
                day,
            ),
            (Budget::person_day(&store, person, 1), day),
        ]
    };
    let take = |budget: &Budget, at: i64| {
        let store = store.clone();
        let budget = budget.clone();
        async move {
            store
                .take_budgets(std::slice::from_ref(&budget), at)
                .await
                .expect("take")
                .is_none()
        }
    };
    for (budget, at) in of(gone, "+12135550110")
        .iter()
        .chain(&of(stays, "+12135550111"))
    {
        assert!(take(budget, *at).await, "the first unit of {}", budget.kind);
        assert!(!take(budget, *at).await, "{} is spent", budget.kind);
    }
    assert!(store.delete_person(gone).await.expect("delete"));
    for (budget, at) in &of(gone, "+12135550110") {
        assert!(
            take(budget, *at).await,
            "the deleted person's {} row is gone",
            budget.kind
        );
    }
    for (budget, at) in &of(stays, "+12135550111") {
        assert!(
            !take(budget, *at).await,
            "another person's {} row still counts",
            budget.kind
        );
    }
}
