//! What a staff password must not be: the accounts open every person's case
//! of a consulate. Long enough, not built from the username, and not one of
//! the shapes password crackers try first (one character or a short unit
//! repeated, keyboard rows and alphabet or digit runs, a common word with
//! digits around it). A passphrase of a few ordinary words passes.

/// Shortest password a staff account may have.
pub const MIN_PASSWORD: usize = 12;

/// Words a password must be more than (with digits and symbols around).
const COMMON: &[&str] = &[
    "password",
    "passwort",
    "contrasena",
    "contraseña",
    "clave",
    "secreto",
    "admin",
    "administrator",
    "administrador",
    "consulado",
    "consulate",
    "avisa",
    "mexico",
    "méxico",
    "welcome",
    "bienvenido",
    "letmein",
    "qwerty",
    "iloveyou",
    "teamo",
    "dragon",
    "monkey",
    "football",
    "futbol",
    "superman",
    "sunshine",
    "princess",
    "master",
    "trustno",
];

/// Keyboard rows and runs a cracker walks.
const RUNS: &[&str] = &[
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "09876543210",
    "zyxwvutsrqponmlkjihgfedcba",
];

/// Why `password` is too weak for the account `username`, or None.
pub fn password_problem(password: &str, username: &str) -> Option<&'static str> {
    let chars: Vec<char> = password.to_lowercase().chars().collect();
    if chars.len() < MIN_PASSWORD {
        return Some("a staff password has at least 12 characters");
    }
    let lower: String = chars.iter().collect();
    let user = username.to_lowercase();
    let parts = user
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| p.chars().count() >= 4);
    if (user.chars().count() >= 3 && lower.contains(&user))
        || parts.into_iter().any(|p| lower.contains(p))
    {
        return Some("the password is built from the username");
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("the password repeats too few different characters");
    }
    // A short unit repeated ("abcabcabcabc").
    let n = chars.len();
    if (1..=n / 2)
        .any(|unit| n.is_multiple_of(unit) && chars.chunks(unit).all(|c| c == &chars[..unit]))
    {
        return Some("the password repeats a short pattern");
    }
    // Mostly keyboard rows and alphabet or digit runs of 4 or more.
    let mut covered = vec![false; n];
    for run in RUNS {
        let run: Vec<char> = run.chars().collect();
        for start in 0..n {
            let len = (0..n - start)
                .take_while(|k| run.windows(k + 1).any(|w| w == &chars[start..=start + k]))
                .count();
            if len >= 4 {
                covered[start..start + len]
                    .iter_mut()
                    .for_each(|c| *c = true);
            }
        }
    }
    if covered.iter().filter(|c| **c).count() * 4 >= n * 3 {
        return Some("the password is mostly a keyboard row or a sequence");
    }
    // A common word with digits and symbols around it.
    let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty()
        || COMMON
            .iter()
            .any(|w| letters == *w || letters == w.repeat(2))
    {
        return Some("the password is a common word with digits or symbols around it");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_and_passphrases_pass() {
        for (weak, user) in [
            ("short", "ana"),
            ("aaaaaaaaaaaa", "ana"),
            ("ana.lopez2026!", "ana.lopez"),
            ("lopez-lopez-lopez", "ana.lopez"),
            ("abcabcabcabcabc", "bob"),
            ("qwertyuiop12", "bob"),
            ("1234567890123", "bob"),
            ("Password2026!!", "bob"),
            ("Consulado#2026", "bob"),
            ("!!!!2026!!!!", "bob"),
        ] {
            assert!(password_problem(weak, user).is_some(), "{weak} passed");
        }
        for strong in [
            "correct horse battery",
            "another long password",
            "Tres tristes tigres 7",
            "k8#Tq2!vLm9@Xz",
        ] {
            assert_eq!(password_problem(strong, "ana.lopez"), None, "{strong}");
        }
    }
}
