//! The admin API of wap-relay (CONTRACT §5): an axum router with one module per resource, JWT
//! authentication as extractors, and an OpenAPI document generated from the same handlers.
//!
//! Invariants: every tenant-owned lookup goes through relay-store filtered by the token's tenant,
//! so another tenant's ids answer 404 exactly like unknown ones; secrets are sealed with the
//! master key before storage and only the destination signing secret is ever returned (on create
//! and by its `/secret` route); this crate holds no SQL, and never logs a token or a secret.

pub mod auth;
pub mod docs;
pub mod extract;

mod attempts;
mod db;
mod deliveries;
mod destinations;
mod events;
pub mod manual;
mod preview;
mod quota;
mod reads;
mod recovery;
mod rejections;
mod series;
mod sources;
mod stats;
pub mod stream;
mod tenants;
mod test_event;
mod ui;
mod verification;

use axum::Router;
use relay_core::secret::MasterKey;
use relay_store::PgPool;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use auth::{AuthError, Claims, JwtKeys, OperatorAuth, Role, TenantAuth, WeakJwtSecret, issue_token};
pub use reads::{DEFAULT_READS_PER_TENANT, ReadBudget};
pub use tenants::{LimitsOut, TenantOut, TokenOut};

/// What the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    /// The process's main pool: writes and light reads (shared with ingest and the dispatcher).
    pub pool: PgPool,
    /// Heavy reads (statistics, the logs): their own connections and a per-tenant bound.
    pub reads: ReadBudget,
    pub master_key: MasterKey,
    pub jwt: JwtKeys,
    /// Base of the `ingest_url` shown for each source, e.g. `https://relay.example.com`.
    pub public_url: String,
    /// Allow destinations on loopback/private/link-local addresses (tests, on-prem).
    pub allow_private_destinations: bool,
    /// Refuse `http://` destination URLs.
    pub require_https_destinations: bool,
    /// The live event streams of this process (`GET /v1/stream`).
    pub streams: std::sync::Arc<stream::StreamHub>,
    /// The per-tenant rate limit of manual work (test events, redelivery, replay): [`manual`].
    pub manual_limit: std::sync::Arc<relay_store::ingest_limit::IngestLimiter>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("public_url", &self.public_url)
            .field("allow_private_destinations", &self.allow_private_destinations)
            .field("require_https_destinations", &self.require_https_destinations)
            .finish_non_exhaustive()
    }
}

fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(tenants::routes())
        .merge(stats::routes())
        .merge(series::routes())
        .merge(sources::routes())
        .merge(destinations::routes())
        .merge(events::routes())
        .merge(deliveries::routes())
        .merge(attempts::routes())
        .merge(recovery::routes())
        .merge(rejections::routes())
        .merge(stream::routes())
        .merge(test_event::routes())
        .merge(preview::routes())
}

/// The full OpenAPI 3.1 document: every admin route, the ingress routes (documented on their
/// handlers in relay-ingress) and the shared error responses.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    doc.merge(<relay_ingress::doc::IngestDoc as utoipa::OpenApi>::openapi());
    docs::finish(&mut doc);
    doc
}

/// The admin router: every route of CONTRACT §5 at its absolute path, plus `GET /openapi.json`
/// and the interactive documentation at `/docs` (Swagger UI, served from assets built into the
/// binary), and the dashboard at `/ui/`.
pub fn router(state: AdminState) -> Router {
    let (routes, _) = api().split_for_parts();
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .merge(ui::routes())
        .with_state(state)
}
