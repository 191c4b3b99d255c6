//! A database that accepts connections and never answers: every call that reaches it waits,
//! as calls do on a PostgreSQL that stopped without closing its sockets.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::app::{RedisMode, TestApp, spawn_app_with, test_config};
use super::db::TestDb;

/// Holds every connection it accepts, silent, until dropped.
pub struct BlackHole {
    pub port: u16,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { port, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server with its database behind a [`BlackHole`] (no Redis; a pool whose calls wait
/// up to `acquire_timeout`), and the hole. `config` adjusts the test configuration.
pub async fn spawn_app_on_black_hole(
    db: &TestDb,
    acquire_timeout: Duration,
    config: impl FnOnce(&mut akig::config::ServeConfig),
) -> (TestApp, BlackHole) {
    let hole = BlackHole::start().await;
    let options = db.connect_options().host("127.0.0.1").port(hole.port);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options.clone());
    let mut serve = test_config(options, RedisMode::None);
    serve.database.acquire_timeout = acquire_timeout;
    config(&mut serve);
    (spawn_app_with(serve, pool).await, hole)
}
