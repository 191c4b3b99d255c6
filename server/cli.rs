//! Command line: `akig serve | migrate | seed`.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser, Subcommand};

use std::str::FromStr;

use crate::auth::password;
use crate::auth::rbac::Role;
use crate::config::{DatabaseArgs, ServeArgs};
use crate::startup::Application;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::users;
use crate::telemetry::LogFormat;
use crate::{db, seed, telemetry};

#[derive(Debug, Parser)]
#[command(name = "akig", version, about = "AKIG rent-collection backend")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of the serve variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC / gRPC-web server.
    Serve(ServeArgs),
    /// Apply pending database migrations (forward only).
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Load demo data (deterministic, idempotent) or a large benchmark dataset.
    Seed {
        #[command(flatten)]
        database: DatabaseArgs,
        /// About 12 sites, 2,000 tenants, 18 months of charges and payments, 20 agents.
        #[arg(long, conflicts_with = "scale", required_unless_present = "scale")]
        demo: bool,
        /// Number of tenants of a benchmark dataset (e.g. 100000).
        #[arg(long)]
        scale: Option<u64>,
    },
    /// Manage users from the command line (the first admin of a new installation).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from AKIG_NEW_USER_PASSWORD or from stdin.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        username: String,
        #[arg(long)]
        full_name: String,
        /// admin, director, site_manager, supervisor, agent or accountant.
        #[arg(long)]
        role: String,
        /// E.164 phone number, e.g. +224621234567.
        #[arg(long)]
        phone: Option<String>,
    },
}

/// Password of every demo account (development data only).
pub const DEMO_PASSWORD: &str = "akig-demo-2026";

impl Cli {
    /// The command line, or the process ends with clap's error, which names the environment
    /// variable of a bad value as well as its flag (`--listen <LISTEN> / AKIG_LISTEN`).
    pub fn parse_args() -> Self {
        Self::try_parse().unwrap_or_else(|error| with_env_name(error).exit())
    }

    pub async fn run(self) -> ExitCode {
        let log_format = match &self.command {
            Command::Serve(args) => args.log_format,
            _ => LogFormat::Pretty,
        };
        telemetry::init_tracing(log_format);
        match self.command.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

impl Command {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Serve(args) => {
                let config = args.parse().map_err(|e| {
                    let flag = flag_of_env(e.setting)
                        .map(|flag| format!("--{flag} / "))
                        .unwrap_or_default();
                    anyhow::anyhow!("invalid value for {flag}{}: {}", e.setting, e.reason)
                })?;
                let pool = db::lazy_pool(&config.database);
                db::check_schema_at_start(&pool, &config.database, args.migrate).await?;
                let app = Application::build_with_pool(config, pool).await?;
                let shutdown = app.shutdown_token();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    shutdown.cancel();
                });
                app.run_until_stopped().await
            }
            Command::Migrate { database } => {
                let pool = db::connect(&database.parse()?).await?;
                db::MIGRATOR.run(&pool).await?;
                tracing::info!("migrations applied");
                pool.close().await;
                Ok(())
            }
            Command::Seed {
                database,
                demo,
                scale,
            } => {
                let pool = db::connect(&database.parse()?).await?;
                let today = chrono::Utc::now().date_naive();
                let report = match (demo, scale) {
                    (_, Some(tenants)) => seed::seed_scale(&pool, tenants, today).await?,
                    _ => {
                        let report = seed::seed_demo(&pool, today).await?;
                        let hash = password::hash(DEMO_PASSWORD.to_owned()).await?;
                        users::set_missing_passwords(&pool, &hash).await?;
                        println!(
                            "demo accounts, password {DEMO_PASSWORD:?}: admin, directeur, \
                             gestionnaire, superviseur, agent, comptable (and agent02..agent20, \
                             gestionnaire2..4, superviseur2..3)"
                        );
                        report
                    }
                };
                tracing::info!(
                    sites = report.sites,
                    tenants = report.tenants,
                    charges = report.charges,
                    payments = report.payments,
                    users = report.users,
                    "seed done"
                );
                pool.close().await;
                Ok(())
            }
            Command::User(command) => command.run().await,
        }
    }
}

impl UserCommand {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            UserCommand::Create {
                database,
                username,
                full_name,
                role,
                phone,
            } => {
                let role = Role::from_str(&role)?;
                let password = match std::env::var("AKIG_NEW_USER_PASSWORD") {
                    Ok(password) => password,
                    Err(_) => {
                        eprintln!("password for {username} (one line on stdin):");
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                password::check_policy(&password)?;
                let pool = db::connect(&database.parse()?).await?;
                let mut conn = pool.acquire().await?;
                let user = users::create(
                    &mut conn,
                    &users::NewUser {
                        username,
                        full_name,
                        phone,
                        role_id: role.as_str().to_owned(),
                        supervisor_id: None,
                        site_ids: Vec::new(),
                        password_hash: Some(password::hash(password).await?),
                    },
                )
                .await?;
                let mut event = AuditEvent::new("users.create", Outcome::Ok)
                    .target("user", user.id)
                    .detail("via", "cli");
                event.actor_role = Some("cli".to_owned());
                audit::append(&mut *conn, &event).await?;
                println!(
                    "created user {} ({}) with id {}",
                    user.username, role, user.id
                );
                drop(conn);
                pool.close().await;
                Ok(())
            }
        }
    }
}

/// Every argument of every subcommand, with its long flag and environment variable.
fn flags_and_envs() -> Vec<(String, String)> {
    fn walk(command: &clap::Command, into: &mut Vec<(String, String)>) {
        for arg in command.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                into.push((long.to_owned(), env.to_string_lossy().into_owned()));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, into);
        }
    }
    let mut all = Vec::new();
    walk(&Cli::command(), &mut all);
    all
}

/// The long flag (without `--`) read from environment variable `env`.
fn flag_of_env(env: &str) -> Option<String> {
    flags_and_envs()
        .into_iter()
        .find(|(_, e)| e == env)
        .map(|(long, _)| long)
}

/// clap's error, with the environment variable of the argument it names, if it has one.
fn with_env_name(mut error: clap::Error) -> clap::Error {
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg).cloned() else {
        return error;
    };
    let long = arg
        .strip_prefix("--")
        .and_then(|rest| rest.split([' ', '=']).next())
        .unwrap_or_default();
    if let Some((_, env)) = flags_and_envs().into_iter().find(|(l, _)| l == long) {
        error.insert(
            ContextKind::InvalidArg,
            ContextValue::String(format!("{arg} / {env}")),
        );
    }
    error
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_flag_and_its_environment_variable() {
        let error = Cli::try_parse_from([
            "akig",
            "serve",
            "--database-url",
            "postgres://u@localhost/db",
            "--listen",
            "not-an-address",
        ])
        .expect_err("bad address");
        let text = with_env_name(error).to_string();
        assert!(text.contains("--listen"), "{text}");
        assert!(text.contains("AKIG_LISTEN"), "{text}");
    }

    #[test]
    fn settings_map_to_their_flags() {
        assert_eq!(flag_of_env("AKIG_LISTEN").as_deref(), Some("listen"));
        assert_eq!(flag_of_env("DATABASE_URL").as_deref(), Some("database-url"));
        assert_eq!(flag_of_env("AKIG_MIGRATE").as_deref(), Some("migrate"));
        assert_eq!(flag_of_env("NOT_A_SETTING"), None);
    }
}
