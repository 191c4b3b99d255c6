//! SearchTenants' order in two tiers (every word matched, alphabetical; then typos, nearest
//! first) and its keyset paging across the tier boundary. Matching, filters and scope:
//! `tests/api/tenants.rs`.

use std::collections::HashSet;

use akig::proto::v1::{SearchTenantsRequest, SearchTenantsResponse};
use uuid::Uuid;

use crate::support::{
    TestApp, TestDb, create_site, create_tenant, create_user, message, spawn_app,
};

const MONTH: i64 = 1_000_000;

/// Tenants named Camara and alike on two sites, an agent of the first, a director.
struct World {
    app: TestApp,
    /// Tier 1 for "Camara", in alphabetical order of the normalised name, every site.
    exact: Vec<(Uuid, &'static str)>,
    /// Tier 2 for "Camara", nearest first (ties by id), every site.
    close: Vec<(Uuid, &'static str)>,
    kal: Uuid,
    agent_token: String,
    director_token: String,
    /// Dropped last: the database outlives the server.
    db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        create_user(pool, "agent.kal", "agent", &[kal], None).await;
        create_user(pool, "dir", "director", &[], None).await;
        // Created out of order: the order is the name's, not the insertion's. "Élise" sorts as
        // "elise" (accents and case ignored), before "mariama".
        let tenant = async |site: Uuid, name: &'static str| {
            (create_tenant(pool, site, name, MONTH, None).await, name)
        };
        let mariama = tenant(kal, "Mariama Camara").await;
        let zeinab = tenant(mat, "Zeinab Camara").await;
        let elise = tenant(kal, "Élise CAMARA").await;
        let aminata = tenant(kal, "Aminata Camara").await;
        // Typos: word similarity 0.67 for "Cammara", 0.57 for "Kamara" and "Gamara" (a tie).
        let kamara = tenant(kal, "Sekou Kamara").await;
        let cammara = tenant(kal, "Bintou Cammara").await;
        let gamara = tenant(mat, "Fodé Gamara").await;
        tenant(kal, "Mamadou Diallo").await;
        let gone = tenant(kal, "Ousmane Camara").await;
        sqlx::query("UPDATE tenants SET active = false, moved_out_on = current_date WHERE id = $1")
            .bind(gone.0)
            .execute(pool)
            .await
            .expect("move out");
        let mut tied = [kamara, gamara];
        tied.sort();
        let app = spawn_app(&db).await;
        Self {
            exact: vec![aminata, elise, mariama, zeinab],
            close: [vec![cammara], tied.to_vec()].concat(),
            kal,
            agent_token: app.token("agent.kal").await,
            director_token: app.token("dir").await,
            app,
            db,
        }
    }

    async fn search(&self, request: SearchTenantsRequest, token: &str) -> SearchTenantsResponse {
        message(self.app.collections(token).await.search_tenants(request))
            .await
            .expect("search")
    }

    /// Every hit from `request` on (its page size and token), page after page, with the
    /// number of hits of each page.
    async fn pages(&self, request: &SearchTenantsRequest, token: &str) -> (Vec<Uuid>, Vec<usize>) {
        let mut request = request.clone();
        let (mut ids, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let page = self.search(request.clone(), token).await;
            sizes.push(page.results.len());
            ids.extend(page.results.iter().map(tenant_id));
            if page.next_page_token.is_empty() {
                return (ids, sizes);
            }
            request.page_token = page.next_page_token;
            assert!(sizes.len() <= 20, "paging does not end");
        }
    }
}

fn tenant_id(hit: &akig::proto::v1::TenantSearchResult) -> Uuid {
    hit.tenant
        .as_ref()
        .expect("tenant")
        .tenant_id
        .parse()
        .expect("uuid")
}

fn query(text: &str) -> SearchTenantsRequest {
    SearchTenantsRequest {
        query: text.to_owned(),
        ..Default::default()
    }
}

fn ids(tenants: &[(Uuid, &str)]) -> Vec<Uuid> {
    tenants.iter().map(|(id, _)| *id).collect()
}

