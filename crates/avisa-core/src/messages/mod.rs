//! Every SMS text Avisa sends, in Spanish and English.
//!
//! Avisa's own texts are written without the accents GSM-7 lacks (á, í, ó,
//! ú): one such letter switches a whole SMS to UCS-2 and cuts it from 160 to
//! 70 characters, which costs a slow network and a prepaid balance more
//! messages. Screens keep their accents; the person's own text is sent
//! exactly as written.

use crate::localtime::{Zone, clock_for, local_clock};
use crate::{Language, Location, PhoneNumber};

/// The 24-hour line of the consular network (CIAM, Tucson).
pub const CIAM_PHONE: &str = "+1 520 623 7874";

/// An OpenStreetMap link that puts a marker on the spot.
pub fn map_link(loc: &Location) -> String {
    format!(
        "https://www.openstreetmap.org/?mlat={:.5}&mlon={:.5}",
        loc.lat, loc.lon
    )
}

fn accuracy(loc: &Location) -> String {
    match loc.accuracy_m {
        Some(a) => format!(" (+/-{} m)", a.round() as i64),
        None => String::new(),
    }
}

/// What an alert's texts are made of.
pub struct AlertFacts<'a> {
    pub alert_id: uuid::Uuid,
    pub person_name: &'a str,
    pub person_phone: &'a PhoneNumber,
    pub location: Option<Location>,
    /// When the button was pressed (the time the texts give).
    pub at_millis: i64,
    /// When it reached the server, if that was much later (a press made
    /// without connection): the texts then say both.
    pub sent_millis: Option<i64>,
    pub zone: Zone,
    /// The office alerted (name, switchboard), if any.
    pub consulate: Option<(&'a str, Option<&'a str>)>,
    /// Link to the alert in the consulate console.
    pub console_url: String,
    /// Raised by a check-in timer whose deadline passed without a
    /// check-out: the planned place (empty when none was given).
    pub missed_checkin: Option<&'a str>,
    /// The case number staff say ("LAX-2026-0042"); [`CASE_SLOT`] in the
    /// first duty SMS, whose number the store gives as it writes the alert.
    pub case_number: Option<&'a str>,
    /// The person chose to say who is asking at the end of each contact's
    /// SMS, not first.
    pub name_at_end: bool,
}

/// Stands for the case number in a duty SMS written before the alert has
/// one; the store puts the number in as it writes the alert.
pub const CASE_SLOT: &str = "#CASO#";

/// The case as duty texts name it: its number, else the alert id's start
/// (alerts from before case numbers).
fn case_label(facts: &AlertFacts<'_>) -> String {
    match facts.case_number {
        Some(n) => n.to_string(),
        None => facts.alert_id.simple().to_string()[..8].to_string(),
    }
}

