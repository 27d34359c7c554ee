//! The OpenAPI document's frame: info, tags, the bearer security scheme, and the problem+json
//! responses every route shares. [`finish`] adds 401, 403, 500 and 503 to every secured
//! operation and 400/415 to every operation with a request body, so no route can forget them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToResponse};

use relay_http::Problem;

/// The request is malformed: bad JSON, a field of the wrong type, an unknown field, a bad query
/// parameter or cursor. `detail` names the field.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// The bearer token is missing, malformed, expired or not valid for this relay.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(pub Problem);

/// The token's role may not use this route (`forbidden`), or the plan does not allow the
/// request (`plan_limit`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// No such resource for this tenant.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// The request conflicts with the resource's state.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// The body is not `application/json`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// A field has a value the relay refuses (`validation_error`, `destination_not_allowed`);
/// `detail` names the field.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ValidationFailed(pub Problem);

/// An internal error; the cause is logged, not returned.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Internal(pub Problem);

/// The tenant runs as many statistics or log reads at once as it may (`too_many_reads`); retry
/// after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct TooManyReads(pub Problem);

/// The database is unavailable (`unavailable`), or a read ran past its statement timeout
/// (`query_timeout`); retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);

/// Manual work refused: `rate_limited` (past the tenant's rate for test events, redeliveries
/// and replays: 2 per second, burst 20, across the fleet) or `backlog_full` (what the request
/// would queue passes the plan's backlog cap; nothing was queued). Retry after `Retry-After`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ManualRefused(pub Problem);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wap-relay",
        description = "Multi-tenant webhook relay for WAPing events: ingest, verification, fan-out \
                       with retries, and the admin API. Admin routes take `Authorization: Bearer <JWT>` \
                       (HS256). Errors are RFC 9457 problem+json with a stable `code`. Lists are newest \
                       first with `?limit=` (1-250, default 50) and `?cursor=`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(
        // Schemas used only by query parameters are not collected from the routes: list them.
        schemas(Problem, crate::attempts::AttemptOutcome, crate::deliveries::DeliveryStatus),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, UnsupportedMediaType,
            ValidationFailed, TooManyReads, Internal, Unavailable, ManualRefused)
    ),
    tags(
        (name = "ingress", description = "Events from WAPing (no bearer token; signed per source)"),
        (name = "operator", description = "Tenants, tokens and plans (operator tokens)"),
        (name = "tenant", description = "The calling tenant, its usage and statistics"),
        (name = "sources", description = "Ingest endpoints and their verification"),
        (name = "destinations", description = "Where events fan out to"),
        (name = "logs", description = "Events, deliveries, attempts and rejections"),
        (name = "recovery", description = "Redelivery and replay"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the bearer scheme, and the shared error responses to every operation of the assembled
/// document (routes are added after `ApiDoc::openapi()`, so this runs last).
pub(crate) fn finish(openapi: &mut utoipa::openapi::OpenApi) {
    SharedResponses.modify(openapi);
}

struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                add_shared(op);
            }
        }
    }
}

fn add_shared(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if op.request_body.is_some() {
        shared.extend([("400", "BadRequest"), ("415", "UnsupportedMediaType")]);
    }
    if secured {
        shared.extend([
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("500", "Internal"),
            ("503", "Unavailable"),
        ]);
    }
    for (status, name) in shared {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}
