//! `avisa staff`: consular staff accounts. There is no default account: the
//! first one is made here, on the same data as `avisa serve`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use avisa_core::now_millis;
use avisa_core::{CIAM, Role};
use avisa_server::Config;
use avisa_server::password_problem;

/// Reads a password: asked twice (not echoed) on a terminal, or one line of
/// standard input otherwise.
fn read_password(prompt: &str, username: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if let Some(problem) = password_problem(&password, username) {
        bail!(
            "{problem}: choose another (a few ordinary words together, 12 characters or more, work well)"
        );
    }
    Ok(password)
}

async fn hash(store: &avisa_store::Store, password: String) -> anyhow::Result<String> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || store.vault().hash_secret(&password)).await??)
}

pub async fn add(
    config: &Config,
    username: &str,
    consulate: &str,
    role: &str,
) -> anyhow::Result<()> {
    let username = username.trim();
    if username.len() < 3
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        bail!("a username is 3 to 64 letters, digits, . _ - or @");
    }
    let Ok(role) = role.parse::<Role>() else {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        bail!("role must be one of {}", all.join(", "));
    };
    let directory = avisa_server::load_directory(config)?;
    if consulate != CIAM && directory.get(consulate).is_none() {
        bail!(
            "{consulate:?} is not an office of the directory (see `avisa consulates list`) nor `ciam`"
        );
    }
    let password = read_password(&format!("Password for {username}: "), username)?;
    let store = avisa_server::open_store(config).await?;
    let hashed = hash(&store, password).await?;
    match store
        .add_staff(username, &hashed, consulate, role, now_millis())
        .await
    {
        Ok(staff) => println!(
            "added {} ({} at {})",
            staff.username, staff.role, staff.consulate_id
        ),
        Err(avisa_store::StoreError::Conflict) => {
            bail!("a staff account named {username:?} already exists")
        }
        Err(e) => return Err(e.into()),
    }
    store.close().await;
    Ok(())
}

pub async fn list(config: &Config) -> anyhow::Result<()> {
    let store = avisa_server::open_store(config).await?;
    println!(
        "{:<24} {:<16} {:<11} status",
        "username", "consulate", "role"
    );
    for s in store.staff_all().await? {
        println!(
            "{:<24} {:<16} {:<11} {}",
            s.username,
            s.consulate_id,
            s.role,
            if s.disabled { "disabled" } else { "active" }
        );
    }
    store.close().await;
    Ok(())
}

pub async fn disable(config: &Config, username: &str) -> anyhow::Result<()> {
    let store = avisa_server::open_store(config).await?;
    let staff = store
        .staff_by_username(username)
        .await?
        .with_context(|| format!("no staff account named {username:?}"))?;
    store
        .set_staff_disabled(staff.id, true, now_millis())
        .await?;
    println!("disabled {username}; their sessions are ended");
    store.close().await;
    Ok(())
}

pub async fn reset_password(config: &Config, username: &str) -> anyhow::Result<()> {
    let store = avisa_server::open_store(config).await?;
    let staff = store
        .staff_by_username(username)
        .await?
        .with_context(|| format!("no staff account named {username:?}"))?;
    let password = read_password(&format!("New password for {username}: "), username)?;
    let hashed = hash(&store, password).await?;
    store
        .set_staff_password(staff.id, &hashed, now_millis())
        .await?;
    println!("password reset for {username}; their sessions are ended");
    store.close().await;
    Ok(())
}
