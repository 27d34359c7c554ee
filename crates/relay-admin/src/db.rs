//! Transactions for the handlers that read, check and write as one unit, with their errors
//! already mapped to problems.

use relay_http::ApiError;
use relay_store::{PgPool, Postgres, StoreError, Transaction};

pub(crate) async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, ApiError> {
    pool.begin().await.map_err(|e| StoreError::from(e).into())
}

pub(crate) async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), ApiError> {
    tx.commit().await.map_err(|e| StoreError::from(e).into())
}
