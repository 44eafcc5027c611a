//! `avisa backup` and `avisa restore`: a consistent copy of a live SQLite
//! database, and that copy put back into an empty data directory.
//!
//! The copy is SQLite's `VACUUM INTO` (a snapshot of what was committed when
//! it began, while presses go on), written owner-only, and never holds the
//! master key: that lives apart (`AVISA_DATA_KEY` or the key file), and is
//! backed up apart. Both commands prove the configured key opens the copy.
//! PostgreSQL has its own tools (`pg_dump`, base backups with WAL
//! archiving); both commands say so instead of copying.

use std::path::{Path, PathBuf};

use anyhow::Context;
use avisa_store::Db;

use crate::Config;
use crate::keyfile::{configured_key, owner_only};

/// What a backup or a restore wrote.
#[derive(Debug)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
}

const POSTGRES_TOOLS: &str = "on PostgreSQL, back up with its own tools: `pg_dump -Fc` (a \
    consistent copy while Avisa runs) or `pg_basebackup` with WAL archiving, and restore with \
    `pg_restore` into an empty database; the master key is not in the database, so keep it apart, \
    and run `avisa key check` against the restored database";

/// The SQLite file of the configured database; None on PostgreSQL.
fn sqlite_file(config: &Config) -> Option<PathBuf> {
    let url = config.database_url();
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

/// A consistent copy of the live database into `to`, which must not exist.
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<Copied> {
    let Some(file) = sqlite_file(config) else {
        anyhow::bail!("avisa backup copies SQLite databases; {POSTGRES_TOOLS}");
    };
    anyhow::ensure!(
        file.exists(),
        "there is no database at {} to back up",
        file.display()
    );
    anyhow::ensure!(
        !to.exists(),
        "{} exists: a backup never overwrites a file",
        to.display()
    );
    // Written in a folder of the owner's alone (SQLite creates the file
    // with the umask's mode) and moved out when whole and checked: a file
    // at `to` is always a complete copy, and nobody else ever reads one.
    let staging = with_suffix(to, ".partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    private_dir(&staging)?;
    let inside = staging.join("avisa.db");
    let db = avisa_store::connect(&config.database_url())
        .await
        .context("cannot open the database")?;
    let copied = db.copy_into(&inside).await;
    db.close().await;
    let checked = match copied {
        Ok(()) => owner_only_file(&inside),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write the copy")),
    };
    let checked = match checked {
        Ok(()) => opens_with_key(config, &inside).await,
        Err(e) => Err(e),
    };
    let moved = checked.and_then(|()| {
        std::fs::rename(&inside, to)
            .with_context(|| format!("cannot move the copy to {}", to.display()))
    });
    let _ = std::fs::remove_dir_all(&staging);
    moved?;
    Ok(Copied {
        path: to.to_path_buf(),
        bytes: std::fs::metadata(to)?.len(),
    })
}

/// Puts the backup `from` in place of the configured database, which must
/// not exist yet (an empty data directory), once the configured key is
/// shown to open it.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<Copied> {
    let Some(file) = sqlite_file(config) else {
        anyhow::bail!("avisa restore puts back SQLite backups; {POSTGRES_TOOLS}");
    };
    anyhow::ensure!(from.is_file(), "there is no backup at {}", from.display());
    for existing in [
        file.clone(),
        with_suffix(&file, "-wal"),
        with_suffix(&file, "-shm"),
    ] {
        anyhow::ensure!(
            !existing.exists(),
            "{} exists: restore into an empty data directory (move the old one aside first)",
            existing.display()
        );
    }
    opens_with_key(config, from).await?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        owner_only(dir);
    }
    let partial = with_suffix(&file, ".restoring");
    remove_if_there(&partial)?;
    std::fs::copy(from, &partial)
        .with_context(|| format!("cannot copy {} to {}", from.display(), partial.display()))?;
    owner_only_file(&partial)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &file)
        .with_context(|| format!("cannot put the database at {}", file.display()))?;
    Ok(Copied {
        bytes: std::fs::metadata(&file)?.len(),
        path: file,
    })
}

/// Fails unless the configured master key opens the SQLite file `path`
/// (a file no key was ever bound to passes: the first start binds one).
async fn opens_with_key(config: &Config, path: &Path) -> anyhow::Result<()> {
    let Some(key) = configured_key(config)? else {
        anyhow::bail!(
            "no master key is configured (AVISA_DATA_KEY, or {}): without it nothing shows the copy can be read",
            config.data_key_file().display()
        );
    };
    let url = format!("sqlite:{}", path.display());
    let db: Db = avisa_store::connect(&url)
        .await
        .with_context(|| format!("{} is not a database Avisa can open", path.display()))?;
    let opens = avisa_store::key_opens(&db, &key).await;
    db.close().await;
    match opens? {
        Some(true) | None => Ok(()),
        Some(false) => anyhow::bail!(
            "the configured master key does not open {}: it was sealed with another key",
            path.display()
        ),
    }
}

/// A new folder only its owner can enter.
fn private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn owner_only_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    }
    Ok(())
}
