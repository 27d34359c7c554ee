//! Per-process caches of what ingest reads for every event: the source (with its tenant's plan,
//! limits and status), so an accepted event costs no lookup query, and each tenant's fan-out
//! destinations (filters and what the local dispatcher needs to size its lease), so a batch
//! write is one statement. Both are `relay_store::watched` caches: entries are dropped as soon
//! as the source, destination or tenant changes anywhere in the fleet (triggers announce every
//! change on the config channel, and this process LISTENs), and nothing is cached while the
//! LISTEN is not in place. Unknown sources are never cached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use relay_core::{SourceId, TenantId};
use relay_store::destinations::{FanoutDestination, list_fanout_destinations};
use relay_store::listen::{CONFIG_CHANNEL, Change, Heard, listen};
use relay_store::sources::{self, IngestSource};
use relay_store::watched::Watched;
use relay_store::{PgPool, StoreError};
use uuid::Uuid;

const MAX_ENTRIES: usize = 100_000;

pub struct ConfigCache {
    sources: Watched<SourceId, Arc<IngestSource>>,
    fanout: Watched<TenantId, Arc<Vec<FanoutDestination>>>,
}

impl ConfigCache {
    /// Caches that stay empty until [`ConfigCache::watch`] has its LISTEN in place; entries live
    /// at most `ttl` whatever the announcements say.
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self { sources: Watched::new(ttl, MAX_ENTRIES), fanout: Watched::new(ttl, MAX_ENTRIES) })
    }

    pub async fn source(&self, pool: &PgPool, id: SourceId) -> Result<Option<Arc<IngestSource>>, StoreError> {
        if let Some(found) = self.sources.get(&id) {
            return Ok(Some(found));
        }
        let ticket = self.sources.ticket();
        let Some(found) = sources::find_ingest_source(pool, id).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.sources.put(ticket, id, found.clone());
        Ok(Some(found))
    }

    /// The enabled, live destinations of each of `tenants`.
    pub async fn fanout(
        &self,
        pool: &PgPool,
        tenants: &[TenantId],
    ) -> Result<HashMap<TenantId, Arc<Vec<FanoutDestination>>>, StoreError> {
        let mut found = HashMap::with_capacity(tenants.len());
        let mut missing: Vec<Uuid> = Vec::new();
        for t in tenants {
            match self.fanout.get(t) {
                Some(d) => {
                    found.insert(*t, d);
                }
                None => missing.push(t.uuid()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let ticket = self.fanout.ticket();
        let mut loaded: HashMap<TenantId, Vec<FanoutDestination>> =
            missing.iter().map(|t| (TenantId::from_uuid(*t), Vec::new())).collect();
        for d in list_fanout_destinations(pool, &missing).await? {
            loaded.entry(d.tenant_id).or_default().push(d);
        }
        for (tenant, destinations) in loaded {
            let destinations = Arc::new(destinations);
            self.fanout.put(ticket, tenant, destinations.clone());
            found.insert(tenant, destinations);
        }
        Ok(found)
    }

    fn hear(&self, heard: &Heard<'_>) {
        match heard {
            Heard::Listening => {
                self.sources.set_listening(true);
                self.fanout.set_listening(true);
            }
            Heard::Lost => {
                self.sources.set_listening(false);
                self.fanout.set_listening(false);
            }
            Heard::Notification { payload, .. } => match Change::parse(payload) {
                Change::Source(id) => {
                    self.sources.forget(|k, _| k.uuid() == id);
                }
                Change::Tenant(t) => {
                    self.sources.forget(|_, s| s.source.tenant_id == t);
                    self.fanout.forget(|k, _| k.uuid() == t);
                }
                Change::Destination { tenant, .. } => self.fanout.forget(|k, _| k.uuid() == tenant),
                Change::Unknown => {
                    self.sources.forget(|_, _| true);
                    self.fanout.forget(|_, _| true);
                }
            },
        }
    }

    /// Keeps the LISTEN in place for as long as the process runs.
    pub async fn watch(self: Arc<Self>, pool: PgPool) {
        listen(pool, &[CONFIG_CHANNEL], "ingress config", move |heard| self.hear(&heard)).await;
    }
}
