//! `wap-relay keys rotate-master --new-key K`: re-encrypts every stored secret (the columns of
//! `relay_store::rekey::SEALED_COLUMNS`) from the key(s) this process has to `K`, in bounded
//! batches, while the fleet runs. The rotation, in order:
//! 1. roll the fleet to `RELAY_MASTER_KEY=K` with `RELAY_MASTER_KEY_PREVIOUS=<old>` (every
//!    process then opens both and seals with `K`);
//! 2. run this command with those same settings (or with `RELAY_MASTER_KEY=<old>`: it opens with
//!    what it has and seals with `K`);
//! 3. when it reports nothing left under the old key, roll the fleet without
//!    `RELAY_MASTER_KEY_PREVIOUS`.
//!
//! Invariants: a value already sealed with `K` is left alone (running it twice is harmless); a
//! value the fleet changed meanwhile is not overwritten (compare and set); a value neither key
//! opens is counted and makes the command fail, never silently dropped.

use anyhow::bail;
use relay_core::secret::MasterKey;
use relay_store::PgPool;
use relay_store::rekey::{SEALED_COLUMNS, replace_sealed, sealed_batch};
use uuid::Uuid;

/// What a rotation did, per column and in all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    pub rewritten: u64,
    pub already_new: u64,
    pub changed_meanwhile: u64,
    pub undecryptable: u64,
}

/// Re-encrypts every sealed value that `old` opens and `new` did not seal, `batch` rows at a time.
pub async fn rotate_master(
    pool: &PgPool,
    old: &MasterKey,
    new: &MasterKey,
    batch: i64,
) -> anyhow::Result<Rekeyed> {
    let mut total = Rekeyed::default();
    for &column in SEALED_COLUMNS {
        let mut after = Uuid::nil();
        let mut done = Rekeyed::default();
        loop {
            let rows = sealed_batch(pool, column, after, batch.max(1)).await?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            for (id, sealed) in rows {
                if new.is_current(&sealed) {
                    done.already_new += 1;
                    continue;
                }
                let Ok(secret) = old.open(&sealed) else {
                    done.undecryptable += 1;
                    continue;
                };
                if replace_sealed(pool, column, id, &sealed, &new.seal(&secret)).await? {
                    done.rewritten += 1;
                } else {
                    done.changed_meanwhile += 1;
                }
            }
        }
        eprintln!(
            "{}.{}: {} re-encrypted, {} already under the new key, {} changed meanwhile, {} undecryptable",
            column.0, column.1, done.rewritten, done.already_new, done.changed_meanwhile, done.undecryptable
        );
        total.rewritten += done.rewritten;
        total.already_new += done.already_new;
        total.changed_meanwhile += done.changed_meanwhile;
        total.undecryptable += done.undecryptable;
    }
    if total.undecryptable > 0 {
        bail!(
            "{} stored values open with neither key: is RELAY_MASTER_KEY_PREVIOUS missing?",
            total.undecryptable
        );
    }
    Ok(total)
}
