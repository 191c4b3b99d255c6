//! ListArrearsMarkers through a real gRPC client: markers and clusters on small explicit
//! fixtures with exact figures, filters, scope, bad input, and agreement with the arrears rule
//! of the collections service (`domain::arrears`) on generated data and on the demo data set.

use std::collections::{BTreeMap, HashMap};

use akig::domain::{AgingBuckets, Bucket};
use akig::proto::v1::{
    AgingBucket, ArrearsCluster, ArrearsMarker, BoundingBox, LatLng, ListArrearsMarkersRequest,
    ListArrearsMarkersResponse, list_arrears_markers_response::Layer,
};
use chrono::{Datelike, Days, NaiveDate, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    TestApp, TestDb, authed, bad_fields, create_charge, create_site, create_tenant, create_user,
    insert_interaction, insert_promise, revoke, set_demo_passwords, spawn_app, today, ts,
};

fn days_ago(days: u64) -> NaiveDate {
    today() - Days::new(days)
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day0(0).expect("first of month")
}

/// A charge due on `due` (its period is that month) of `amount`, `paid` of it paid.
async fn charge(pool: &PgPool, tenant: Uuid, due: NaiveDate, amount: i64, paid: i64) {
    charge_of_period(pool, tenant, first_of_month(due), due, amount, paid).await;
}

/// A charge for the month `period`, due on `due`, of `amount`, `paid` of it paid.
async fn charge_of_period(
    pool: &PgPool,
    tenant: Uuid,
    period: NaiveDate,
    due: NaiveDate,
    amount: i64,
    paid: i64,
) {
    let id = create_charge(pool, tenant, period, due, amount).await;
    if paid > 0 {
        sqlx::query(
            "UPDATE charges SET amount_paid_gnf = $2,
                    paid_in_full_at = CASE WHEN $2 = amount_due_gnf THEN now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(paid)
        .execute(pool)
        .await
        .expect("pay charge");
    }
}

fn at(latitude: f64, longitude: f64) -> Option<LatLng> {
    Some(LatLng {
        latitude,
        longitude,
    })
}

/// Around Kaloum: (9.50, -13.72) to (9.52, -13.70).
fn kaloum_box() -> Option<BoundingBox> {
    Some(BoundingBox {
        south_west: at(9.50, -13.72),
        north_east: at(9.52, -13.70),
    })
}

struct World {
    app: TestApp,
    director: String,
    agent_kal: String,
    kal: Uuid,
    mat: Uuid,
    /// Tenants by name.
    t: HashMap<&'static str, Uuid>,
    contact: chrono::DateTime<Utc>,
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        create_user(pool, "dir", "director", &[], None).await;
        let agent = create_user(pool, "agent.kal", "agent", &[kal], None).await;
        let mut t = HashMap::new();
        let mut tenant = async |name: &'static str, site, home| {
            let id = create_tenant(pool, site, name, 1_000_000, home).await;
            t.insert(name, id);
            id
        };
        // In the box, Kaloum.
        let a = tenant("Aissatou", kal, Some((9.510, -13.712))).await;
        charge(pool, a, days_ago(100), 1_000_000, 0).await;
        charge(pool, a, days_ago(45), 1_000_000, 0).await;
        let b = tenant("Bah", kal, Some((9.511, -13.713))).await;
        charge(pool, b, days_ago(45), 1_000_000, 400_000).await;
        let c = tenant("Camara", kal, Some((9.512, -13.711))).await;
        charge(pool, c, days_ago(40), 500_000, 500_000).await;
        charge(pool, c, today(), 500_000, 0).await; // due today: owed, not overdue
        let paid = tenant("A Jour", kal, Some((9.515, -13.715))).await;
        charge(pool, paid, days_ago(10), 500_000, 500_000).await;
        let future = tenant("Futur", kal, Some((9.515, -13.715))).await;
        charge(pool, future, today() + Days::new(3), 500_000, 0).await;
        let gone = tenant("Parti", kal, Some((9.515, -13.715))).await;
        charge(pool, gone, days_ago(100), 500_000, 0).await;
        sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
            .bind(gone)
            .execute(pool)
            .await
            .expect("move out");
        // Kaloum, out of the box.
        let d = tenant("Diallo", kal, Some((9.60, -13.60))).await;
        charge(pool, d, days_ago(10), 300_000, 0).await;
        // Kaloum, no known home.
        let e = tenant("Sans Adresse", kal, None).await;
        charge(pool, e, days_ago(70), 700_000, 0).await;
        // In the box, Matoto.
        let m = tenant("Matoto", mat, Some((9.513, -13.714))).await;
        charge(pool, m, days_ago(5), 800_000, 0).await;

        // Aissatou: a call two days ago, a pending promise, a broken one.
        let contact = Utc::now() - TimeDelta::days(2);
        insert_interaction(pool, "call", a, agent, "promise_made", contact, false).await;
        let made = Utc::now() - TimeDelta::days(40);
        insert_promise(pool, a, agent, None, 100_000, days_ago(20), made).await;
        let pending = today() + Days::new(5);
        insert_promise(pool, a, agent, None, 100_000, pending, contact).await;

        let app = spawn_app(&db).await;
        let director = app.token("dir").await;
        let agent_kal = app.token("agent.kal").await;
        Self {
            app,
            director,
            agent_kal,
            kal,
            mat,
            t,
            contact,
            _db: db,
        }
    }

    async fn list(
        &self,
        token: &str,
        request: ListArrearsMarkersRequest,
    ) -> Result<ListArrearsMarkersResponse, tonic::Status> {
        self.app
            .geo_client()
            .await
            .list_arrears_markers(authed(request, token))
            .await
            .map(tonic::Response::into_inner)
    }

    fn name_of(&self, id: &str) -> &'static str {
        self.t
            .iter()
            .find(|(_, t)| t.to_string() == id)
            .map(|(name, _)| *name)
            .expect("a known tenant")
    }

    /// (name, outstanding) of the markers, in order.
    fn names(&self, response: &ListArrearsMarkersResponse) -> Vec<(&'static str, i64)> {
        markers(response)
            .iter()
            .map(|m| (self.name_of(&m.tenant_id), m.outstanding_gnf))
            .collect()
    }
}

