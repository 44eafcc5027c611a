//! SMS encoding and segment counting.
//!
//! A message goes out as GSM-7 (160 characters in one SMS, 153 per part when
//! split) when every character is in the GSM 03.38 alphabet, else as UCS-2
//! (70, then 67 per part). Spanish loses GSM-7 on "á", "í", "ó", "ú", "¡"
//! is fine, "é" and "ñ" are fine: counting this exactly is what lets the
//! person see what their message will cost before an emergency.

use serde::Serialize;

/// The encoding an SMS will be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// What a text costs as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsInfo {
    pub encoding: Encoding,
    /// Characters as a person counts them.
    pub characters: usize,
    /// How many SMS the text is split into (0 for an empty text).
    pub segments: usize,
}

/// The most segments a contact's message may take.
pub const MAX_MESSAGE_SEGMENTS: usize = 3;

/// GSM 03.38 basic character set (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + one septet each).
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Replaces letters GSM-7 lacks with the nearest it has ("Ángeles" →
/// "Angeles"), for Avisa's own texts (office names), so one accent does not
/// turn a whole message into UCS-2. Characters with no near letter stay.
pub fn fold_to_gsm(text: &str) -> String {
    text.chars()
        .map(|c| {
            if gsm_septets(c).is_some() {
                return c;
            }
            match c {
                'á' | 'â' | 'ã' => 'a',
                'í' | 'î' | 'ï' => 'i',
                'ó' | 'ô' | 'õ' => 'o',
                'ú' | 'û' => 'u',
                'ê' | 'ë' => 'e',
                'ç' => 'c',
                'Á' | 'À' | 'Â' | 'Ã' => 'A',
                'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
                'Ó' | 'Ò' | 'Ô' | 'Õ' => 'O',
                'Ú' | 'Ù' | 'Û' => 'U',
                'È' | 'Ê' | 'Ë' => 'E',
                '‘' | '’' => '\'',
                '“' | '”' => '"',
                '–' | '—' => '-',
                other => other,
            }
        })
        .collect()
}

/// Counts the encoding and segments of `text`.
/// Whether `c` joins the character before it in one grapheme, for the
/// sequences people send (web/app/sms.js has the same rule): a zero-width
/// joiner and what follows it, variation selectors, skin tones, combining
/// marks, a keycap, emoji tags.
fn extends(c: char) -> bool {
    matches!(c as u32,
        0x200D | 0xFE0E | 0xFE0F | 0x1F3FB..=0x1F3FF | 0x0300..=0x036F | 0x20D0..=0x20FF
        | 0xE0020..=0xE007F)
}

fn regional_indicator(c: char) -> bool {
    matches!(c as u32, 0x1F1E6..=0x1F1FF)
}

/// UTF-16 units per grapheme (a flag is two regional indicators).
fn ucs2_clusters(text: &str) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let mut prev: Option<char> = None;
    let mut flag_open = false;
    for c in text.chars() {
        let joins = prev.is_some_and(|p| p == '\u{200D}') || extends(c);
        let pairs = regional_indicator(c) && flag_open;
        match out.last_mut() {
            Some(last) if joins || pairs => *last += c.len_utf16(),
            _ => out.push(c.len_utf16()),
        }
        flag_open = regional_indicator(c) && !pairs;
        prev = Some(c);
    }
    out
}