/// A contact's SMS: the person's own text, then where and when (the time as
/// the holder of `to` reads it: [`clock_for`]).
pub fn contact_alert(
    text: &str,
    lang: Language,
    to: &PhoneNumber,
    facts: &AlertFacts<'_>,
) -> String {
    let clock = clock_for(facts.at_millis, facts.zone, to, lang);
    let line = match (facts.sent_millis, &facts.location, lang) {
        (None, Some(loc), Language::Es) => format!(
            "Ubicacion: {}{} a las {clock}.",
            map_link(loc),
            accuracy(loc)
        ),
        (None, Some(loc), Language::En) => {
            format!("Location: {}{} at {clock}.", map_link(loc), accuracy(loc))
        }
        (None, None, Language::Es) => format!("Sin ubicacion. Enviado a las {clock}."),
        (None, None, Language::En) => format!("No location. Sent at {clock}."),
        // Pressed without connection, sent later: both times, so nobody
        // takes the sending time for the moment of the press.
        (Some(sent), loc, lang) => {
            let sent = clock_for(sent, facts.zone, to, lang);
            let place = loc.map(|l| format!("{}{}", map_link(&l), accuracy(&l)));
            match (place, lang) {
                (Some(p), Language::Es) => format!(
                    "Ubicacion: {p}. Ha pulsado el boton a las {clock}; enviado {sent} (sin conexion)."
                ),
                (Some(p), Language::En) => format!(
                    "Location: {p}. Pressed the button at {clock}; sent {sent} (no connection)."
                ),
                (None, Language::Es) => format!(
                    "Sin ubicacion. Ha pulsado el boton a las {clock}; enviado {sent} (sin conexion)."
                ),
                (None, Language::En) => format!(
                    "No location. Pressed the button at {clock}; sent {sent} (no connection)."
                ),
            }
        }
    };
    // The line keeps its accents when the person's text is UCS-2 anyway
    // (they cost nothing more then); a GSM-7 text keeps the GSM-7 line.
    let line = if crate::sms::analyze(text).encoding == crate::sms::Encoding::Gsm7 {
        line
    } else {
        with_accents(&line)
    };
    let line = match (facts.missed_checkin, lang) {
        (Some(place), Language::Es) => format!("Cita no confirmada{}. {line}", at_place(place)),
        (Some(place), Language::En) => format!("Missed check-in{}. {line}", at_place(place)),
        (None, _) => line,
    };
    // Who is asking, first, whatever the person wrote: the family gets it
    // from a number they do not know. Folded to GSM-7 when the text is
    // GSM-7 (an accent in the name would double the SMS), kept when the
    // text is UCS-2 anyway.
    let name = facts.person_name.trim();
    if name.is_empty() {
        return format!("{}\n{line}", text.trim_end());
    }
    let name = if crate::sms::analyze(text).encoding == crate::sms::Encoding::Gsm7 {
        crate::sms::fold_to_gsm(name)
    } else {
        name.to_string()
    };
    let who = who_asks(&name, lang);
    if facts.name_at_end {
        // The same characters either way ("pide ayuda." for "pide
        // ayuda:"): the count the person was shown holds.
        let who = format!("{}.", who.trim_end_matches(':'));
        return format!("{}\n{line}\n{who}", text.trim_end());
    }
    format!("{who}\n{}\n{line}", text.trim_end())
}

/// The first line of every contact's alert: "Avisa: José Luis Hernández
/// pide ayuda:" (the app's counter has the same words: `whoAsks` in
/// web/app/app.js).
pub fn who_asks(name: &str, lang: Language) -> String {
    match lang {
        Language::Es => format!("Avisa: {name} pide ayuda:"),
        Language::En => format!("Avisa: {name} needs help:"),
    }
}

/// ": the place" for a missed check-in's planned place, or nothing.
fn at_place(place: &str) -> String {
    let place = crate::sms::fold_to_gsm(place.trim());
    if place.is_empty() {
        String::new()
    } else {
        format!(" ({place})")
    }
}

/// The reminder to the person before a check-in's deadline.
pub fn checkin_reminder(lang: Language, deadline_clock: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: si no confirmas antes de las {deadline_clock} que saliste de tu cita (en la app, o responde SALI y tu PIN), se enviara tu alerta."
        ),
        Language::En => format!(
            "Avisa: if you do not confirm by {deadline_clock} that you left your appointment (in the app, or reply OUT and your PIN), your alert will be sent."
        ),
    }
}

