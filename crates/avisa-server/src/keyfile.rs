//! The master key on disk: where it is read from (`AVISA_DATA_KEY`, else
//! [`Config::data_key_file`]), generated for a new database, checked
//! against a database (`avisa key check`) and rotated (`avisa key rotate`).
//!
//! A rotation writes the new key beside the old one (`<file>.new`), then
//! re-wraps the database's root key in one transaction, then renames the
//! new file over the old. Killed at any point, the next start (or `avisa
//! key check`) finds `<file>.new` and decides by the database: if the old
//! key still opens it, the rotation never committed and the new file is
//! removed; if only the new key opens it, the rotation committed and the
//! new file takes the old one's place. No person is left unreadable either
//! way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use avisa_core::crypto::DataKey;
use avisa_store::{Db, Rotated, Store};
use secrecy::ExposeSecret;

use crate::Config;

/// Connects to the database (applying migrations) and binds it to its
/// master key: the configured one, else the key file
/// ([`Config::data_key_file`]), else — only for a database that has never
/// had a key — a new key written there with mode 0600. Completes or rolls
/// back a rotation that was interrupted.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let backend = connect(config).await?;
    owner_only(&config.data_dir);
    let key = match current_key(config, &backend, true).await? {
        Some(key) => key,
        None => {
            let key_file = config.data_key_file();
            anyhow::ensure!(
                !avisa_store::has_data_key(&backend).await?,
                "this database was sealed with a data key, but no key is configured: set AVISA_DATA_KEY, \
                 or restore {} from where you keep it",
                key_file.display()
            );
            let key = DataKey::generate()?;
            write_key_file(&key_file, &key)?;
            tracing::warn!(path = %key_file.display(), "generated the master key for this new database: back it up apart from the database; without it the data cannot be read");
            key
        }
    };
    Store::open(backend, &key).await.map_err(|e| match e {
        avisa_store::StoreError::WrongKey => anyhow::anyhow!(
            "{e}: set AVISA_DATA_KEY (or data_key), or put in {} the key it was created with",
            config.data_key_file().display()
        ),
        e => e.into(),
    })
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let pool = avisa_store::PoolSettings {
        max_connections: config.database.max_connections,
        acquire_timeout: config.database.acquire_timeout,
    };
    avisa_store::connect_with(&config.database_url(), pool)
        .await
        .context("cannot open the database (check database_url / AVISA_DATABASE_URL)")
}

/// The rotation's new key file, while a rotation is under way.
fn pending_file(config: &Config) -> PathBuf {
    let mut name = config.data_key_file().into_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// The configured master key (None: none configured). With `repair`, an
/// interrupted rotation is completed or rolled back on disk; without, the
/// key that opens the database is only read.
/// The master key configured (`AVISA_DATA_KEY`, else the key file), as
/// is: an interrupted rotation is [`current_key`]'s to settle.
pub(crate) fn configured_key(config: &Config) -> anyhow::Result<Option<DataKey>> {
    let configured = config.data_key.expose_secret().trim();
    let key_file = config.data_key_file();
    if !configured.is_empty() {
        Ok(Some(
            DataKey::from_base64(configured).context("data_key / AVISA_DATA_KEY")?,
        ))
    } else if key_file.exists() {
        Ok(Some(read_key_file(&key_file)?))
    } else {
        Ok(None)
    }
}

async fn current_key(config: &Config, db: &Db, repair: bool) -> anyhow::Result<Option<DataKey>> {
    let configured = config.data_key.expose_secret().trim();
    let key_file = config.data_key_file();
    let key = if !configured.is_empty() {
        Some(DataKey::from_base64(configured).context("data_key / AVISA_DATA_KEY")?)
    } else if key_file.exists() {
        if config.key_beside_data() {
            tracing::warn!(
                path = %key_file.display(),
                "the data key is inside the data directory, so a copy of the directory carries its key: \
                 move it (e.g. to ~/.config/avisa/data.key and set data_key_file), or use AVISA_DATA_KEY"
            );
        }
        Some(read_key_file(&key_file)?)
    } else {
        None
    };
    let pending = pending_file(config);
    if !pending.exists() {
        return Ok(key);
    }
    let new = read_key_file(&pending)?;
    let old_opens = match &key {
        Some(k) => avisa_store::key_opens(db, k).await? == Some(true),
        None => false,
    };
    if old_opens {
        if repair {
            std::fs::remove_file(&pending)
                .with_context(|| format!("cannot remove {}", pending.display()))?;
            tracing::warn!(path = %pending.display(), "a key rotation was interrupted before it changed the database: rolled back");
        }
        return Ok(key);
    }
    anyhow::ensure!(
        avisa_store::key_opens(db, &new).await? == Some(true),
        "neither the configured key nor the rotation's {} opens this database",
        pending.display()
    );
    if !configured.is_empty() {
        tracing::error!(path = %pending.display(), "AVISA_DATA_KEY holds the key from before a rotation: put the key from this file in AVISA_DATA_KEY, then delete the file");
    } else if repair {
        replace(&pending, &key_file)?;
        tracing::warn!(path = %key_file.display(), "a key rotation was interrupted after it changed the database: completed");
    }
    Ok(Some(new))
}

/// Whether the configured master key (`AVISA_DATA_KEY`, else the key
/// file) opens the configured database: `avisa key check`, for a restored
/// backup or a key kept apart. Writes nothing but pending migrations.
pub async fn check_key(config: &Config) -> anyhow::Result<Option<bool>> {
    let backend = connect(config).await?;
    let key = current_key(config, &backend, false).await?;
    let Some(key) = key else {
        backend.close().await;
        anyhow::bail!(
            "no key to check: set AVISA_DATA_KEY, or put the key in {} (data_key_file)",
            config.data_key_file().display()
        );
    };
    let opens = avisa_store::key_opens(&backend, &key).await?;
    backend.close().await;
    Ok(opens)
}

/// What `avisa key rotate` did.
#[derive(Debug)]
pub struct Rotation {
    /// Where the new key is.
    pub key_file: PathBuf,
    /// The new key is in `key_file` only as `<file>.new` (the old key came
    /// from AVISA_DATA_KEY, which the operator must change).
    pub from_environment: bool,
    /// The old key still opens values sealed before per-person keys (a
    /// database created by an older Avisa).
    pub old_key_still_root: bool,
}

/// Where `avisa key rotate` may pause, for the test that kills it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAt {
    /// The new key is written, the database not yet changed.
    Written,
    /// The database is changed, the new key not yet in place.
    Committed,
}

