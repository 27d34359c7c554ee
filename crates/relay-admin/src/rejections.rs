//! The rejection log: refused ingest requests with a known source, so a tenant can see why
//! WAPing's deliveries fail. Headers were stripped of credentials when recorded; the body is the
//! first 4 KiB, shown as text (lossy UTF-8).

use std::collections::BTreeMap;

use relay_core::{RejectionId, SourceId};
use relay_http::{ApiError, ApiJson};
use relay_store::keyset::TimeRange;
use relay_store::rejections::{self as store, RejectionFilter, RejectionRow};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::docs::TooManyReads;
use crate::docs::{BadRequest, ValidationFailed};
use crate::events::filter_id;
use crate::extract::{ApiQuery, Page, PageRequest};
use crate::reads::HeavyRead;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_rejections))
}

/// A refused ingest request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectionOut {
    pub id: String,
    pub source_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The problem code answered (`invalid_signature`, `invalid_event`, ...).
    pub reason: String,
    /// The HTTP status answered.
    pub status: i32,
    pub detail: Option<String>,
    /// Request headers, without credentials.
    pub headers: BTreeMap<String, String>,
    /// The first 4 KiB of the body.
    pub body: String,
    /// The full body length.
    pub body_bytes: i32,
    /// Refusals of the same source and reason in the same minute, after this one, that were
    /// counted but not recorded in full (each process records the first 20 a minute).
    pub repeats: i64,
}

impl From<RejectionRow> for RejectionOut {
    fn from(r: RejectionRow) -> Self {
        Self {
            id: RejectionId::from_uuid(r.id).to_string(),
            source_id: SourceId::from_uuid(r.source_id).to_string(),
            received_at: r.received_at,
            reason: r.reason,
            status: r.status,
            detail: r.detail,
            headers: r.headers.0,
            body: String::from_utf8_lossy(&r.body).into_owned(),
            body_bytes: r.body_bytes,
            repeats: r.repeats,
        }
    }
}

/// Filters of the rejection log.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RejectionsQuery {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub source_id: Option<String>,
    /// The problem code, e.g. `invalid_signature`.
    pub reason: Option<String>,
    /// Received at or after (RFC 3339).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
}

/// Lists refused ingest requests, newest first.
#[utoipa::path(get, path = "/v1/rejections", tag = "logs", params(RejectionsQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "A page of rejections", body = Page<RejectionOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_rejections(
    auth: HeavyRead,
    ApiQuery(q): ApiQuery<RejectionsQuery>,
) -> Result<ApiJson<Page<RejectionOut>>, ApiError> {
    let page = PageRequest::<RejectionId>::new(q.limit, q.cursor.as_deref())?;
    let filter = RejectionFilter {
        source_id: filter_id::<SourceId>("source_id", q.source_id.as_deref())?,
        reason: q.reason,
        range: TimeRange { since: q.since, until: None },
    };
    let rows = store::list_rejections(&auth.pool, auth.tenant_id, &filter, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |r| RejectionId::from_uuid(r.id), RejectionOut::from)))
}
