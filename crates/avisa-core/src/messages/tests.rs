//! The texts, against what a person and a duty officer read.
use super::*;
use crate::sms::{Encoding, analyze};

fn facts(phone: &PhoneNumber) -> AlertFacts<'_> {
    AlertFacts {
        alert_id: uuid::Uuid::nil(),
        person_name: "Maria",
        person_phone: phone,
        location: Some(Location::new(34.05223, -118.24368, Some(14.6)).expect("loc")),
        at_millis: 1_782_934_200_000, // 2026-07-01 19:30 UTC
        sent_millis: None,
        zone: Zone::Pacific,
        consulate: Some((
            "Consulado General de Mexico en Los Angeles",
            Some("(213) 351-6800"),
        )),
        console_url: "https://avisa.example/console/alerts/x".into(),
        missed_checkin: None,
        case_number: Some("LAX-2026-0042"),
        name_at_end: false,
    }
}

#[test]
fn duty_texts_name_the_case_and_the_person() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let mut f = facts(&phone);
    f.person_name = "María Guadalupe Pérez";
    assert_eq!(
        consulate_cancelled(&f),
        "AVISA LAX-2026-0042 Maria G.: CANCELADA por la persona con su PIN. https://avisa.example/console/alerts/x"
    );
    assert!(
        consulate_duress(&f).starts_with("AVISA LAX-2026-0042 Maria G.: CANCELADA BAJO PRESION")
    );
    assert!(consulate_duty(&f).starts_with("AVISA ALERTA LAX-2026-0042: "));
    assert!(
        escalation_duty(false, "LAX-2026-0042", None, "María G.", 5, "u")
            .starts_with("AVISA LAX-2026-0042 Maria G.: SIN ATENDER desde hace 5 min")
    );
    // Alerts from before case numbers: the id's start.
    f.case_number = None;
    assert!(consulate_cancelled(&f).starts_with("AVISA 00000000 Maria G.: CANCELADA"));
}

#[test]
fn contact_alert_appends_map_and_local_time() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let text = contact_alert(
        "Me detuvieron. Llama a la abogada.",
        Language::Es,
        &phone,
        &facts(&phone),
    );
    assert_eq!(
        text,
        "Avisa: Maria pide ayuda:\nMe detuvieron. Llama a la abogada.\nUbicacion: https://www.openstreetmap.org/?mlat=34.05223&mlon=-118.24368 (+/-15 m) a las 12:30 hora del Pacifico."
    );
    let mut f = facts(&phone);
    f.location = None;
    let text = contact_alert("They took me.", Language::En, &phone, &f);
    assert_eq!(
        text,
        "Avisa: Maria needs help:\nThey took me.\nNo location. Sent at 12:30 Pacific time."
    );
}

/// Whatever the person wrote, every contact's SMS begins with who is asking,
/// in the contact's language: the name folded to GSM-7 with a GSM-7 text
/// (one accent would double the SMS), kept with a UCS-2 one.
#[test]
fn every_contact_alert_says_who_is_asking() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let mut f = facts(&phone);
    f.person_name = "José Luis Hernández";
    let written = [
        (
            "Me detuvo migra. Avisa a la familia y llama al consulado.",
            Language::Es,
        ),
        ("They took me. Call the lawyer.", Language::En),
        ("Mamá: me detuvieron, ¡llama a Núñez!", Language::Es),
    ];
    for (text, lang) in written {
        let sms = contact_alert(text, lang, &phone, &f);
        let first = sms.lines().next().unwrap_or("");
        let gsm = crate::sms::analyze(text).encoding == crate::sms::Encoding::Gsm7;
        let name = if gsm {
            "José Luis Hernandez"
        } else {
            "José Luis Hernández"
        };
        let want = match lang {
            Language::Es => format!("Avisa: {name} pide ayuda:"),
            Language::En => format!("Avisa: {name} needs help:"),
        };
        assert_eq!(first, want, "{sms}");
        assert_eq!(sms.lines().nth(1), Some(text), "{sms}");
        if gsm {
            assert_eq!(
                crate::sms::analyze(&sms).encoding,
                crate::sms::Encoding::Gsm7,
                "{sms}"
            );
        }
    }
    // The longest form, as the counter counts it, carries the name too.
    assert!(
        longest_contact_alert("Ayuda", Language::Es, "José Luis Hernández")
            .starts_with("Avisa: José Luis Hernandez pide ayuda:\nAyuda\n")
    );
}

