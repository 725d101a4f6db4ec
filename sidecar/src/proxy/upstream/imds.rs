//! The node's IMDS: managed-identity tokens (type 0) by client id, and the other paths forwarded as they came.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::client::{self, Target};
use super::error::{UpstreamError, status_error, token_from};
use crate::proxy::token::Token;

/// The api-version the proxy asks IMDS with: the oldest that every IMDS knows.
pub const API_VERSION: &str = "2018-02-01";
const NAME: &str = "IMDS";

/// The node's IMDS.
#[derive(Clone, Debug)]
pub struct Imds {
    target: Target,
    host: String,
}

impl Imds {
    /// IMDS at `endpoint`.
    pub fn new(endpoint: SocketAddr) -> Self {
        let host = match endpoint.port() {
            80 => endpoint.ip().to_string(),
            _ => endpoint.to_string(),
        };
        Self {
            target: Target::Plain(endpoint),
            host,
        }
    }

    /// One attempt at a token for the identity with `client_id`.
    pub async fn token(&self, client_id: &str, resource: &str) -> Result<Token, UpstreamError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("api-version", API_VERSION)
            .append_pair("resource", resource)
            .append_pair("client_id", client_id)
            .finish();
        let request = self.request(
            Method::GET,
            &format!("/metadata/identity/oauth2/token?{query}"),
            None,
            Bytes::new(),
        )?;
        let (status, headers, body) = client::fetch(&self.target, request)
            .await
            .map_err(|e| UpstreamError::unreachable(NAME, &e))?;
        if status == StatusCode::OK {
            return token_from(NAME, &body);
        }
        let error = status_error(NAME, status, &headers, &body);
        match &error {
            // How IMDS says the identity is not assigned to this VM (yet): the
            // controller is probably assigning it right now.
            UpstreamError::Status {
                status: 400,
                description,
                ..
            } if description
                .to_ascii_lowercase()
                .contains("identity not found") =>
            {
                Err(UpstreamError::NotAssigned)
            }
            _ => Err(error),
        }
    }

    /// Forwards a request for another IMDS path; the answer's body streams back.
    pub async fn forward(
        &self,
        method: Method,
        target: &str,
        content_type: Option<&header::HeaderValue>,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let request = self.request(method, target, content_type, body)?;
        client::send(&self.target, request)
            .await
            .map_err(|e| UpstreamError::unreachable(NAME, &e))
    }

    fn request(
        &self,
        method: Method,
        target: &str,
        content_type: Option<&header::HeaderValue>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, &self.host)
            .header("Metadata", "true");
        if let Some(value) = content_type {
            builder = builder.header(header::CONTENT_TYPE, value);
        }
        builder
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Unreachable {
                upstream: NAME,
                message: format!("building the request: {e}"),
            })
    }
}
