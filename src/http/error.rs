//! The data plane's error type: a refusal rendered in the wire shape of the API that was called.
use crate::policy::WireApi;
use crate::proxy::{error_body, Refused};
use crate::refusal::Refusal;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
#[error("{refusal}")]
pub struct ApiError {
    pub api: WireApi,
    pub refusal: Refusal,
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn from_refused(api: WireApi, r: Refused) -> Self {
        Self {
            api,
            refusal: r.refusal,
            request_id: Some(r.request_id),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.refusal.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut resp = (status, axum::Json(error_body(self.api, &self.refusal))).into_response();
        if let Some(id) = self
            .request_id
            .and_then(|id| HeaderValue::from_str(&id).ok())
        {
            resp.headers_mut().insert(super::REQUEST_ID, id);
        }
        resp
    }
}