fn markers(response: &ListArrearsMarkersResponse) -> &[ArrearsMarker] {
    match &response.layer {
        Some(Layer::Markers(list)) => &list.markers,
        other => panic!("expected markers, got {other:?}"),
    }
}

fn clusters(response: &ListArrearsMarkersResponse) -> (&[ArrearsCluster], f64) {
    match &response.layer {
        Some(Layer::Clusters(list)) => (&list.clusters, list.cell_size_deg),
        other => panic!("expected clusters, got {other:?}"),
    }
}

fn totals(response: &ListArrearsMarkersResponse) -> (i64, i64, i64) {
    (
        response.tenant_count,
        response.outstanding_gnf,
        response.unlocated_tenant_count,
    )
}

#[tokio::test]
async fn markers_in_a_box_carry_the_tenant_card_figures() {
    let world = World::new().await;
    let response = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                bounds: kaloum_box(),
                zoom: 15,
                ..Default::default()
            },
        )
        .await
        .expect("markers");
    assert_eq!(
        world.names(&response),
        [
            ("Aissatou", 2_000_000),
            ("Matoto", 800_000),
            ("Bah", 600_000),
            ("Camara", 500_000),
        ]
    );
    assert_eq!(totals(&response), (4, 3_900_000, 1));

    let list = markers(&response);
    let aissatou = &list[0];
    assert_eq!(aissatou.full_name, "Aissatou");
    assert_eq!(aissatou.site_id, world.kal.to_string());
    assert!(aissatou.unit_label.starts_with("U-"));
    assert_eq!(aissatou.location, at(9.510, -13.712));
    assert_eq!(aissatou.days_overdue, 100);
    assert_eq!(aissatou.aging_bucket, AgingBucket::DaysOver90 as i32);
    let contact = ts(world.contact);
    let shown = aissatou.last_contact_time.expect("contact");
    assert_eq!(shown.seconds, contact.seconds);
    assert!(aissatou.has_pending_promise);
    assert_eq!(aissatou.broken_promise_count, 1);

    let figures: Vec<(i32, i32, bool, i64, bool)> = list[1..]
        .iter()
        .map(|m| {
            (
                m.days_overdue,
                m.aging_bucket,
                m.has_pending_promise,
                m.broken_promise_count,
                m.last_contact_time.is_some(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            (5, AgingBucket::Days0To30 as i32, false, 0, false),
            (45, AgingBucket::Days31To60 as i32, false, 0, false),
            (0, AgingBucket::Unspecified as i32, false, 0, false),
        ]
    );
    assert_eq!(list[1].site_id, world.mat.to_string());
}

#[tokio::test]
async fn filters_combine() {
    let world = World::new().await;
    let everywhere = world
        .list(&world.director, ListArrearsMarkersRequest::default())
        .await
        .expect("everywhere");
    assert_eq!(
        world.names(&everywhere),
        [
            ("Aissatou", 2_000_000),
            ("Matoto", 800_000),
            ("Bah", 600_000),
            ("Camara", 500_000),
            ("Diallo", 300_000),
        ]
    );
    assert_eq!(totals(&everywhere), (5, 4_200_000, 1));

    let owing_more = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                min_outstanding_gnf: 600_000,
                ..Default::default()
            },
        )
        .await
        .expect("min outstanding");
    assert_eq!(
        world.names(&owing_more),
        [
            ("Aissatou", 2_000_000),
            ("Matoto", 800_000),
            ("Bah", 600_000)
        ]
    );
    // Sans Adresse owes 700,000: still counted as unlocated.
    assert_eq!(totals(&owing_more), (3, 3_400_000, 1));

    let old = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                aging_buckets: vec![
                    AgingBucket::DaysOver90 as i32,
                    AgingBucket::Days31To60 as i32,
                ],
                ..Default::default()
            },
        )
        .await
        .expect("buckets");
    assert_eq!(
        world.names(&old),
        [("Aissatou", 2_000_000), ("Bah", 600_000)]
    );
    // Sans Adresse is 61-90: not counted.
    assert_eq!(totals(&old), (2, 2_600_000, 0));

    let matoto = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                site_ids: vec![world.mat.to_string()],
                bounds: kaloum_box(),
                ..Default::default()
            },
        )
        .await
        .expect("one site");
    assert_eq!(world.names(&matoto), [("Matoto", 800_000)]);
    assert_eq!(totals(&matoto), (1, 800_000, 0));
}

