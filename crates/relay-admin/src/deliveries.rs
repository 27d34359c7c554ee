//! The delivery log: one row per event and destination with its state and schedule, and on the
//! single-delivery route its attempts.

use axum::extract::Path;
use relay_core::{DeliveryId, DestinationId, EventId};
use relay_http::{ApiError, ApiJson};
use relay_store::attempts::{AttemptFilter, list_attempts};
use relay_store::deliveries::{self as store, DeliveryFilter, DeliveryRow};
use relay_store::keyset::TimeRange;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::attempts::AttemptOut;
use crate::docs::TooManyReads;
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::events::filter_id;
use crate::extract::{ApiQuery, Page, PageRequest, path_id};
use crate::reads::HeavyRead;

pub(crate) const NOT_FOUND: &str = "delivery_not_found";
/// Attempts shown inline on `GET /v1/deliveries/{id}`; the full list is paged on `/attempts`.
const INLINE_ATTEMPTS: i64 = 50;

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_deliveries)).routes(routes!(get_delivery))
}

pub use relay_core::vocab::DeliveryStatus;

/// One event's delivery to one destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    /// The relay's event id.
    pub event_id: String,
    pub destination_id: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: DeliveryStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// What causes the next attempt: `auto`, `manual` or `replay`.
    pub next_trigger: relay_core::vocab::Trigger,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// Only on `GET /v1/deliveries/{id}`: the latest attempts, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptOut>>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: DeliveryId::from_uuid(r.id).to_string(),
            event_id: EventId::from_uuid(r.event_id).to_string(),
            destination_id: DestinationId::from_uuid(r.destination_id).to_string(),
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            next_trigger: r.next_trigger,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            created_at: r.created_at,
            completed_at: r.completed_at,
            attempt_log: None,
        }
    }
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub destination_id: Option<String>,
    pub event_id: Option<String>,
    /// Created at or after (RFC 3339).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
    /// Created before (RFC 3339).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub until: Option<OffsetDateTime>,
}

/// Lists the tenant's deliveries, newest first.
#[utoipa::path(get, path = "/v1/deliveries", tag = "logs", params(DeliveriesQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "A page of deliveries", body = Page<DeliveryOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_deliveries(
    auth: HeavyRead,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<ApiJson<Page<DeliveryOut>>, ApiError> {
    let page = PageRequest::<DeliveryId>::new(q.limit, q.cursor.as_deref())?;
    let filter = DeliveryFilter {
        status: q.status.map(|s| s.as_str().to_owned()),
        destination_id: filter_id::<DestinationId>("destination_id", q.destination_id.as_deref())?,
        event_id: filter_id::<EventId>("event_id", q.event_id.as_deref())?,
        range: TimeRange { since: q.since, until: q.until },
    };
    let rows = store::list_deliveries(&auth.pool, auth.tenant_id, &filter, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |r| DeliveryId::from_uuid(r.id), DeliveryOut::from)))
}

/// Gets a delivery with its latest attempts.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "logs",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 429, response = TooManyReads), (status = 200, description = "The delivery and its latest attempts", body = DeliveryOut),
        (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_delivery(
    auth: HeavyRead,
    Path(id): Path<String>,
) -> Result<ApiJson<DeliveryOut>, ApiError> {
    let id: DeliveryId = path_id(&id, NOT_FOUND)?;
    let row =
        store::find_delivery(&auth.pool, auth.tenant_id, id).await?.ok_or(ApiError::not_found(NOT_FOUND))?;
    let filter = AttemptFilter { delivery_id: Some(id), ..Default::default() };
    let attempts = list_attempts(&auth.pool, auth.tenant_id, &filter, None, INLINE_ATTEMPTS).await?;
    let mut out = DeliveryOut::from(row);
    out.attempt_log = Some(attempts.into_iter().map(AttemptOut::from).collect());
    Ok(ApiJson(out))
}
