//! The attempt log: every HTTP attempt of every delivery, newest first, by delivery or across the
//! tenant (optionally one destination, one outcome). Pages are keyset scans of an index on
//! `(tenant_id[, destination_id], id DESC)` or `(delivery_id, id DESC)`, so they stay fast on a
//! tenant with millions of attempts.

use std::collections::BTreeMap;

use axum::extract::Path;
use relay_core::{AttemptId, DeliveryId, DestinationId};
use relay_http::{ApiError, ApiJson};
use relay_store::attempts::{self as store, AttemptFilter, AttemptRow};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::docs::TooManyReads;
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::events::filter_id;
use crate::extract::{ApiQuery, Page, PageRequest, path_id};
use crate::reads::HeavyRead;
use crate::tenants::ListQuery;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_delivery_attempts)).routes(routes!(list_attempts))
}

pub use relay_core::vocab::AttemptOutcome;

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptOut {
    pub id: String,
    pub delivery_id: String,
    pub destination_id: String,
    /// 1 for the first attempt of the delivery.
    pub number: i32,
    /// `auto`, `manual` (redelivery) or `replay`.
    pub trigger: relay_core::vocab::Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub url: String,
    /// `success`, `http_error`, `timeout`, `connect_error`, `tls_error` or `blocked`.
    pub outcome: AttemptOutcome,
    pub status_code: Option<i32>,
    pub response_headers: Option<BTreeMap<String, String>>,
    /// The first 4 KiB of the response body.
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// When the next attempt was scheduled after this one, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

impl From<AttemptRow> for AttemptOut {
    fn from(r: AttemptRow) -> Self {
        Self {
            id: AttemptId::from_uuid(r.id).to_string(),
            delivery_id: DeliveryId::from_uuid(r.delivery_id).to_string(),
            destination_id: DestinationId::from_uuid(r.destination_id).to_string(),
            number: r.number,
            trigger: r.trigger,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            url: r.url,
            outcome: r.outcome,
            status_code: r.status_code,
            response_headers: r.response_headers.map(|h| h.0),
            response_body: r.response_body,
            error: r.error,
            next_attempt_at: r.next_attempt_at,
        }
    }
}

/// Filters of the attempt log.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AttemptsQuery {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub destination_id: Option<String>,
    pub outcome: Option<AttemptOutcome>,
}

/// Lists a delivery's attempts, newest first.
#[utoipa::path(get, path = "/v1/deliveries/{id}/attempts", tag = "logs", params(
        ("id" = String, Path, description = "Delivery id"), ListQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "A page of attempts", body = Page<AttemptOut>),
        (status = 400, response = BadRequest), (status = 404, response = NotFound),
        (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_delivery_attempts(
    auth: HeavyRead,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<AttemptOut>>, ApiError> {
    let id: DeliveryId = path_id(&id, crate::deliveries::NOT_FOUND)?;
    let page = PageRequest::<AttemptId>::new(q.limit, q.cursor.as_deref())?;
    relay_store::deliveries::find_delivery(&auth.pool, auth.tenant_id, id)
        .await?
        .ok_or(ApiError::not_found(crate::deliveries::NOT_FOUND))?;
    let filter = AttemptFilter { delivery_id: Some(id), ..Default::default() };
    let rows = store::list_attempts(&auth.pool, auth.tenant_id, &filter, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |r| AttemptId::from_uuid(r.id), AttemptOut::from)))
}

/// Lists the tenant's attempts, newest first.
#[utoipa::path(get, path = "/v1/attempts", tag = "logs", params(AttemptsQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "A page of attempts", body = Page<AttemptOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_attempts(
    auth: HeavyRead,
    ApiQuery(q): ApiQuery<AttemptsQuery>,
) -> Result<ApiJson<Page<AttemptOut>>, ApiError> {
    let page = PageRequest::<AttemptId>::new(q.limit, q.cursor.as_deref())?;
    let filter = AttemptFilter {
        delivery_id: None,
        destination_id: filter_id::<DestinationId>("destination_id", q.destination_id.as_deref())?,
        outcome: q.outcome.map(|o| o.as_str().to_owned()),
    };
    let rows = store::list_attempts(&auth.pool, auth.tenant_id, &filter, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |r| AttemptId::from_uuid(r.id), AttemptOut::from)))
}