pub fn analyze(text: &str) -> SmsInfo {
    let characters = text.chars().count();
    let gsm: Option<Vec<usize>> = text.chars().map(gsm_septets).collect();
    let (encoding, units, single, multi) = match gsm {
        Some(units) => (Encoding::Gsm7, units, 160, 153),
        // By grapheme: an emoji sequence (a ZWJ family, a flag, a skin
        // tone) is never split across two parts, as Twilio keeps them.
        None => (Encoding::Ucs2, ucs2_clusters(text), 70, 67),
    };
    let total: usize = units.iter().sum();
    let segments = if total == 0 {
        0
    } else if total <= single {
        1
    } else {
        // Walk the text so that an escaped GSM character or a UTF-16 surrogate
        // pair is never split across two parts, as real encoders do.
        let mut segments = 1;
        let mut used = 0;
        for u in units {
            if used + u > multi {
                segments += 1;
                used = 0;
            }
            used += u;
        }
        segments
    };
    SmsInfo {
        encoding,
        characters,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio keeps an emoji sequence whole: one that would straddle a
    /// part's end starts the next part.
    #[test]
    fn emoji_sequences_are_never_split() {
        // A family: 7 characters joined by ZWJs, 11 UTF-16 units.
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
        // 130 units fill part 1 (67) and 63 of part 2; the family does not
        // fit in the 4 left, so it starts part 3 with what follows: 11 + 56
        // = 67 units, three parts.
        let text = format!("{}{family}{}", "á".repeat(130), "á".repeat(56));
        assert_eq!(analyze(&text).segments, 3);
        // One more: 198 units would fit three parts of 67 if the family
        // could be split; whole, it takes a fourth.
        let text = format!("{}{family}{}", "á".repeat(130), "á".repeat(57));
        assert_eq!(
            analyze(&text).segments,
            4,
            "the 4 units left in part 2 stay empty"
        );
        // A flag and a skin tone are one each.
        assert_eq!(ucs2_clusters("🇲🇽🇺🇸"), vec![4, 4]);
        assert_eq!(ucs2_clusters("👍🏽a"), vec![4, 1]);
        assert_eq!(ucs2_clusters("1\u{FE0F}\u{20E3}"), vec![3]);
    }

    #[test]
    fn plain_spanish_with_n_tilde_stays_gsm() {
        let info = analyze("Mamá");
        assert_eq!(info.encoding, Encoding::Ucs2, "á is not in GSM-7");
        let info = analyze("Niño, llama al abogado. ¿Dónde?");
        assert_eq!(info.encoding, Encoding::Ucs2, "ó is not in GSM-7");
        let info = analyze("Niño, llama al abogado ¡ya!");
        assert_eq!(info.encoding, Encoding::Gsm7);
        assert_eq!(info.segments, 1);
    }

    #[test]
    fn folding_keeps_avisas_texts_in_gsm() {
        let folded = fold_to_gsm("Consulado General de México en Los Ángeles, San José");
        assert_eq!(
            folded,
            "Consulado General de México en Los Angeles, San José"
        );
        assert_eq!(analyze(&folded).encoding, Encoding::Gsm7);
        assert_eq!(fold_to_gsm("Niño ü"), "Niño ü", "letters GSM-7 has stay");
    }

    #[test]
    fn gsm_boundaries() {
        assert_eq!(analyze("").segments, 0);
        assert_eq!(analyze(&"a".repeat(160)).segments, 1);
        assert_eq!(analyze(&"a".repeat(161)).segments, 2);
        assert_eq!(analyze(&"a".repeat(306)).segments, 2);
        assert_eq!(analyze(&"a".repeat(307)).segments, 3);
        assert_eq!(analyze(&"a".repeat(459)).segments, 3);
        assert_eq!(analyze(&"a".repeat(460)).segments, 4);
        // "€" costs two septets.
        assert_eq!(analyze(&"€".repeat(80)).segments, 1);
        assert_eq!(analyze(&"€".repeat(81)).segments, 2);
        // An escape pair is never split: 152 septets then "€" moves to part two.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(analyze(&text).segments, 2);
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(analyze(&"á".repeat(70)).segments, 1);
        assert_eq!(analyze(&"á".repeat(71)).segments, 2);
        assert_eq!(analyze(&"á".repeat(201)).segments, 3);
        assert_eq!(analyze(&"á".repeat(202)).segments, 4);
        // An emoji is two UTF-16 units.
        let info = analyze("🚨");
        assert_eq!(
            (info.encoding, info.characters, info.segments),
            (Encoding::Ucs2, 1, 1)
        );
        assert_eq!(analyze(&"🚨".repeat(35)).segments, 1);
        assert_eq!(analyze(&"🚨".repeat(36)).segments, 2);
    }
}
