//! CloudWatch in CBOR, moto in JSON. The Rust SDK speaks Smithy RPC v2 CBOR to
//! CloudWatch (`POST /service/GraniteServiceVersion20100801/operation/<Op>`,
//! `smithy-protocol: rpc-v2-cbor`); moto 5.2 serves CloudWatch's awsJson 1.0
//! and query protocols only, and answers a CBOR request 404. This connector
//! sits under every client of the emulator's SDK config: a CBOR request goes
//! to moto as the same awsJson 1.0 request (`X-Amz-Target:
//! GraniteServiceVersion20100801.<Op>`), and moto's JSON answer comes back as
//! CBOR; every other request passes untouched. What the adapter sends and reads
//! is unchanged: the same operation, members and values, in the other encoding.
//!
//! JSON has no timestamps: a number under a key ending in `Timestamp` (the
//! CloudWatch members DescribeAlarms returns: `StateUpdatedTimestamp`,
//! `StateTransitionedTimestamp`, `AlarmConfigurationUpdatedTimestamp`) goes
//! back as CBOR's epoch time (tag 1), which is how RPC v2 CBOR carries them.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use ciborium::Value as Cbor;
use serde_json::Value as Json;

/// RFC 8949 §3.4.2: epoch-based date/time.
const EPOCH_TAG: u64 = 1;

/// `inner`, with CBOR requests translated to and from awsJson 1.0.
pub fn client(inner: SharedHttpClient) -> SharedHttpClient {
    SharedHttpClient::new(CborAsJson { inner })
}

#[derive(Debug)]
struct CborAsJson {
    inner: SharedHttpClient,
}

impl HttpClient for CborAsJson {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct Connector {
    inner: SharedHttpConnector,
}

fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ConnectorError {
    ConnectorError::other(error.into(), None)
}

impl HttpConnector for Connector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let is_cbor = request.headers().get("smithy-protocol") == Some("rpc-v2-cbor");
        let Some((base, service, operation)) = is_cbor.then(|| rpc_path(request.uri())).flatten()
        else {
            return self.inner.call(request);
        };
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            let body = request.body().bytes().unwrap_or_default();
            let json = if body.is_empty() {
                Json::Object(Default::default())
            } else {
                let value: Cbor = ciborium::from_reader(body).map_err(|e| failed(e.to_string()))?;
                cbor_to_json(value)
            };
            let body = serde_json::to_vec(&json).map_err(failed)?;
            request
                .set_uri(format!("{base}/"))
                .map_err(|e| failed(e.to_string()))?;
            let headers = request.headers_mut();
            headers.remove("smithy-protocol");
            headers.remove("x-amzn-query-mode");
            headers.remove("accept");
            headers.insert("content-type", "application/x-amz-json-1.0");
            headers.insert("x-amz-target", format!("{service}.{operation}"));
            headers.insert("content-length", body.len().to_string());
            *request.body_mut() = SdkBody::from(body);

            let response = inner.call(request).await?;
            let status = response.status();
            let mut headers = response.headers().clone();
            let bytes = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(failed)?
                .into_bytes();
            let json: Json = if bytes.is_empty() {
                Json::Object(Default::default())
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::json!({
                        "__type": "EmulatorAnsweredNotJson",
                        "message": String::from_utf8_lossy(&bytes),
                    })
                })
            };
            let mut out = Vec::new();
            ciborium::into_writer(&json_to_cbor(None, json), &mut out)
                .map_err(|e| failed(e.to_string()))?;
            headers.remove("content-type");
            headers.remove("x-amzn-errortype");
            headers.insert("content-type", "application/cbor");
            headers.insert("smithy-protocol", "rpc-v2-cbor");
            headers.insert("content-length", out.len().to_string());
            let mut translated = HttpResponse::new(status, SdkBody::from(out));
            *translated.headers_mut() = headers;
            Ok(translated)
        })
    }
}

/// `http://host:port/service/<Service>/operation/<Op>` → (`http://host:port`, Service, Op).
fn rpc_path(uri: &str) -> Option<(String, String, String)> {
    let (base, rest) = uri.split_once("/service/")?;
    let (service, operation) = rest.split_once("/operation/")?;
    let operation = operation.split(['?', '/']).next()?;
    Some((base.to_owned(), service.to_owned(), operation.to_owned()))
}

fn cbor_to_json(value: Cbor) -> Json {
    match value {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            i64::try_from(i)
                .map(Json::from)
                .or_else(|_| u64::try_from(i).map(Json::from))
                .unwrap_or(Json::Null)
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Cbor::Text(s) => Json::String(s),
        // awsJson carries blobs as base64; CloudWatch's alarm calls send none.
        Cbor::Bytes(b) => Json::String(String::from_utf8_lossy(&b).into_owned()),
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        Cbor::Array(items) => Json::Array(items.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Json::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, cbor_to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}

/// `key` is the member name `value` sits under, if any.
fn json_to_cbor(key: Option<&str>, value: Json) -> Cbor {
    match value {
        Json::Number(n) if key.is_some_and(|k| k.ends_with("Timestamp")) => Cbor::Tag(
            EPOCH_TAG,
            Box::new(match n.as_i64() {
                Some(i) => Cbor::Integer(i.into()),
                None => Cbor::Float(n.as_f64().unwrap_or_default()),
            }),
        ),
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Cbor::Text(s),
        Json::Array(items) => Cbor::Array(
            items
                .into_iter()
                .map(|item| json_to_cbor(None, item))
                .collect(),
        ),
        Json::Object(entries) => Cbor::Map(
            entries
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let value = json_to_cbor(Some(&k), v);
                    (Cbor::Text(k), value)
                })
                .collect(),
        ),
    }
}
