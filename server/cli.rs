//! Command line: `akig serve | migrate | seed`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::startup::Application;
use crate::{db, seed, telemetry};

#[derive(Debug, Parser)]
#[command(name = "akig", version, about = "AKIG rent-collection backend")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
}

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
                let app = Application::build(config).await?;
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
                    _ => seed::seed_demo(&pool, today).await?,
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