/// The family in Mexico reads the time in its own zone, named as people
/// there say it; a number in the US in the person's zone; anyone else with
/// the UTC offset. 19:30 UTC on 1 July 2026: 12:30 in Los Angeles.
#[test]
fn each_contact_reads_the_time_in_their_own_zone() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let f = facts(&phone);
    let at = |to: &str, lang| {
        let to = PhoneNumber::parse(to).expect(to);
        let sms = contact_alert("Ayuda", lang, &to, &f);
        sms.rsplit_once(" a las ")
            .or(sms.rsplit_once(" at "))
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    };
    // Puebla, Mexico City, Guadalajara: the centre, no daylight saving.
    assert_eq!(
        at("+522221234567", Language::Es),
        "13:30 hora del centro de Mexico."
    );
    assert_eq!(
        at("+525512345678", Language::Es),
        "13:30 hora del centro de Mexico."
    );
    assert_eq!(
        at("+523312345678", Language::En),
        "13:30 central Mexico time."
    );
    // Culiacán, Hermosillo: the Pacific; Tijuana: the US Pacific's rules;
    // Cancún; Ciudad Juárez (the US Mountain's); Reynosa (the US Central's).
    assert_eq!(
        at("+526671234567", Language::Es),
        "12:30 hora del Pacifico de Mexico."
    );
    assert_eq!(
        at("+526621234567", Language::Es),
        "12:30 hora del Pacifico de Mexico."
    );
    assert_eq!(
        at("+526641234567", Language::Es),
        "12:30 hora de Baja California."
    );
    assert_eq!(
        at("+529981234567", Language::Es),
        "14:30 hora de Quintana Roo."
    );
    assert_eq!(
        at("+526561234567", Language::Es),
        "13:30 hora de Ciudad Juarez."
    );
    assert_eq!(
        at("+528991234567", Language::Es),
        "14:30 hora de la frontera."
    );
    // In the US: the person's zone, as before.
    assert_eq!(at("+13125550100", Language::Es), "12:30 hora del Pacifico.");
    // Guatemala: the person's zone with its offset.
    assert_eq!(
        at("+50222123456", Language::Es),
        "12:30 hora del Pacifico (UTC-7)."
    );
    // In winter Baja California and Juárez fall back; the centre does not.
    let mut winter = facts(&phone);
    winter.at_millis = 1_767_295_800_000; // 2026-01-01 19:30 UTC
    let mx = PhoneNumber::parse("+526641234567").expect("tj");
    assert!(
        contact_alert("Ayuda", Language::Es, &mx, &winter)
            .ends_with("11:30 hora de Baja California.")
    );
    let mx = PhoneNumber::parse("+522221234567").expect("puebla");
    assert!(
        contact_alert("Ayuda", Language::Es, &mx, &winter)
            .ends_with("13:30 hora del centro de Mexico.")
    );
    // A UCS-2 text carries the accents at no cost.
    let mx = PhoneNumber::parse("+522221234567").expect("puebla");
    assert!(
        contact_alert("Ayúdame", Language::Es, &mx, &f).ends_with("hora del centro de México.")
    );
}

/// At the end, if the person chose it: the same words and the same length.
#[test]
fn who_is_asking_may_come_last() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let mut f = facts(&phone);
    let first = contact_alert("Me detuvieron.", Language::Es, &phone, &f);
    f.name_at_end = true;
    let last = contact_alert("Me detuvieron.", Language::Es, &phone, &f);
    assert!(last.starts_with("Me detuvieron.\nUbicacion: "), "{last}");
    assert!(last.ends_with("\nAvisa: Maria pide ayuda."), "{last}");
    assert_eq!(analyze(&first), analyze(&last));
}

#[test]
fn a_late_press_gives_both_times() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let mut f = facts(&phone);
    f.sent_millis = Some(f.at_millis + 19 * 60 * 1000);
    let text = contact_alert("Me detuvieron.", Language::Es, &phone, &f);
    assert!(
        text.ends_with("Ha pulsado el boton a las 12:30 hora del Pacifico; enviado 12:49 hora del Pacifico (sin conexion)."),
        "{text}"
    );
    let text = contact_alert("They took me.", Language::En, &phone, &f);
    assert!(text.contains("Pressed the button at 12:30"), "{text}");
    assert!(consulate_duty(&f).contains("Pulsado 12:30 hora del Pacifico, enviado 12:49"));
}

#[test]
fn the_system_line_keeps_its_accents_only_where_the_sms_is_ucs2_anyway() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let mut f = facts(&phone);
    f.sent_millis = Some(f.at_millis + 19 * 60 * 1000);
    // GSM-7 text: the line stays GSM-7, and so does the SMS.
    let plain = contact_alert("Me detuvieron.", Language::Es, &phone, &f);
    assert!(plain.contains("Ubicacion:") && plain.contains("Ha pulsado el boton"));
    assert_eq!(analyze(&plain).encoding, Encoding::Gsm7);
    // A text with "ó" is UCS-2 already: the line is written properly,
    // at the same length.
    let accented = contact_alert("Me detuvo inmigración.", Language::Es, &phone, &f);
    assert!(
        accented.ends_with("Ubicación: https://www.openstreetmap.org/?mlat=34.05223&mlon=-118.24368 (+/-15 m). Ha pulsado el botón a las 12:30 hora del Pacífico; enviado 12:49 hora del Pacífico (sin conexión)."),
        "{accented}"
    );
    let line = |s: &str| s.lines().last().map(|l| l.chars().count());
    assert_eq!(line(&plain), line(&accented), "the same length either way");
}

#[test]
fn system_texts_fit_in_few_segments() {
    let phone = PhoneNumber::parse("+12135550100").expect("phone");
    let f = facts(&phone);
    for text in [
        self_confirmation(Language::Es, &f, 3, false, false),
        self_confirmation(Language::En, &f, 3, true, false),
        self_confirmation(Language::Es, &f, 3, false, true),
        self_confirmation(Language::En, &f, 3, false, true),
        consulate_duty(&f),
        safe(Language::Es, "Maria"),
        verification_code(Language::Es, "123456"),
        inbound_not_recognised(),
        help_sent(10),
        consulate_cancelled(&f),
        consulate_duress(&f),
        escalation_duty(
            true,
            "LAX-2026-0042",
            Some("Consulado General de México en Los Ángeles"),
            "María P.",
            15,
            "https://avisa.example.org/console/alerts/0193a0b2-7c4d-7000-8000-000000000000",
        ),
    ] {
        assert!(analyze(&text).segments <= 2, "{text}");
    }
    assert_eq!(
        analyze(&verification_code(Language::Es, "123456")).encoding,
        Encoding::Gsm7
    );
    assert!(consulate_duty(&f).contains("+12135550100"));
}
