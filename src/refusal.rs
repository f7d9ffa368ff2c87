//! The stable refusal codes of SPEC.md. Each API surface renders them in its own error shape.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidApiKey,
    KeyRevoked,
    KeyExpired,
    TrainingNotCurrent,
    ContractInactive,
    ModelNotRegistered,
    ProviderNotApproved,
    ProviderNotAllowedForContract,
    ConfidentialContentBlocked,
    ConfidentialTagUnclosed,
    UnsupportedContent,
    AuditLogUnavailable,
    RequestTooLarge,
    InvalidRequest,
    UpstreamError,
    NotFound,
    MethodNotAllowed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidApiKey => "invalid_api_key",
            Code::KeyRevoked => "key_revoked",
            Code::KeyExpired => "key_expired",
            Code::TrainingNotCurrent => "training_not_current",
            Code::ContractInactive => "contract_inactive",
            Code::ModelNotRegistered => "model_not_registered",
            Code::ProviderNotApproved => "provider_not_approved",
            Code::ProviderNotAllowedForContract => "provider_not_allowed_for_contract",
            Code::ConfidentialContentBlocked => "confidential_content_blocked",
            Code::ConfidentialTagUnclosed => "confidential_tag_unclosed",
            Code::UnsupportedContent => "unsupported_content",
            Code::AuditLogUnavailable => "audit_log_unavailable",
            Code::RequestTooLarge => "request_too_large",
            Code::InvalidRequest => "invalid_request",
            Code::UpstreamError => "upstream_error",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidApiKey | Code::KeyRevoked | Code::KeyExpired => 401,
            Code::TrainingNotCurrent
            | Code::ContractInactive
            | Code::ProviderNotApproved
            | Code::ProviderNotAllowedForContract => 403,
            Code::ModelNotRegistered | Code::NotFound => 404,
            Code::RequestTooLarge => 413,
            Code::ConfidentialContentBlocked
            | Code::ConfidentialTagUnclosed
            | Code::UnsupportedContent
            | Code::InvalidRequest => 400,
            Code::AuditLogUnavailable => 503,
            Code::UpstreamError => 502,
            Code::MethodNotAllowed => 405,
        }
    }

    /// The `error.type` of OpenAI's error shape.
    pub fn openai_type(self) -> &'static str {
        match self.http_status() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 | 405 | 400 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The `error.type` of Anthropic's error shape.
    pub fn anthropic_type(self) -> &'static str {
        match self.http_status() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            400 | 405 => "invalid_request_error",
            503 => "overloaded_error",
            _ => "api_error",
        }
    }
}

/// Why a request was not served: a code and a message telling the person what to do.
/// Messages never contain a key, a credential or request content.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}