/// The answer to "SALI <PIN>" from the person's phone.
pub fn checkout_reply(lang: Language, outcome: CheckoutReply<'_>) -> String {
    match (lang, outcome) {
        (Language::Es, CheckoutReply::Done(place)) => format!(
            "Avisa: confirmaste que saliste de tu cita{}. No se enviara la alerta.",
            place.map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        (Language::En, CheckoutReply::Done(place)) => format!(
            "Avisa: you confirmed you left your appointment{}. The alert will not be sent.",
            place.map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        (Language::Es, CheckoutReply::NoTimer) => {
            "Avisa: no tienes ninguna cita pendiente de confirmar.".into()
        }
        (Language::En, CheckoutReply::NoTimer) => {
            "Avisa: you have no appointment waiting to be confirmed.".into()
        }
        (Language::Es, CheckoutReply::WrongPin) => {
            "Avisa: NO se confirmo tu salida: el PIN no es correcto. Intenta otra vez: SALI y tu PIN.".into()
        }
        (Language::En, CheckoutReply::WrongPin) => {
            "Avisa: your check-out was NOT confirmed: the PIN is not right. Try again: OUT and your PIN.".into()
        }
        (Language::Es, CheckoutReply::Locked(minutes)) => format!(
            "Avisa: NO se confirmo tu salida: demasiados PIN incorrectos. Intenta en {minutes} min."
        ),
        (Language::En, CheckoutReply::Locked(minutes)) => format!(
            "Avisa: your check-out was NOT confirmed: too many wrong PINs. Try again in {minutes} min."
        ),
    }
}

/// What a check-out by SMS came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutReply<'a> {
    /// Checked out (the planned place, if any).
    Done(Option<&'a str>),
    NoTimer,
    WrongPin,
    /// The PIN is locked for this many minutes.
    Locked(u64),
}

/// Avisa's Spanish system words with the accents GSM-7 lacks, for an SMS
/// that is UCS-2 already. Each pair has the same number of characters, so
/// the count of a message does not change with them.
const ACCENTED: &[(&str, &str)] = &[
    ("Ubicacion", "Ubicación"),
    ("ubicacion", "ubicación"),
    ("Ha pulsado el boton", "Ha pulsado el botón"),
    ("sin conexion", "sin conexión"),
    ("hora del Atlantico", "hora del Atlántico"),
    ("hora del centro de Mexico", "hora del centro de México"),
    ("hora del Pacifico de Mexico", "hora del Pacífico de México"),
    ("hora de Ciudad Juarez", "hora de Ciudad Juárez"),
    ("hora del Pacifico", "hora del Pacífico"),
    ("hora de Hawai", "hora de Hawái"),
];

fn with_accents(line: &str) -> String {
    ACCENTED
        .iter()
        .fold(line.to_string(), |l, (plain, accented)| {
            l.replace(plain, accented)
        })
}

/// A contact's SMS at its longest: the person's text with the longest
/// location line an alert can add (a point with every digit, the largest
/// accuracy, the longest zone name a recipient may read). The 3-SMS limit
/// applies to this, so what a contact receives never runs longer than the
/// person was told.
pub fn longest_contact_alert(text: &str, lang: Language, person_name: &str) -> String {
    let phone = PhoneNumber::from_e164_unchecked("+10000000000".into());
    // A number in the US, one in Mexico's Pacific zone, one elsewhere (the
    // time with its UTC offset).
    let recipients = ["+12025550100", "+526691234567", "+50222123456"]
        .map(|e| PhoneNumber::from_e164_unchecked(e.into()));
    [Zone::Atlantic, Zone::Mountain, Zone::Hawaii]
        .into_iter()
        .flat_map(|zone| recipients.iter().map(move |to| (zone, to)))
        .map(|(zone, to)| {
            let facts = AlertFacts {
                alert_id: uuid::Uuid::nil(),
                person_name,
                person_phone: &phone,
                location: Some(Location {
                    lat: -89.99999,
                    lon: -179.99999,
                    accuracy_m: Some(crate::location::MAX_ACCURACY_M),
                }),
                at_millis: 0,
                sent_millis: None,
                zone,
                consulate: None,
                console_url: String::new(),
                missed_checkin: None,
                case_number: None,
                name_at_end: false,
            };
            contact_alert(text, lang, to, &facts)
        })
        .max_by_key(|t| t.chars().count())
        .unwrap_or_default()
}

/// How far apart a press and its arrival must be for the texts to give
/// both times.
pub const DELAY_TOLD_MS: i64 = 2 * 60 * 1000;

/// The confirmation to the person's own phone, to which an alert raised by
/// SMS adds how to cancel it if it was not them (a sender can be spoofed).
pub fn self_confirmation(
    lang: Language,
    facts: &AlertFacts<'_>,
    contacts: usize,
    practice: bool,
    by_sms: bool,
) -> String {
    let text = confirmation(lang, facts, contacts, practice);
    match (by_sms, lang) {
        (false, _) => text,
        (true, Language::Es) => format!(
            "{text} La ha activado un SMS con tu palabra clave; si no lo enviaste, cancelala en la app con tu PIN."
        ),
        (true, Language::En) => format!(
            "{text} An SMS with your keyword raised it; if it was not you, cancel it in the app with your PIN."
        ),
    }
}

fn confirmation(lang: Language, facts: &AlertFacts<'_>, contacts: usize, practice: bool) -> String {
    let office = facts.consulate.map(|(name, phone)| {
        let name = crate::sms::fold_to_gsm(name);
        match phone {
            Some(p) => format!("{name} {p}"),
            None => name,
        }
    });
    match (lang, practice) {
        (Language::Es, true) => format!(
            "Avisa PRACTICA: tu alerta se vio bien. En una real irian {contacts} mensajes a tus contactos{}. No se ha avisado a nadie.",
            office.map(|o| format!(" y al {o}")).unwrap_or_default()
        ),
        (Language::En, true) => format!(
            "Avisa PRACTICE: your alert worked. A real one would send {contacts} messages to your contacts{}. Nobody was told.",
            office
                .map(|o| format!(" and to the {o}"))
                .unwrap_or_default()
        ),
        (Language::Es, false) => format!(
            "Avisa: tu alerta ha sido enviada a {contacts} contactos{}. Si fue un error, cancelala en la app con tu PIN. Linea 24 h: {CIAM_PHONE}",
            office.map(|o| format!(" y al {o}")).unwrap_or_default()
        ),
        (Language::En, false) => format!(
            "Avisa: your alert went to {contacts} contacts{}. If it was a mistake, cancel it in the app with your PIN. 24 h line: {CIAM_PHONE}",
            office
                .map(|o| format!(" and to the {o}"))
                .unwrap_or_default()
        ),
    }
}

/// The structured SMS to a consulate's duty phone (Spanish: consular staff).
pub fn consulate_duty(facts: &AlertFacts<'_>) -> String {
    let short = case_label(facts);
    let place = match &facts.location {
        Some(loc) => format!("{:.5},{:.5}{}", loc.lat, loc.lon, accuracy(loc)),
        None => "sin ubicacion".into(),
    };
    let clock = local_clock(facts.at_millis, facts.zone, Language::Es);
    let when = match facts.sent_millis {
        Some(sent) => format!(
            "Pulsado {clock}, enviado {} (sin conexion)",
            local_clock(sent, facts.zone, Language::Es)
        ),
        None => clock,
    };
    let kind = match facts.missed_checkin {
        Some(plan) => format!("CITA NO CONFIRMADA{}", at_place(plan)),
        None => "ALERTA".into(),
    };
    format!(
        "AVISA {kind} {short}: {}, tel {}. {place}. {when}. {}",
        facts.person_name, facts.person_phone, facts.console_url
    )
}

/// "I'm safe", to each recipient who got the alert.
pub fn safe(lang: Language, person_name: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: {person_name} ha cancelado la alerta anterior y dice que se encuentra bien. Gracias."
        ),
        Language::En => format!(
            "Avisa: {person_name} cancelled the earlier alert and says they are safe. Thank you."
        ),
    }
}

