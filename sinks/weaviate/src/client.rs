//! The HTTP client shared by the batch writer and the schema command.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::config::ApiKey;

/// Builds a client with `Authorization: Bearer <key>` (marked sensitive, so never logged) when a key
/// is given, the connect timeout and the whole-request timeout. Errors: the key is not a valid header
/// value (the message does not show it), or TLS setup failed.
pub fn build_client(
    api_key: Option<&ApiKey>,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    // HTTPS uses rustls with the ring provider (as the weather fetcher does); `Err` only means a
    // provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| "the API key holds characters not allowed in an HTTP header".to_owned())?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("millionx-sink-weaviate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The first `error[].message` of an `ErrorResponse`, else the `message` of a framework error
/// (`{"code","message"}`) or a `UsageLimitExceededResponse`, else the body text cut to 300 chars.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let messages: Vec<&str> = value
            .get("error")
            .and_then(|e| e.as_array())
            .map(|errors| errors.iter().filter_map(|e| e.get("message")?.as_str()).collect())
            .unwrap_or_default();
        if !messages.is_empty() {
            return messages.join("; ");
        }
        if let Some(m) = value.get("message").and_then(|m| m.as_str()) {
            return m.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(300).collect();
    if cut.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_three_error_shapes() {
        assert_eq!(error_message(br#"{"error":[{"message":"a"},{"message":"b"}]}"#), "a; b");
        assert_eq!(
            error_message(br#"{"code":601,"message":"id in body must be of type uuid: \"x\""}"#),
            "id in body must be of type uuid: \"x\""
        );
        assert_eq!(
            error_message(br#"{"errorCode":"USAGE_LIMIT_EXCEEDED","limit":"objects","value":5,"message":"limit"}"#),
            "limit"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(b"bad gateway"), "bad gateway");
    }
}