#[tokio::test]
async fn above_max_markers_the_answer_is_grid_clusters() {
    let world = World::new().await;
    let response = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                zoom: 10,
                max_markers: 4,
                ..Default::default()
            },
        )
        .await
        .expect("clusters");
    assert_eq!(totals(&response), (5, 4_200_000, 1));
    let (cells, size) = clusters(&response);
    // 360 / 2^10 / 4 degrees.
    assert_eq!(size, 0.087_890_625);
    let shown: Vec<(i64, i64, i32)> = cells
        .iter()
        .map(|c| (c.tenant_count, c.outstanding_gnf, c.worst_aging_bucket))
        .collect();
    assert_eq!(
        shown,
        [
            (4, 3_900_000, AgingBucket::DaysOver90 as i32),
            (1, 300_000, AgingBucket::Days0To30 as i32),
        ]
    );
    // Cell (row 1132, column 1891) of the grid anchored at (-90, -180).
    let cell = cells[0].cell.expect("cell");
    assert_eq!(cell.south_west, at(9.492_187_5, -13.798_828_125));
    assert_eq!(cell.north_east, at(9.580_078_125, -13.710_937_5));
    let center = cells[0].center.expect("center");
    assert!((center.latitude - 9.5115).abs() < 1e-9, "{center:?}");
    assert!((center.longitude + 13.7125).abs() < 1e-9, "{center:?}");
    assert_eq!(cells[1].center, at(9.60, -13.60));

    // Exactly max_markers matches: still markers.
    let response = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                bounds: kaloum_box(),
                max_markers: 4,
                ..Default::default()
            },
        )
        .await
        .expect("markers");
    assert_eq!(markers(&response).len(), 4);
}

