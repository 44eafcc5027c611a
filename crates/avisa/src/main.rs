//! `avisa`: one binary for the server and its tools.

mod demo;
mod staff;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use avisa_core::directory::{Route, place_of};
use avisa_server::config::{Config, EXAMPLE};

#[derive(Parser)]
#[command(
    name = "avisa",
    version,
    about = "Panic-button alerts to a person's contacts and the nearest consulate."
)]
struct Cli {
    #[command(flatten)]
    data: DataOptions,
    #[command(subcommand)]
    command: Command,
}

/// Options every command that touches data shares, so `serve` and the tools
/// see the same data when given the same flags.
#[derive(Args)]
struct DataOptions {
    /// TOML configuration file (see `avisa default-config`).
    #[arg(long, global = true, value_name = "FILE", env = "AVISA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, data key, SMS log).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// A replacement consulate directory (CSV).
    #[arg(long, global = true, value_name = "FILE")]
    directory: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: phone API, console, dispatcher.
    Serve {
        /// Address and port to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a fully commented example configuration.
    DefaultConfig,
    /// Print the completion script of a shell (bash, zsh, fish, elvish,
    /// powershell) for avisa.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print avisa's manual page (roff, for man(1)).
    Man,
    /// Run one alert end to end on the embedded defaults and show what each
    /// recipient received (a temporary data directory; nothing is kept).
    Demo,
    /// The consulate directory.
    Consulates {
        #[command(subcommand)]
        command: ConsulateCommand,
    },
    /// Consular staff accounts for the console.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// The data key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Whether the server at the configured `listen` address is ready
    /// (`/readyz` answers 200): exit 0 if so, 1 if not. The container
    /// image's HEALTHCHECK; nothing else is needed in the image for it.
    Ready {
        /// Ask this URL instead.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// A consistent copy of the live SQLite database into a new file
    /// (owner-only, without the master key, which is backed up apart),
    /// while the server goes on. PostgreSQL: use pg_dump or base backups.
    Backup {
        /// The file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Puts a backup in place of the configured SQLite database, which
    /// must not exist yet, once the configured key is shown to open it.
    Restore {
        /// The backup `avisa backup` wrote.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Whether the configured key (AVISA_DATA_KEY, else the key file)
    /// opens the configured database; exit 0 if it does, 1 if not.
    Check,
    /// A new master key: the database's root key is re-wrapped with it in
    /// one transaction (servers running on the database go on), the key
    /// file replaced, and the old key shown to open nothing. With
    /// AVISA_DATA_KEY, the new key is written to <key file>.new for you to
    /// move into the variable.
    Rotate {
        /// For tests: stop after a step ("written", "committed") and wait
        /// to be killed.
        #[arg(long, hide = true)]
        pause_after: Option<String>,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Add an account (asks for the password, or reads one line from stdin).
    Add {
        #[arg(long)]
        username: String,
        /// A directory office id (`avisa consulates list`), or `ciam`.
        #[arg(long)]
        consulate: String,
        /// operator, supervisor or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// Every account.
    List,
    /// Disable an account and end its sessions.
    Disable { username: String },
    /// Set a new password (asked, or one line from stdin) and end its sessions.
    ResetPassword { username: String },
}

#[derive(Subcommand)]
enum ConsulateCommand {
    /// Every office in the directory in effect.
    List,
    /// The offices nearest a point, and where an alert from it would go.
    Nearest {
        #[arg(allow_negative_numbers = true)]
        lat: f64,
        #[arg(allow_negative_numbers = true)]
        lon: f64,
        /// How many offices to show.
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
}

impl DataOptions {
    /// Defaults → file → environment → these flags.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database {
            config.database_url = url.clone().into();
        }
        if let Some(dir) = &self.directory {
            config.directory = dir.clone();
        }
        Ok(config)
    }
}

fn main() -> std::process::ExitCode {
    match main_inner() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes: what a person can act on, each said once.
            eprintln!("error: {}", causes_once(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes, joined by ": ", leaving out a cause whose
/// words the text already holds (a database error quotes its source).
fn causes_once(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let line = cause.to_string();
        if text.contains(&line) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&line);
    }
    text
}

fn main_inner() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{EXAMPLE}");
            return Ok(());
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "avisa", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let config = cli.data.config()?;
    if let Command::Demo = cli.command {
        // The demo narrates; logs would only interleave with it.
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        return runtime.block_on(demo::run());
    }
    avisa_server::init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.listen = addr;
            }
            avisa_server::run(config).await
        }
        Command::Key {
            command: KeyCommand::Check,
        } => match avisa_server::check_key(&config).await? {
            Some(true) => {
                println!("this key opens the database");
                Ok(())
            }
            Some(false) => anyhow::bail!(
                "this key does NOT open the database: it was sealed with another key, and nothing in it can be read without that one"
            ),
            None => {
                println!(
                    "the database has no key bound yet: the first start binds the one configured"
                );
                Ok(())
            }
        },
        Command::Key {
            command: KeyCommand::Rotate { pause_after },
        } => {
            let pause = match pause_after.as_deref() {
                None => None,
                Some("written") => Some(avisa_server::PauseAt::Written),
                Some("committed") => Some(avisa_server::PauseAt::Committed),
                Some(other) => anyhow::bail!("--pause-after {other}: written or committed"),
            };
            let done = avisa_server::rotate_key(&config, pause).await?;
            if done.from_environment {
                println!(
                    "rotated: the new key is in {} — put it in AVISA_DATA_KEY, restart, then delete the file",
                    done.key_file.display()
                );
            } else {
                println!("rotated: the new key is in {}", done.key_file.display());
            }
            if done.old_key_still_root {
                println!(
                    "the old key no longer opens the database's keys; but this database was created before per-person keys, and values sealed before then still open with the old key: keep it as secret as before"
                );
            } else {
                println!("the old key opens nothing in this database any more");
            }
            Ok(())
        }
        Command::Ready { url } => {
            let url = url.unwrap_or_else(|| {
                // A server listening on every address answers on loopback.
                let mut at = config.listen;
                if at.ip().is_unspecified() {
                    at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{at}/readyz")
            });
            let client = avisa_sms::http::client(std::time::Duration::from_secs(3))?;
            let status = client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("no answer from {url}"))?
                .status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}: not ready");
            println!("ready");
            Ok(())
        }
        Command::Backup { to } => {
            let copied = avisa_server::backup(&config, &to).await?;
            println!(
                "backed up: {} ({} bytes); the configured key opens it. Keep the key apart from it.",
                copied.path.display(),
                copied.bytes
            );
            Ok(())
        }
        Command::Restore { from } => {
            let copied = avisa_server::restore(&config, &from).await?;
            println!(
                "restored: {} ({} bytes); the configured key opens it. `avisa serve` starts on it.",
                copied.path.display(),
                copied.bytes
            );
            Ok(())
        }
        Command::Migrate => {
            config.validate()?;
            std::fs::create_dir_all(&config.data_dir).ok();
            let backend = avisa_store::connect(&config.database_url())
                .await
                .context("cannot open the database")?;
            avisa_server::owner_only(&config.data_dir);
            println!("migrations applied ({})", backend.kind());
            backend.close().await;
            Ok(())
        }
        Command::DefaultConfig | Command::Completions { .. } | Command::Man | Command::Demo => {
            unreachable!("handled before the runtime starts")
        }
        Command::Staff { command } => {
            config.validate()?;
            match command {
                StaffCommand::Add {
                    username,
                    consulate,
                    role,
                } => staff::add(&config, &username, &consulate, &role).await,
                StaffCommand::List => staff::list(&config).await,
                StaffCommand::Disable { username } => staff::disable(&config, &username).await,
                StaffCommand::ResetPassword { username } => {
                    staff::reset_password(&config, &username).await
                }
            }
        }
        Command::Consulates { command } => {
            let directory = avisa_server::load_directory(&config)?;
            match command {
                ConsulateCommand::List => {
                    println!(
                        "{:<16} {:<21} {:<16} {:<3} phone",
                        "id", "kind", "city", "st"
                    );
                    for o in directory.offices() {
                        let kind = serde_plain_kind(o.kind);
                        println!(
                            "{:<16} {:<21} {:<16} {:<3} {}",
                            o.id,
                            kind,
                            o.city,
                            o.state,
                            o.phone.as_deref().unwrap_or("(unknown)")
                        );
                    }
                    println!("{} offices", directory.offices().len());
                }
                ConsulateCommand::Nearest { lat, lon, limit } => {
                    avisa_core::Location::new(lat, lon, None)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let place = place_of(lat, lon);
                    match directory.route(Some((lat, lon)), None, None) {
                        Route::Office { office, .. } => {
                            println!(
                                "an alert from here goes to: {} ({})",
                                office.id, office.name
                            )
                        }
                        Route::Ciam => println!(
                            "an alert from here goes to: ciam (the 24-hour centre: no office's jurisdiction covers this place)"
                        ),
                        Route::OutsideCoverage { country } => println!(
                            "an alert from here is outside coverage (country: {})",
                            country.as_deref().unwrap_or("unknown")
                        ),
                        Route::Unroutable => println!(
                            "no country here (at sea?): an alert would be routed by the person's home state"
                        ),
                    }
                    if let Some(sub) = place.subdivision.or(place.country) {
                        println!("location: {sub}");
                    }
                    println!("{:<16} {:<52} {:<16} {:>9}", "id", "name", "city", "km");
                    for (o, km) in directory.by_distance(lat, lon).into_iter().take(limit) {
                        println!("{:<16} {:<52} {:<16} {:>9.1}", o.id, o.name, o.city, km);
                    }
                }
            }
            Ok(())
        }
    }
}

fn serde_plain_kind(kind: avisa_core::directory::OfficeKind) -> &'static str {
    use avisa_core::directory::OfficeKind::*;
    match kind {
        ConsuladoGeneral => "consulado_general",
        ConsuladoDeCarrera => "consulado_de_carrera",
        SeccionConsular => "seccion_consular",
    }
}
