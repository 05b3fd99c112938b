//! The one error a use case returns: a refusal by the rules (what the
//! request asked for breaks a rule of the rules in docs/, decided with or
//! without stored state), or a failure of the store. `error.rs` turns it
//! into problem+json in one place; a door that records quietly (a webhook,
//! a hosted page) asks `is_refusal` and answers its own way.

use crate::domain::problem::Invalid;
use crate::services::signer::SignError;
use crate::store::{Rejection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A rule that needs no stored state, or the brand and the clock.
    #[error("{}", .0.detail)]
    Invalid(Invalid),
    /// The store's refusal, or its failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A checkpoint or a statement could not be signed.
    #[error(transparent)]
    Signing(#[from] SignError),
}

impl From<Invalid> for ServiceError {
    fn from(invalid: Invalid) -> Self {
        ServiceError::Invalid(invalid)
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::Store(e.into())
    }
}

impl From<Rejection> for ServiceError {
    fn from(refusal: Rejection) -> Self {
        ServiceError::Store(StoreError::Rejected(refusal))
    }
}

impl ServiceError {
    /// A refusal by the rules (not a failure): a webhook records nothing
    /// for it, an API request answers its problem.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ServiceError::Invalid(_) | ServiceError::Store(StoreError::Rejected(_))
        )
    }

    /// The refusal's stable code, for a log line.
    pub fn refusal_code(&self) -> Option<String> {
        match self {
            ServiceError::Invalid(invalid) => Some(invalid.code.as_str().to_owned()),
            ServiceError::Store(StoreError::Rejected(r)) => Some(format!("{r:?}")),
            ServiceError::Store(_) | ServiceError::Signing(_) => None,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