#[tokio::test]
async fn an_agent_sees_only_the_tenants_of_their_sites() {
    let world = World::new().await;
    let mine = world
        .list(
            &world.agent_kal,
            ListArrearsMarkersRequest {
                bounds: kaloum_box(),
                ..Default::default()
            },
        )
        .await
        .expect("agent");
    assert_eq!(
        world.names(&mine),
        [
            ("Aissatou", 2_000_000),
            ("Bah", 600_000),
            ("Camara", 500_000)
        ]
    );
    assert_eq!(totals(&mine), (3, 3_100_000, 1));

    // Another site asked for: filtered out, as in SearchTenants.
    let other = world
        .list(
            &world.agent_kal,
            ListArrearsMarkersRequest {
                site_ids: vec![world.mat.to_string()],
                ..Default::default()
            },
        )
        .await
        .expect("other site");
    assert!(markers(&other).is_empty());
    assert_eq!(totals(&other), (0, 0, 0));

    // Clusters are cut to the scope as well.
    let cells = world
        .list(
            &world.agent_kal,
            ListArrearsMarkersRequest {
                max_markers: 1,
                zoom: 10,
                ..Default::default()
            },
        )
        .await
        .expect("agent clusters");
    let counts: Vec<(i64, i64)> = clusters(&cells)
        .0
        .iter()
        .map(|c| (c.tenant_count, c.outstanding_gnf))
        .collect();
    assert_eq!(counts, [(3, 3_100_000), (1, 300_000)]);
}

#[tokio::test]
async fn without_the_permission_the_map_is_refused() {
    let db = TestDb::new().await;
    let site = create_site(&db.pool, "KAL").await;
    create_user(&db.pool, "agent.kal", "agent", &[site], None).await;
    // The grant table is data.
    revoke(&db.pool, "agent", "geo.markers.read").await;
    let app = spawn_app(&db).await;
    let token = app.token("agent.kal").await;
    let status = app
        .geo_client()
        .await
        .list_arrears_markers(authed(ListArrearsMarkersRequest::default(), &token))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_requests_name_every_field() {
    let world = World::new().await;
    let status = world
        .list(
            &world.director,
            ListArrearsMarkersRequest {
                bounds: Some(BoundingBox {
                    south_west: at(f64::NAN, -13.7),
                    north_east: None,
                }),
                site_ids: vec!["not-a-uuid".into()],
                zoom: 23,
                min_outstanding_gnf: -1,
                aging_buckets: vec![AgingBucket::Unspecified as i32, 99],
                max_markers: -1,
            },
        )
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&status),
        [
            "bounds.south_west.latitude",
            "bounds.north_east",
            "site_ids[0]",
            "zoom",
            "min_outstanding_gnf",
            "aging_buckets[0]",
            "aging_buckets[1]",
            "max_markers",
        ]
    );

    let refused = async |request: ListArrearsMarkersRequest| {
        let status = world
            .list(&world.director, request)
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument);
        bad_fields(&status)
    };
    let south_above_north = ListArrearsMarkersRequest {
        bounds: Some(BoundingBox {
            south_west: at(9.6, -13.8),
            north_east: at(9.5, -13.6),
        }),
        ..Default::default()
    };
    assert_eq!(refused(south_above_north).await, ["bounds"]);
    let across_the_antimeridian = ListArrearsMarkersRequest {
        bounds: Some(BoundingBox {
            south_west: at(9.5, 179.0),
            north_east: at(9.6, -179.0),
        }),
        ..Default::default()
    };
    assert_eq!(refused(across_the_antimeridian).await, ["bounds"]);
    let out_of_range = ListArrearsMarkersRequest {
        bounds: Some(BoundingBox {
            south_west: at(-91.0, -13.8),
            north_east: at(9.5, 181.0),
        }),
        ..Default::default()
    };
    assert_eq!(
        refused(out_of_range).await,
        ["bounds.south_west.latitude", "bounds.north_east.longitude"]
    );
    let too_many = ListArrearsMarkersRequest {
        max_markers: 5_001,
        zoom: -1,
        ..Default::default()
    };
    assert_eq!(refused(too_many).await, ["zoom", "max_markers"]);
}

