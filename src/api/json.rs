//! The JSON body extractor: `Content-Type` checked (415), size limited (413),
//! malformed JSON refused (400) and every type error, missing or unknown
//! field named by its path (422). Keeps the body's SHA-256 for idempotency.

use crate::domain::evidence::FieldError;
use crate::error::{ApiError, ErrorCode};
use crate::ledger::hash::sha256_hex;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// Limit of ordinary JSON bodies.
pub const JSON_LIMIT: usize = 1024 * 1024;
/// Limit of batch bodies.
pub const BATCH_LIMIT: usize = 4 * 1024 * 1024;

/// A parsed JSON body of at most `LIMIT` bytes.
pub struct ApiJson<T, const LIMIT: usize = JSON_LIMIT> {
    pub value: T,
    pub body_sha256: String,
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false)
}

impl<T: DeserializeOwned + ToSchema + 'static, const LIMIT: usize> FromRequest
    for ApiJson<T, LIMIT>
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let declared = super::body::declared_length(req);
        let state = req
            .app_data::<actix_web::web::Data<super::AppState>>()
            .cloned();
        let payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as Content-Type: application/json",
                ));
            }
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let body =
                super::body::read_body(&state, payload, declared, LIMIT, ErrorCode::MalformedJson)
                    .await?;
            let value = parse_json(&body).map_err(|e| every_missing_field::<T>(e, &body))?;
            Ok(ApiJson {
                value,
                body_sha256: sha256_hex(&body),
            })
        })
    }
}

/// A body that misses a required field of `T`'s top level is told every
/// field it misses at once (serde stops at the first), as `T`'s schema
/// lists them.
fn every_missing_field<T: ToSchema>(error: ApiError, body: &[u8]) -> ApiError {
    let first_missing = error.errors.len() == 1 && error.errors[0].code == "required";
    let Ok(serde_json::Value::Object(given)) = serde_json::from_slice(body) else {
        return error;
    };
    let RefOr::T(Schema::Object(schema)) = T::schema() else {
        return error;
    };
    let missing: Vec<&String> = schema
        .required
        .iter()
        .filter(|field| !given.contains_key(field.as_str()))
        .collect();
    if !first_missing || missing.len() < 2 || !missing.contains(&&error.errors[0].field) {
        return error;
    }
    let names: Vec<String> = missing.iter().map(|f| format!("`{f}`")).collect();
    let detail = format!("{} are required", names.join(", "));
    ApiError::new(ErrorCode::InvalidRequest, detail).with_errors(
        missing
            .into_iter()
            .map(|field| FieldError::new(field.clone(), "required"))
            .collect(),
    )
}

/// What serde expected, from its message ("invalid type: integer `5`,
/// expected a string"): never the part that echoes the value sent.
fn expected(message: &str) -> Option<&str> {
    message
        .split_once(", expected ")
        .map(|(_, wanted)| wanted.split(" at line ").next().unwrap_or(wanted))
}

/// Parses bytes into `T`, mapping errors to 400 or 422 with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| describe_error(e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| describe_error(String::new(), &e))?;
    Ok(value)
}

/// Deserialises an already-parsed value (batch items), naming fields the same way.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| describe_error(e.path().to_string(), e.inner()))
}

/// [`from_value`] of a JSON text already checked to be well-formed (an
/// item of a batch, kept as its text rather than as a tree of values).
pub fn from_raw<T: DeserializeOwned>(raw: &serde_json::value::RawValue) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| describe_error(e.path().to_string(), e.inner()))
}

fn describe_error(path: String, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            ErrorCode::MalformedJson,
            format!(
                "the body is not well-formed JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        ),
        Category::Data => {
            let message = error.to_string();
            let named = message.split('`').nth(1).filter(|_| {
                message.starts_with("unknown field") || message.starts_with("missing field")
            });
            let parent = if path == "." { String::new() } else { path };
            let field = match named {
                Some(name) if !parent.ends_with(name) => {
                    if parent.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{parent}.{name}")
                    }
                }
                _ if parent.is_empty() => "body".to_owned(),
                _ => parent,
            };
            let (code, detail) = if message.starts_with("unknown field") {
                ("unknown_field", format!("unknown field `{field}`"))
            } else if message.starts_with("missing field") {
                ("required", format!("`{field}` is required"))
            } else if message.starts_with("not an RFC 3339") {
                (
                    "invalid_timestamp",
                    format!("`{field}` must be an RFC 3339 date-time with Z or an offset"),
                )
            } else if message.starts_with("invalid type") {
                let detail = match expected(&message) {
                    Some(wanted) => {
                        format!("`{field}` has the wrong JSON type: it must be {wanted}")
                    }
                    None => format!("`{field}` has the wrong JSON type"),
                };
                ("invalid_type", detail)
            } else if message.starts_with("unknown variant") {
                let allowed = expected(&message).map(|w| w.trim_start_matches("one of "));
                let detail = match allowed {
                    Some(values) => format!("`{field}` must be one of {values}"),
                    None => format!("`{field}` has a value that is not allowed"),
                };
                ("invalid_value", detail)
            } else {
                (
                    "invalid_value",
                    format!("`{field}` has a value that is not allowed"),
                )
            };
            ApiError::new(ErrorCode::InvalidRequest, detail)
                .with_errors(vec![FieldError::new(field, code)])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
        at: Option<crate::domain::time::Timestamp>,
    }

    fn field_and_code(body: &str) -> (u16, String, String) {
        let e = parse_json::<Outer>(body.as_bytes()).unwrap_err();
        let p = e.problem();
        let first = p.errors.first();
        (
            p.status,
            first.map(|f| f.field.clone()).unwrap_or_default(),
            first.map(|f| f.code.clone()).unwrap_or(p.code),
        )
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_and_code("{\"name\":\"x\",\"inner\":{\"a\":1},\"zzz\":1}"),
            (422, "zzz".into(), "unknown_field".into())
        );
        assert_eq!(
            field_and_code("{\"name\":\"x\",\"inner\":{\"a\":1,\"b\":2}}"),
            (422, "inner.b".into(), "unknown_field".into())
        );
        assert_eq!(
            field_and_code("{\"name\":\"x\",\"inner\":{}}"),
            (422, "inner.a".into(), "required".into())
        );
        assert_eq!(
            field_and_code("{\"name\":\"x\"}"),
            (422, "inner".into(), "required".into())
        );
        assert_eq!(
            field_and_code("{\"name\":5,\"inner\":{\"a\":1}}"),
            (422, "name".into(), "invalid_type".into())
        );
        assert_eq!(
            field_and_code("{\"name\":\"x\",\"inner\":{\"a\":1},\"at\":\"yesterday\"}"),
            (422, "at".into(), "invalid_timestamp".into())
        );
        assert_eq!(
            field_and_code("{\"name\":"),
            (400, String::new(), "malformed_json".into())
        );
        assert_eq!(
            field_and_code("{\"name\":\"x\",\"inner\":{\"a\":1}} trailing"),
            (400, String::new(), "malformed_json".into())
        );
        assert_eq!(
            field_and_code("\"text\""),
            (422, "body".into(), "invalid_type".into())
        );
    }
}
