//! Recovery: redeliver one delivery, redeliver an event (re-matching the tenant's current
//! destinations), and replay a destination's deliveries in a time range. Each is one set-based
//! statement that puts deliveries back in the queue, due now, with the trigger their next attempt
//! records (`manual` or `replay`), plus a wake-up for the dispatchers sent at commit. Each is
//! manual work: rate limited per tenant and counted against the backlog cap, refused whole past
//! it ([`crate::manual`]). The attempts then go through the same rate limits as any other.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay_core::filter::EventKey;
use relay_core::{DeliveryId, DestinationId, EventId, SourceId};
use relay_http::{ApiError, ApiJson};
use relay_store::deliveries as store;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::deliveries::DeliveryOut;
use crate::docs::{Conflict, ManualRefused, NotFound, ValidationFailed};
use crate::extract::{OptionalJson, or_not_found, path_id};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(redeliver_delivery))
        .routes(routes!(redeliver_event))
        .routes(routes!(replay_destination))
}

/// How many deliveries were put back in the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuedOut {
    pub queued: u64,
}

/// Which destinations an event is redelivered to.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRedeliverIn {
    /// Only these destinations (default: every enabled destination whose filters match).
    pub destination_ids: Option<Vec<String>>,
}

/// Which deliveries a replay queues again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Failed deliveries only.
    #[default]
    Failed,
    /// Failed and succeeded deliveries (pending ones are already queued).
    All,
}

/// A replay of a destination's deliveries created in `[since, until)`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    #[serde(with = "crate::extract::utc_time")]
    pub since: OffsetDateTime,
    /// Default: now.
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub until: Option<OffsetDateTime>,
    /// Default `failed`.
    pub status: Option<ReplayStatus>,
}

/// Queues a new attempt of one delivery now, whatever its status (trigger `manual`).
#[utoipa::path(post, path = "/v1/deliveries/{id}/redeliver", tag = "recovery",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued; the delivery is pending again", body = DeliveryOut),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 429, response = ManualRefused)),
    security(("bearer" = [])))]
pub(crate) async fn redeliver_delivery(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, ApiJson<DeliveryOut>), ApiError> {
    let not_found = crate::deliveries::NOT_FOUND;
    let id: DeliveryId = path_id(&id, not_found)?;
    crate::manual::admit(&state, auth.tenant_id).await?;
    let mut tx = crate::manual::begin(&state, auth.tenant_id).await?;
    let Some(row) = store::redeliver_delivery(&mut *tx, auth.tenant_id, id).await? else {
        let found = store::find_delivery(&mut *tx, auth.tenant_id, id).await?;
        // Its event is past its retention (`lock_event` finds only events within it): as gone.
        let expired = match &found {
            Some(d) => {
                relay_store::events::lock_event(&mut *tx, auth.tenant_id, EventId::from_uuid(d.event_id))
                    .await?
                    .is_none()
            }
            None => false,
        };
        return match found {
            None => Err(ApiError::not_found(not_found)),
            Some(_) if expired => Err(ApiError::not_found(not_found)),
            Some(_) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "destination_deleted",
                "the delivery's destination has been deleted",
            )),
        };
    };
    store::notify_due(&mut *tx).await?;
    crate::manual::commit_within_cap(tx, auth.tenant_id).await?;
    tracing::info!(tenant.id = %auth.tenant_id, delivery.id = %id, "delivery queued for redelivery");
    Ok((StatusCode::ACCEPTED, ApiJson(DeliveryOut::from(row))))
}

fn parse_destination_ids(ids: &[String]) -> Result<Vec<DestinationId>, ApiError> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.parse()
                .map_err(|_| ApiError::validation(format!("destination_ids[{i}]: not a destination id")))
        })
        .collect()
}

/// Redelivers an event to the tenant's current enabled destinations whose filters match it
/// (optionally only some of them): existing deliveries are queued again, missing ones created.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "recovery",
    request_body = Option<EventRedeliverIn>,
    params(("id" = String, Path, description = "Event id (the relay's)")),
    responses((status = 202, description = "Queued", body = QueuedOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed),
        (status = 429, response = ManualRefused)),
    security(("bearer" = [])))]
