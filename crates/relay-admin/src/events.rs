//! The event log: every stored event of the tenant, with its payload exactly as received, and on
//! the single-event route its deliveries. Filters and keyset pages never leave the tenant.

use axum::extract::Path;
use relay_core::{EventId, SourceId};
use relay_http::{ApiError, ApiJson};
use relay_store::events::{self as store, EventFilter, EventRow};
use relay_store::keyset::TimeRange;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::deliveries::DeliveryOut;
use crate::docs::TooManyReads;
use crate::docs::{BadRequest, NotFound, ValidationFailed};
use crate::extract::{ApiQuery, Page, PageRequest, path_id};
use crate::reads::HeavyRead;

pub(crate) const NOT_FOUND: &str = "event_not_found";

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(get_event))
}

/// A stored event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventOut {
    /// The relay's id; also the `webhook-id` of every delivery of this event.
    pub id: String,
    /// Null for the relay's own events (`relay.*`, and `relay.test`).
    pub source_id: Option<String>,
    /// WAPing's `eventId` (for the relay's own events, their id).
    pub wap_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub device_id: Option<String>,
    /// The event's own `timestamp`.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The JSON body exactly as received.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// Only on `GET /v1/events/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryOut>>,
}

impl From<EventRow> for EventOut {
    fn from(r: EventRow) -> Self {
        let payload = String::from_utf8(r.body)
            .ok()
            .and_then(|text| RawValue::from_string(text).ok())
            .unwrap_or_else(|| {
                tracing::warn!(event.id = %EventId::from_uuid(r.id), "stored event body is not JSON");
                RawValue::from_string("null".to_owned()).expect("null is JSON")
            });
        Self {
            id: EventId::from_uuid(r.id).to_string(),
            source_id: (r.source_id != relay_core::operational::RELAY_SOURCE.uuid())
                .then(|| SourceId::from_uuid(r.source_id).to_string()),
            wap_event_id: r.wap_event_id,
            event_type: r.event_type,
            device_id: r.device_id,
            timestamp: r.timestamp,
            received_at: r.received_at,
            payload,
            deliveries: None,
        }
    }
}

/// Filters of the event log.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub source_id: Option<String>,
    /// Exact event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    pub device_id: Option<String>,
    /// WAPing's `eventId`.
    pub wap_event_id: Option<String>,
    /// Received at or after (RFC 3339).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
    /// Received before (RFC 3339).
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub until: Option<OffsetDateTime>,
}

/// Parses an id given as a filter: a malformed one is a 422 naming the parameter.
pub(crate) fn filter_id<I: std::str::FromStr>(field: &str, raw: Option<&str>) -> Result<Option<I>, ApiError> {
    raw.map(|s| s.parse().map_err(|_| ApiError::validation(format!("{field}: not a valid id")))).transpose()
}

/// Lists the tenant's events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "logs", params(EventsQuery),
    responses((status = 429, response = TooManyReads), (status = 200, description = "A page of events", body = Page<EventOut>),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed)),
    security(("bearer" = [])))]
pub(crate) async fn list_events(
    auth: HeavyRead,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<ApiJson<Page<EventOut>>, ApiError> {
    let page = PageRequest::<EventId>::new(q.limit, q.cursor.as_deref())?;
    let filter = EventFilter {
        source_id: filter_id::<SourceId>("source_id", q.source_id.as_deref())?,
        event_type: q.event_type,
        device_id: q.device_id,
        wap_event_id: q.wap_event_id,
        range: TimeRange { since: q.since, until: q.until },
    };
    let rows = store::list_events(&auth.pool, auth.tenant_id, &filter, page.before, page.fetch()).await?;
    Ok(ApiJson(Page::from_rows(rows, page.limit, |r| EventId::from_uuid(r.id), EventOut::from)))
}

/// Gets an event with its deliveries.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "logs",
    params(("id" = String, Path, description = "Event id (the relay's)")),
    responses((status = 429, response = TooManyReads), (status = 200, description = "The event and its deliveries", body = EventOut),
        (status = 404, response = NotFound)),
    security(("bearer" = [])))]
pub(crate) async fn get_event(
    auth: HeavyRead,
    Path(id): Path<String>,
) -> Result<ApiJson<EventOut>, ApiError> {
    let id: EventId = path_id(&id, NOT_FOUND)?;
    let row =
        store::find_event(&auth.pool, auth.tenant_id, id).await?.ok_or(ApiError::not_found(NOT_FOUND))?;
    let deliveries = relay_store::deliveries::list_event_deliveries(&auth.pool, auth.tenant_id, id).await?;
    let mut out = EventOut::from(row);
    out.deliveries = Some(deliveries.into_iter().map(DeliveryOut::from).collect());
    Ok(ApiJson(out))
}
