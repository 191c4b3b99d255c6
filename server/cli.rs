//! Command line: `akig serve | migrate | seed`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::str::FromStr;

use crate::auth::password;
use crate::auth::rbac::Role;
use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::startup::Application;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::users;
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
                let config = args.parse()?;
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
                             gestionnaire, superviseur, agent, comptable (and agent02..agent20)"
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
