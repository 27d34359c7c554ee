//! `POST /v1/destinations/{id}/test`: sends a destination a test event, to see its endpoint
//! answer (the dashboard's "send a test event"). The event is stored like any other (type
//! `relay.test`, source: the relay itself, listed with `source_id` null) with one delivery, to this
//! destination only and whatever its filters, attempted by the dispatchers as usual, so its
//! attempt appears in the log with the endpoint's answer. It is manual work: rate limited and
//! counted against the backlog cap ([`crate::manual`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay_core::{DestinationId, EventId};
use relay_http::{ApiError, ApiJson};
use relay_store::deliveries::{NewDelivery, insert_deliveries, notify_due};
use relay_store::events::{NewEvent, insert_events};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{Conflict, ManualRefused, NotFound};
use crate::extract::{or_not_found, path_id};

/// The type of a test event.
pub const TEST_EVENT_TYPE: &str = "relay.test";

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(send_test_event))
}

/// The test event and its delivery (follow it with `GET /v1/deliveries/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestSentOut {
    pub event_id: String,
    pub delivery_id: String,
}

/// Sends a test event (type `relay.test`) to this destination only.
#[utoipa::path(post, path = "/v1/destinations/{id}/test", tag = "recovery",
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 202, description = "Queued; its attempt follows", body = TestSentOut),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 429, response = ManualRefused)),
    security(("bearer" = [])))]
pub(crate) async fn send_test_event(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, ApiJson<TestSentOut>), ApiError> {
    let not_found = crate::destinations::NOT_FOUND;
    let id: DestinationId = path_id(&id, not_found)?;
    crate::manual::admit(&state, auth.tenant_id).await?;
    let mut tx = crate::manual::begin(&state, auth.tenant_id).await?;
    let destination = relay_store::destinations::get_destination(&mut *tx, auth.tenant_id, id)
        .await
        .map_err(or_not_found(not_found))?;
    if !destination.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "destination_disabled",
            "the destination is disabled: enable it to send it a test event",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let event_id = EventId::new();
    let wap_event_id = format!("test_{}", event_id.uuid().simple());
    let body = serde_json::json!({
        "eventId": wap_event_id,
        "type": TEST_EVENT_TYPE,
        "timestamp": now.format(&Rfc3339).map_err(ApiError::internal)?,
        "test": true,
        "message": "A test event from wap-relay",
    });
    let event = NewEvent {
        id: event_id,
        tenant_id: auth.tenant_id,
        source_id: relay_core::operational::RELAY_SOURCE,
        wap_event_id,
        event_type: TEST_EVENT_TYPE.into(),
        device_id: None,
        timestamp: now,
        body: bytes_of(&body),
        dedupe_id: None,
        keep_days: 0,
    };
    insert_events(&mut *tx, &[event]).await?;
    let delivery = NewDelivery::due_now(auth.tenant_id, event_id, id);
    let delivery_id = delivery.id;
    insert_deliveries(&mut *tx, &[delivery]).await?;
    notify_due(&mut *tx).await?;
    crate::manual::commit_within_cap(tx, auth.tenant_id).await?;
    let out = TestSentOut { event_id: event_id.to_string(), delivery_id: delivery_id.to_string() };
    Ok((StatusCode::ACCEPTED, ApiJson(out)))
}

fn bytes_of(value: &serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(value.to_string().into_bytes())
}
