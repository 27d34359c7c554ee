//! The pure domain of wap-relay: identifiers, the inbound event schema, inbound signature
//! verification, outbound Standard Webhooks signing, the retry schedule, plans and limits,
//! destination settings, filters, secrets at rest and the destination address policy.
//!
//! Nothing here does I/O: no sockets, no database, no clock reads except where a caller passes
//! `now`. Every function is deterministic given its inputs (jitter takes its random draw as an
//! argument), so the rules of the product are unit-testable in isolation.

pub mod address;
pub mod dedupe;
pub mod destination;
pub mod event;
pub mod filter;
pub mod headers;
pub mod ids;
pub mod meta;
pub mod operational;
pub mod plan;
pub mod retry;
pub mod secret;
pub mod sign;
pub mod text;
pub mod verify;
pub mod vocab;

pub use ids::{AttemptId, DeliveryId, DestinationId, EventId, RejectionId, SourceId, TenantId};
