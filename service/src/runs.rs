//! Evaluation runs: submissions, claims and per-run scoped credentials.

use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl RunError {
    pub fn status(&self) -> u16 {
        match self {
            RunError::Storage(_) => 500,
        }
    }
}

impl Services {
    /// Disables the keys of runs whose validator vanished. (Filled in with the runs.)
    pub async fn reap_runs(&self) -> Result<usize, RunError> {
        Ok(0)
    }
}