pub(crate) async fn redeliver_event(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<EventRedeliverIn>,
) -> Result<(StatusCode, ApiJson<QueuedOut>), ApiError> {
    let not_found = crate::events::NOT_FOUND;
    let id: EventId = path_id(&id, not_found)?;
    let only = input.and_then(|i| i.destination_ids).map(|ids| parse_destination_ids(&ids)).transpose()?;
    crate::manual::admit(&state, auth.tenant_id).await?;
    let mut tx = crate::manual::begin(&state, auth.tenant_id).await?;
    let event = relay_store::events::lock_event(&mut *tx, auth.tenant_id, id)
        .await?
        .ok_or(ApiError::not_found(not_found))?;
    if let Some(ids) = &only {
        let missing = relay_store::destinations::missing_destinations(&mut *tx, auth.tenant_id, ids).await?;
        if let Some(m) = missing.first() {
            return Err(ApiError::validation(format!("destination_ids: no destination {m}")));
        }
    }
    let only: Option<HashSet<DestinationId>> = only.map(|ids| ids.into_iter().collect());
    let key = EventKey {
        source_id: SourceId::from_uuid(event.source_id),
        event_type: &event.event_type,
        device_id: event.device_id.as_deref(),
    };
    let targets: Vec<DestinationId> =
        relay_store::destinations::list_tenant_fanout_destinations(&mut *tx, auth.tenant_id)
            .await?
            .into_iter()
            .filter(|d| only.as_ref().is_none_or(|o| o.contains(&d.id)) && d.filter.matches(&key))
            .map(|d| d.id)
            .collect();
    let queued = store::redeliver_event(&mut *tx, auth.tenant_id, id, &targets).await?;
    if queued > 0 {
        store::notify_due(&mut *tx).await?;
    }
    crate::manual::commit_within_cap(tx, auth.tenant_id).await?;
    tracing::info!(tenant.id = %auth.tenant_id, event.id = %id, queued, "event queued for redelivery");
    Ok((StatusCode::ACCEPTED, ApiJson(QueuedOut { queued: u64::try_from(queued).unwrap_or(0) })))
}

/// Queues again a destination's failed (or all finished) deliveries created in a time range
/// (trigger `replay`).
#[utoipa::path(post, path = "/v1/destinations/{id}/replay", tag = "recovery", request_body = ReplayIn,
    params(("id" = String, Path, description = "Destination id")),
    responses((status = 202, description = "Queued", body = QueuedOut),
        (status = 404, response = NotFound), (status = 422, response = ValidationFailed),
        (status = 429, response = ManualRefused)),
    security(("bearer" = [])))]
pub(crate) async fn replay_destination(
    auth: TenantAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ReplayIn>,
) -> Result<(StatusCode, ApiJson<QueuedOut>), ApiError> {
    let not_found = crate::destinations::NOT_FOUND;
    let id: DestinationId = path_id(&id, not_found)?;
    let until = input.until.unwrap_or_else(OffsetDateTime::now_utc);
    if until <= input.since {
        return Err(ApiError::validation("until: must be after since"));
    }
    let include_succeeded = input.status.unwrap_or_default() == ReplayStatus::All;
    crate::manual::admit(&state, auth.tenant_id).await?;
    let mut tx = crate::manual::begin(&state, auth.tenant_id).await?;
    relay_store::destinations::get_destination(&mut *tx, auth.tenant_id, id)
        .await
        .map_err(or_not_found(not_found))?;
    let queued =
        store::replay_destination(&mut *tx, auth.tenant_id, id, input.since, until, include_succeeded, None)
            .await?;
    if queued > 0 {
        store::notify_due(&mut *tx).await?;
    }
    crate::manual::commit_within_cap(tx, auth.tenant_id).await?;
    tracing::info!(tenant.id = %auth.tenant_id, destination.id = %id, queued, "destination replay queued");
    Ok((StatusCode::ACCEPTED, ApiJson(QueuedOut { queued })))
}
