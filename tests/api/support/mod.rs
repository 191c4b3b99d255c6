//! What the tests share: a database per test ([`TestDb`]), the server on it ([`spawn_app`]),
//! logins and logged-in clients, wire values, and small data sets written straight in the
//! tables.
//!
//! A test reads: set up, act, assert.
//!
//! ```ignore
//! #[tokio::test]
//! async fn an_agent_sees_who_they_are() {
//!     let db = TestDb::new().await;
//!     create_user(&db.pool, "awa.camara", "agent", &[], None).await;
//!     let app = spawn_app(&db).await;
//!
//!     let token = app.token("awa.camara").await;
//!     let me = message(app.auth_as(&token).await.who_am_i(WhoAmIRequest {})).await;
//!
//!     assert_eq!(me.expect("who am i").user.expect("user").username, "awa.camara");
//! }
//! ```
//!
//! The files with many tests on one cast of sites, users and tenants build it in a `World`
//! (`World::new()`: a database, the cast, the server, the tokens) and wrap their RPCs in
//! methods taking a token.
//!
//! Decisions
//! - The database outlives the server: declare `db` first, so that it is dropped last.
//! - Set-up that is not the subject of a test is written straight in the tables
//!   ([`fixtures`]); what a test checks goes through the real server and a real client.

pub mod app;
pub mod black_hole;
pub mod clients;
#[path = "../../../server/testing.rs"]
pub mod db;
pub mod fixtures;

pub use app::{
    RedisMode, Relay, TEST_KID, TEST_SECRET, TestApp, limit, redis_connection, redis_url,
    spawn_app, spawn_app_and_state, spawn_app_behind_relay, spawn_app_with, test_config,
};
pub use black_hole::spawn_app_on_black_hole;
pub use clients::{authed, bad_fields, date, error_reason, message, ts, x_cache};
pub use db::TestDb;
pub use fixtures::{
    KALOUM, LedgerEntry, PASSWORD, ScoreOf, count, create_charge, create_charges, create_site,
    create_tenant, create_user, insert_cash_payment, insert_interaction, insert_ledger_entry,
    insert_mission, insert_promise, insert_reversal, insert_score_event, pay_charge, put_online,
    revoke, set_demo_passwords, today, today_minutes_ago,
};