#[tokio::test]
async fn search_lists_exact_word_matches_alphabetically_then_typos_nearest_first() {
    let w = World::new().await;
    let found = w.search(query("camara"), &w.director_token).await;
    let names: Vec<String> = found
        .results
        .iter()
        .map(|hit| hit.tenant.as_ref().expect("tenant").full_name.clone())
        .collect();
    let expected: Vec<&str> = w.exact.iter().chain(&w.close).map(|(_, n)| *n).collect();
    assert_eq!(names, expected);
    let got: Vec<Uuid> = found.results.iter().map(tenant_id).collect();
    assert_eq!(got, [ids(&w.exact), ids(&w.close)].concat());
    assert!(found.next_page_token.is_empty());
    // Relevance: 2 for every word matched, then the word similarity, never increasing.
    let relevance: Vec<f64> = found.results.iter().map(|hit| hit.relevance).collect();
    assert!(relevance[..4].iter().all(|r| *r == 2.0), "{relevance:?}");
    assert!((relevance[4] - 2.0 / 3.0).abs() < 1e-6, "{relevance:?}");
    assert!((relevance[5] - 4.0 / 7.0).abs() < 1e-6, "{relevance:?}");
    assert_eq!(relevance[5], relevance[6]);

    // A typo of the query: no word matches exactly, so only close names, nearest first (the
    // four Camaras at 0.67, a tie ordered by id; "Cammara" is under the threshold).
    let typo = w.search(query("Camarra"), &w.director_token).await;
    let mut camaras = ids(&w.exact);
    camaras.sort();
    assert_eq!(
        typo.results.iter().map(tenant_id).collect::<Vec<_>>(),
        camaras
    );
    assert!(
        typo.results
            .iter()
            .all(|hit| (hit.relevance - 2.0 / 3.0).abs() < 1e-6)
    );

    // Scope and filters apply to both tiers: the agent of KAL sees KAL's tenants only, the
    // tenant who moved out only on demand, and in the same place of the order.
    let kal: Vec<Uuid> = {
        let kal_names = ["Aminata Camara", "Élise CAMARA", "Mariama Camara"];
        let exact = w.exact.iter().filter(|(_, n)| kal_names.contains(n));
        let close = w.close.iter().filter(|(_, n)| *n != "Fodé Gamara");
        exact.chain(close).map(|(id, _)| *id).collect()
    };
    let mine = w.search(query("Camara"), &w.agent_token).await;
    assert_eq!(mine.results.iter().map(tenant_id).collect::<Vec<_>>(), kal);
    let one_site = SearchTenantsRequest {
        site_ids: vec![w.kal.to_string()],
        ..query("Camara")
    };
    let director_kal = w.search(one_site, &w.director_token).await;
    assert_eq!(
        director_kal
            .results
            .iter()
            .map(tenant_id)
            .collect::<Vec<_>>(),
        kal
    );
    let with_gone = w
        .search(
            SearchTenantsRequest {
                show_inactive: true,
                ..query("Camara")
            },
            &w.director_token,
        )
        .await;
    let names: Vec<String> = with_gone
        .results
        .iter()
        .map(|hit| hit.tenant.as_ref().expect("tenant").full_name.clone())
        .collect();
    assert_eq!(names[3], "Ousmane Camara", "{names:?}");
    assert_eq!(names.len(), 8);
}

#[tokio::test]
async fn search_pages_across_the_tier_boundary_without_repeats_or_gaps() {
    let w = World::new().await;
    let all = [ids(&w.exact), ids(&w.close)].concat();
    let request = query("Camara");
    // Every page size, so that pages end inside tier 1, exactly at its end (4), inside
    // tier 2, and inside the tie of tier 2.
    for page_size in 1..=8 {
        let request = SearchTenantsRequest {
            page_size,
            ..request.clone()
        };
        let (paged, sizes) = w.pages(&request, &w.director_token).await;
        assert_eq!(paged, all, "page size {page_size}");
        let unique: HashSet<Uuid> = paged.iter().copied().collect();
        assert_eq!(unique.len(), paged.len(), "page size {page_size}");
        let full = usize::try_from(page_size).expect("small");
        let (last, before) = sizes.split_last().expect("a page");
        assert!(before.iter().all(|size| *size == full), "{sizes:?}");
        assert!(*last <= full && *last > 0, "{sizes:?}");
    }
    // A tenant added between two pages before the position of the next one is not sent, and
    // does not make a tenant already sent come again: the next page starts after the last
    // hit sent (offset paging would repeat "Mariama Camara").
    let request = SearchTenantsRequest {
        page_size: 3,
        ..request
    };
    let first = w.search(request.clone(), &w.director_token).await;
    let mut seen: Vec<Uuid> = first.results.iter().map(tenant_id).collect();
    assert_eq!(seen, all[..3]);
    create_tenant(&w.db.pool, w.kal, "Abdoulaye Camara", MONTH, None).await;
    let rest = SearchTenantsRequest {
        page_token: first.next_page_token,
        ..request
    };
    seen.extend(w.pages(&rest, &w.director_token).await.0);
    assert_eq!(seen, all);
}
