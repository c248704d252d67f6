//! What a step gives back besides its outcome.

use crate::lab::LabError;

pub(crate) fn lab_err(
    service: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> LabError {
    LabError::Service {
        service: service.to_string(),
        source: std::io::Error::other(e),
    }
}