/// The same notice to a consulate's duty phone.
/// "AVISA LAX-2026-0042 Maria G.: CANCELADA …": the number and the first
/// name, so an officer stands down the right case when presses cluster.
pub fn consulate_cancelled(facts: &AlertFacts<'_>) -> String {
    format!(
        "AVISA {}: CANCELADA por la persona con su PIN. {}",
        duty_case(facts),
        facts.console_url
    )
}

/// "LAX-2026-0042 Maria G." in GSM-7.
fn duty_case(facts: &AlertFacts<'_>) -> String {
    let name = crate::sms::fold_to_gsm(&short_name(facts.person_name));
    format!("{} {name}", case_label(facts))
        .trim_end()
        .to_string()
}

/// To each contact, when the person "cancelled" with the duress PIN: the
/// cancel was forced and the alert stands (never "I'm safe").
pub fn duress(lang: Language, person_name: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: a {person_name} le obligaron a cancelar la alerta. La alerta SIGUE EN PIE: sigue en peligro. Haz lo que te ha pedido y no le llames."
        ),
        Language::En => format!(
            "Avisa: {person_name} was forced to cancel the alert. The alert STANDS: they are not safe. Keep doing what they asked and do not call them."
        ),
    }
}

/// The same to a consulate's duty phone.
pub fn consulate_duress(facts: &AlertFacts<'_>) -> String {
    format!(
        "AVISA {}: CANCELADA BAJO PRESION: la persona uso su PIN de coaccion. La alerta SIGUE ACTIVA. {}",
        duty_case(facts),
        facts.console_url
    )
}

/// To a contact who chose location updates, when the person moved while
/// their alert is active: `name` is the person's, `clock` the local time of
/// the point.
pub fn location_update(lang: Language, name: &str, loc: &Location, clock: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: nueva ubicacion de {name}: {}{} a las {clock}.",
            map_link(loc),
            accuracy(loc)
        ),
        Language::En => format!(
            "Avisa: new location of {name}: {}{} at {clock}.",
            map_link(loc),
            accuracy(loc)
        ),
    }
}