// ---------------------------------------------------------------------------------------------
// Agreement with the arrears rule.

/// Every marker (all of them, as markers) is what `domain::arrears` says of the tenant's
/// charges today, and every active located tenant owing something has one.
async fn assert_markers_follow_the_arrears_rule(pool: &PgPool, app: &TestApp, token: &str) {
    let response = app
        .geo_client()
        .await
        .list_arrears_markers(authed(
            ListArrearsMarkersRequest {
                max_markers: 5_000,
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("markers")
        .into_inner();
    let shown: HashMap<String, (i64, i32, i32)> = markers(&response)
        .iter()
        .map(|m| {
            (
                m.tenant_id.clone(),
                (m.outstanding_gnf, m.days_overdue, m.aging_bucket),
            )
        })
        .collect();
    let tenants: Vec<(Uuid, bool, Option<f64>)> =
        sqlx::query_as("SELECT id, active, home_latitude FROM tenants")
            .fetch_all(pool)
            .await
            .expect("tenants");
    let aging = AgingBuckets::default();
    let mut conn = pool.acquire().await.expect("conn");
    let (mut expected_count, mut expected_sum, mut unlocated) = (0, 0, 0);
    for (id, active, latitude) in tenants {
        let charges = akig::store::charges::arrears_charges(&mut conn, id, today())
            .await
            .expect("charges");
        let report =
            akig::domain::arrears(&charges, today(), false, true, &aging).expect("arrears");
        let expected = (report.outstanding > 0 && active).then(|| {
            let bucket = report
                .aging
                .iter()
                .find(|line| line.tenant_count == 1)
                .map(|line| line.bucket);
            (
                report.outstanding,
                report.days_overdue,
                proto_bucket(bucket),
            )
        });
        match (expected, latitude) {
            (Some(figures), Some(_)) => {
                assert_eq!(shown.get(&id.to_string()), Some(&figures), "tenant {id}");
                expected_count += 1;
                expected_sum += figures.0;
            }
            (Some(_), None) => unlocated += 1,
            (None, _) => assert!(!shown.contains_key(&id.to_string()), "tenant {id}"),
        }
    }
    assert_eq!(shown.len(), expected_count);
    assert_eq!(
        totals(&response),
        (expected_count as i64, expected_sum, unlocated)
    );
}

fn proto_bucket(bucket: Option<Bucket>) -> i32 {
    (match bucket {
        None => AgingBucket::Unspecified,
        Some(Bucket::Days0To30) => AgingBucket::Days0To30,
        Some(Bucket::Days31To60) => AgingBucket::Days31To60,
        Some(Bucket::Days61To90) => AgingBucket::Days61To90,
        Some(Bucket::Over90) => AgingBucket::DaysOver90,
    }) as i32
}

#[tokio::test]
async fn markers_agree_with_the_arrears_rule_on_generated_charges() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let site = create_site(pool, "KAL").await;
    create_user(pool, "dir", "director", &[], None).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    for k in 0..60 {
        let home = (k % 7 != 0).then(|| {
            (
                9.45 + rng.random_range(0.0..0.15),
                -13.75 + rng.random_range(0.0..0.15),
            )
        });
        let tenant = create_tenant(pool, site, &format!("Locataire {k}"), 1_000_000, home).await;
        // Up to 8 monthly charges, the last one due anywhere from 20 days ahead to 200 ago.
        let months = rng.random_range(0..=8_u32);
        let last_due = today() + Days::new(20) - Days::new(rng.random_range(0..=220));
        for m in 0..months {
            let due = last_due - chrono::Months::new(months - 1 - m);
            let amount = rng.random_range(1..=20) * 50_000;
            let paid = match rng.random_range(0..4) {
                0 => 0,
                1 => amount,
                _ => rng.random_range(0..=amount),
            };
            charge(pool, tenant, due, amount, paid).await;
        }
        if k % 11 == 5 {
            sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
                .bind(tenant)
                .execute(pool)
                .await
                .expect("move out");
        }
    }
    let app = spawn_app(&db).await;
    let token = app.token("dir").await;
    assert_markers_follow_the_arrears_rule(pool, &app, &token).await;
}

/// Per cell `(floor((lat + 90) / size), floor((lon + 180) / size))` of the markers: count,
/// amount, worst bucket, and sums of positions.
type CellFigures = (i64, i64, i32, f64, f64);

fn markers_by_cell(markers: &[ArrearsMarker], size: f64) -> BTreeMap<(i64, i64), CellFigures> {
    let mut cells: BTreeMap<(i64, i64), CellFigures> = BTreeMap::new();
    for m in markers {
        let at = m.location.expect("location");
        let key = (
            ((at.latitude + 90.0) / size).floor() as i64,
            ((at.longitude + 180.0) / size).floor() as i64,
        );
        let cell = cells.entry(key).or_insert((0, 0, 0, 0.0, 0.0));
        cell.0 += 1;
        cell.1 += m.outstanding_gnf;
        cell.2 = cell.2.max(m.aging_bucket);
        cell.3 += at.latitude;
        cell.4 += at.longitude;
    }
    cells
}

/// The clusters (summed in the database per cell and class of due date, merged by the domain)
/// hold exactly the tenants the markers of the same request show: per cell, count, amount,
/// worst bucket and mean position, at several zooms and with each filter.
#[tokio::test]
async fn clusters_add_up_the_markers_of_their_cells() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    create_user(pool, "dir", "director", &[], None).await;
    create_user(pool, "agent.kal", "agent", &[kal], None).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC1A5);
    for k in 0..150 {
        let site = if k % 3 == 0 { mat } else { kal };
        let home = (k % 13 != 0).then(|| {
            (
                9.50 + rng.random_range(0.0..0.06),
                -13.72 + rng.random_range(0.0..0.06),
            )
        });
        let tenant = create_tenant(pool, site, &format!("Locataire {k}"), 1_000_000, home).await;
        let months = rng.random_range(0..=6_u32);
        let last_due = today() + Days::new(10) - Days::new(rng.random_range(0..=150));
        for m in 0..months {
            let due = last_due - chrono::Months::new(months - 1 - m);
            let amount = rng.random_range(1..=20) * 50_000;
            let paid = match rng.random_range(0..3) {
                0 => 0,
                _ => rng.random_range(0..=amount),
            };
            charge(pool, tenant, due, amount, paid).await;
        }
    }
    let app = spawn_app(&db).await;
    let director = app.token("dir").await;
    let agent = app.token("agent.kal").await;
    let mut client = app.geo_client().await;
    let filters = [
        ListArrearsMarkersRequest::default(),
        ListArrearsMarkersRequest {
            min_outstanding_gnf: 400_000,
            ..Default::default()
        },
        ListArrearsMarkersRequest {
            aging_buckets: vec![
                AgingBucket::Days31To60 as i32,
                AgingBucket::DaysOver90 as i32,
            ],
            ..Default::default()
        },
        ListArrearsMarkersRequest {
            site_ids: vec![kal.to_string()],
            bounds: Some(BoundingBox {
                south_west: at(9.51, -13.71),
                north_east: at(9.55, -13.67),
            }),
            min_outstanding_gnf: 100_000,
            ..Default::default()
        },
    ];
    let mut compared = 0;
    for token in [&director, &agent] {
        for filter in &filters {
            let all = client
                .list_arrears_markers(authed(
                    ListArrearsMarkersRequest {
                        max_markers: 5_000,
                        ..filter.clone()
                    },
                    token,
                ))
                .await
                .expect("markers")
                .into_inner();
            for zoom in [11, 14, 16] {
                let request = ListArrearsMarkersRequest {
                    zoom,
                    max_markers: 1,
                    ..filter.clone()
                };
                let response = client
                    .list_arrears_markers(authed(request, token))
                    .await
                    .expect("clusters")
                    .into_inner();
                assert_eq!(totals(&response), totals(&all), "{filter:?} at {zoom}");
                if markers(&all).len() <= 1 {
                    continue;
                }
                let (cells, size) = clusters(&response);
                let expected = markers_by_cell(markers(&all), size);
                assert_eq!(cells.len(), expected.len(), "{filter:?} at {zoom}");
                for cell in cells {
                    let sw = cell.cell.expect("cell").south_west.expect("corner");
                    let key = (
                        ((sw.latitude + 90.0) / size).round() as i64,
                        ((sw.longitude + 180.0) / size).round() as i64,
                    );
                    let (count, gnf, worst, lat, lon) = expected[&key];
                    assert_eq!(
                        (
                            cell.tenant_count,
                            cell.outstanding_gnf,
                            cell.worst_aging_bucket
                        ),
                        (count, gnf, worst),
                        "{filter:?} at {zoom}, cell {key:?}"
                    );
                    let center = cell.center.expect("center");
                    assert!((center.latitude - lat / count as f64).abs() < 1e-9);
                    assert!((center.longitude - lon / count as f64).abs() < 1e-9);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50, "only {compared} cells compared");
}

#[tokio::test]
async fn markers_agree_with_the_arrears_rule_on_the_demo_data_set() {
    let db = TestDb::new().await;
    akig::seed::seed_demo(&db.pool, today())
        .await
        .expect("seed");
    set_demo_passwords(&db.pool, &["directeur", "agent"]).await;
    let app = spawn_app(&db).await;
    let director = app.token("directeur").await;
    assert_markers_follow_the_arrears_rule(&db.pool, &app, &director).await;

    // The whole city as clusters at zoom 12 adds up to the same totals as the markers; the
    // agent's map holds only tenants of their sites.
    let mut client = app.geo_client().await;
    let city = client
        .list_arrears_markers(authed(
            ListArrearsMarkersRequest {
                zoom: 12,
                max_markers: 1,
                ..Default::default()
            },
            &director,
        ))
        .await
        .expect("clusters")
        .into_inner();
    let (cells, _) = clusters(&city);
    assert!(cells.len() > 1);
    assert_eq!(
        cells.iter().map(|c| c.tenant_count).sum::<i64>(),
        city.tenant_count
    );
    assert_eq!(
        cells.iter().map(|c| c.outstanding_gnf).sum::<i64>(),
        city.outstanding_gnf
    );
    let agent = app.token("agent").await;
    let agent_sites: Vec<String> = sqlx::query_scalar(
        "SELECT us.site_id::text FROM user_sites us JOIN users u ON u.id = us.user_id
         WHERE u.username = 'agent'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("agent sites");
    let mine = client
        .list_arrears_markers(authed(
            ListArrearsMarkersRequest {
                max_markers: 5_000,
                ..Default::default()
            },
            &agent,
        ))
        .await
        .expect("agent markers")
        .into_inner();
    assert!(!markers(&mine).is_empty());
    assert!(
        markers(&mine)
            .iter()
            .all(|m| agent_sites.contains(&m.site_id))
    );
    assert!(mine.tenant_count < city.tenant_count);
}

/// The map's SQL (`store::markers`, the mirror of `OpenCharges::owed_on` over `tenant_open`)
/// says of every tenant, on days before, between and after its due dates, what
/// `domain::arrears` says of its charges due by then, and so does the rule on the summary of
/// the charges; the rare case where the rule sums the charges is met.
#[tokio::test]
async fn the_map_sql_and_the_arrears_rule_agree_on_any_day() {
    use akig::domain::{OpenCharges, Owed};
    use akig::store::markers::{ArrearsArea, arrears_homes};

    let db = TestDb::new().await;
    let pool = &db.pool;
    let site = create_site(pool, "KAL").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0A11);
    let mut tenants = Vec::new();
    for k in 0..40 {
        let home = (k % 9 != 0).then_some((9.5, -13.7));
        let tenant = create_tenant(pool, site, &format!("Locataire {k}"), 1_000_000, home).await;
        // Months from 6 before this one to 3 after, some skipped; due 0 to 40 days after the
        // month starts (so that two months may fall due on one day).
        for m in -6_i32..=3 {
            if rng.random_range(0..4) == 0 {
                continue;
            }
            let this_month = first_of_month(today());
            let period = if m < 0 {
                this_month - chrono::Months::new(m.unsigned_abs())
            } else {
                this_month + chrono::Months::new(m.unsigned_abs())
            };
            let due = period + Days::new(rng.random_range(0..=40));
            let amount = rng.random_range(1..=10) * 50_000;
            let paid = match rng.random_range(0..4) {
                0 => 0,
                1 => amount,
                _ => rng.random_range(0..=amount),
            };
            charge_of_period(pool, tenant, period, due, amount, paid).await;
        }
        tenants.push(tenant);
    }
    let mut conn = pool.acquire().await.expect("conn");
    let aging = AgingBuckets::default();
    let mut read_charges = 0;
    for offset in [
        -200_i64, -120, -75, -40, -20, -5, 0, 1, 12, 33, 50, 75, 100, 130,
    ] {
        let day = today() + TimeDelta::days(offset);
        let homes = arrears_homes(
            &mut conn,
            &ArrearsArea {
                site_ids: None,
                bounds: None,
                today: day,
            },
        )
        .await
        .expect("homes");
        let found: HashMap<Uuid, (i64, NaiveDate)> = homes
            .iter()
            .map(|h| (h.tenant_id, (h.outstanding_gnf, h.oldest_unpaid_due_date)))
            .collect();
        assert_eq!(found.len(), homes.len(), "one row per tenant");
        for tenant in &tenants {
            let charges =
                akig::store::charges::arrears_charges(&mut conn, *tenant, today() + Days::new(900))
                    .await
                    .expect("charges");
            let due_by: Vec<_> = charges
                .iter()
                .copied()
                .filter(|c| c.due_date <= day)
                .collect();
            let report = akig::domain::arrears(&due_by, day, false, true, &aging).expect("arrears");
            let expected = (report.outstanding > 0).then(|| {
                let oldest = report.lines.first().expect("an unpaid line").due_date;
                (report.outstanding, oldest)
            });
            let by_rule = match OpenCharges::of(&charges).expect("summary").owed_on(day) {
                Owed::Nothing => None,
                Owed::Owes {
                    outstanding,
                    oldest_due,
                } => Some((outstanding, oldest_due)),
                Owed::ReadCharges { oldest_due } => {
                    read_charges += 1;
                    Some((report.outstanding, oldest_due))
                }
            };
            assert_eq!(by_rule, expected, "rule, tenant {tenant} on {day}");
            assert_eq!(
                found.get(tenant).copied(),
                expected,
                "SQL, tenant {tenant} on {day}"
            );
        }
    }
    assert!(read_charges > 0, "the rule's ReadCharges case is never met");
}