/// Re-wraps the database's root key under a new master key while servers
/// keep running on it (they hold the root key, not the master key), then
/// proves the old key opens nothing.
pub async fn rotate_key(config: &Config, pause: Option<PauseAt>) -> anyhow::Result<Rotation> {
    let backend = connect(config).await?;
    let old = current_key(config, &backend, true)
        .await?
        .context("no key to rotate: this database has none configured")?;
    anyhow::ensure!(
        avisa_store::key_opens(&backend, &old).await? == Some(true),
        "the configured key does not open this database"
    );
    let from_environment = !config.data_key.expose_secret().trim().is_empty();
    let new = DataKey::generate()?;
    let pending = pending_file(config);
    write_key_file(&pending, &new)?;
    let wait = |at: PauseAt| async move {
        if pause == Some(at) {
            println!("paused: {at:?}");
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    };
    wait(PauseAt::Written).await;
    let rotated = avisa_store::rotate_master_key(&backend, &old, &new).await?;
    wait(PauseAt::Committed).await;
    let key_file = config.data_key_file();
    if !from_environment {
        replace(&pending, &key_file)?;
    }
    // The proof: the old key opens nothing, the new one opens it.
    anyhow::ensure!(
        avisa_store::key_opens(&backend, &old).await? == Some(false),
        "the old key still opens the database"
    );
    anyhow::ensure!(
        avisa_store::key_opens(&backend, &new).await? == Some(true),
        "the new key does not open the database"
    );
    backend.close().await;
    Ok(Rotation {
        key_file: if from_environment { pending } else { key_file },
        from_environment,
        old_key_still_root: rotated == Rotated::DoneRootIsOldKey,
    })
}

/// Puts `from` in place of `to` (one rename), durably.
fn replace(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if let Some(dir) = to.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        dir.sync_all().ok();
    }
    Ok(())
}

/// The data directory and what it holds (the SQLite database, its WAL and
/// shared memory, the SMS log) for the server's own user only: 0700 and
/// 0600. Files SQLite makes later take the database file's mode.
pub fn owner_only(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let set = |path: &Path, mode: u32| {
            if path.exists()
                && let Err(e) =
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot restrict the permissions");
            }
        };
        set(dir, 0o700);
        for name in ["avisa.db", "avisa.db-wal", "avisa.db-shm", "sms-log.jsonl"] {
            set(&dir.join(name), 0o600);
        }
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<DataKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            anyhow::bail!(
                "the data key file {} can be read by other users of this machine: \
                 run `chmod 600 {}` (and check who may have copied it), then start again",
                path.display(),
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the data key file {}", path.display()))?;
    DataKey::from_base64(&text)
        .with_context(|| format!("the data key file {} does not hold a key", path.display()))
}

fn write_key_file(path: &Path, key: &DataKey) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the data key file {}", path.display()))?;
    file.write_all(format!("{}\n", key.to_base64().as_str()).as_bytes())?;
    file.sync_all()?;
    Ok(())
}