/// "María Pérez López" → "María P.": enough for a duty officer to tell
/// cases apart by phone, not a full name in an SMS.
pub fn short_name(name: &str) -> String {
    let mut words = name.split_whitespace();
    match (words.next(), words.next()) {
        (Some(first), Some(second)) => {
            let initial: String = second.chars().take(1).collect();
            format!("{first} {initial}.")
        }
        (Some(first), None) => first.to_string(),
        _ => String::new(),
    }
}

/// To a consulate's duty phone and CIAM's when nobody acknowledged an alert
/// in time (`again`: the second threshold), with the console link.
pub fn escalation_duty(
    again: bool,
    case_number: &str,
    consulate: Option<&str>,
    person: &str,
    minutes: i64,
    console_url: &str,
) -> String {
    let level = if again {
        "SIGUE SIN ATENDER"
    } else {
        "SIN ATENDER"
    };
    // GSM-7 throughout: one accent would make it UCS-2, and three SMS.
    let office = crate::sms::fold_to_gsm(consulate.unwrap_or("sin consulado"));
    let person = crate::sms::fold_to_gsm(person);
    format!(
        "AVISA {case_number} {person}: {level} desde hace {minutes} min ({office}). Tomela en la consola: {console_url}"
    )
}

/// To the person's own phone, when their contacts or keyword changed (`at`
/// is the local time of the change): if it was not them, someone holds
/// their phone and the PIN.
pub fn changes_notice(lang: Language, at: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: tus contactos o tu palabra clave cambiaron ({at}). Si no fuiste tu, revisa tus contactos en Avisa y cambia tu PIN."
        ),
        Language::En => format!(
            "Avisa: your contacts or your keyword changed ({at}). If it was not you, check your contacts in Avisa and change your PIN."
        ),
    }
}

/// The one-time code.
pub fn verification_code(lang: Language, code: &str) -> String {
    match lang {
        Language::Es => format!(
            "Avisa: tu codigo de verificacion es {code}. Vence en 10 minutos. No lo compartas con nadie."
        ),
        Language::En => format!(
            "Avisa: your verification code is {code}. It expires in 10 minutes. Do not share it with anyone."
        ),
    }
}

/// The reply to an inbound SMS that raised no alert: the same for every
/// sender, so it says nothing about whether a number is registered.
/// The reply to "AYUDA <number> <PIN>" from another phone that raised (or
/// had raised) the person's alert: to the phone that asked, which may be
/// borrowed, so it names nobody.
pub fn help_sent(contacts: usize) -> String {
    format!(
        "Avisa: alerta enviada a {contacts} contactos y al consulado. Alert sent to {contacts} contacts and the consulate. Linea 24 h: {CIAM_PHONE}"
    )
}

pub fn inbound_not_recognised() -> String {
    format!(
        "Avisa: este mensaje no ha activado ninguna alerta. This message did not raise an alert. Emergencias/emergency: 911. Consulado 24 h: {CIAM_PHONE}"
    )
}

/// Added to the person's own confirmation of an alert raised past their
/// alert limit or SMS budget (GSM-7).
pub fn limit_reached_note(lang: Language) -> String {
    match lang {
        Language::Es => "Limite de alertas alcanzado: tus contactos ya avisados en los ultimos minutos no reciben esta otra vez; pero el consulado la recibe.",
        Language::En => "Alert limit reached: contacts already told in the last minutes do not get this one again; the consulate does.",
    }
    .to_string()
}

/// The one confirmation of a STOP, where the gateway does not send its own
/// (Kannel): what was done and how to undo it, in both languages, GSM-7.
pub fn opt_out_confirmed() -> String {
    "Avisa: ya no recibiras mensajes de Avisa a este numero. Para volver a recibirlos responde ALTA. \
     You will get no more Avisa messages; reply START to resume."
        .to_string()
}

/// The answer to HELP or INFO (the carriers' rules), where the gateway does
/// not send its own: who we are, how to stop, where help is. `operator` is
/// the operator's own line (`sms.help_text`), when set.
pub fn help_text(operator: &str) -> String {
    let operator = operator.trim();
    if !operator.is_empty() {
        return operator.to_string();
    }
    format!(
        "Avisa: alertas de emergencia que una persona de confianza configuro para ti. Responde ALTO para no recibir mas. \
         Avisa: emergency alerts someone set up for you. Reply STOP to opt out. Consulado 24 h: {CIAM_PHONE}"
    )
}

#[cfg(test)]
mod tests;
