//! `StoreError`: the one place where database failures become categories the layers above act
//! on. Constraint names become `Conflict` here and nowhere else; lost connections and pool
//! timeouts become `Unavailable`, which the HTTP layer answers with 503 and `Retry-After`; a
//! statement cancelled by its `statement_timeout` (the admin reads' budget) becomes `TimedOut`.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflicts with an existing row ({constraint})")]
    Conflict { constraint: String },
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the statement ran past its statement_timeout")]
    TimedOut(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if code == "23505" {
                    let constraint = db.constraint().unwrap_or("unique").to_owned();
                    StoreError::Conflict { constraint }
                } else if code == "57014" {
                    // query_canceled: here only by a statement_timeout (nothing else cancels).
                    StoreError::TimedOut(e)
                } else if is_unavailable_sqlstate(&code) {
                    StoreError::Unavailable(e)
                } else {
                    StoreError::Database(e)
                }
            }
            _ => StoreError::Database(e),
        }
    }
}

/// Connection exceptions (08), operator intervention (57: shutdown, cancel), insufficient
/// resources (53), read-only/recovery states (25006), serialization failures and deadlocks
/// (40001, 40P01) are transient: the client should retry.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57")
        || code.starts_with("53")
        || matches!(code, "25006" | "40001" | "40P01")
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
