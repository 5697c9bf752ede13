//! Capacity units as DynamoDB reports them: an HTTP client for the worker's SDK client that asks
//! every request for `ReturnConsumedCapacity: TOTAL` and adds up the `ConsumedCapacity` of the
//! answers, by operation. The worker itself never asks (it costs nothing, but nothing reads
//! it); DynamoDB Local answers it as DynamoDB would. (It accepts the body changed after
//! signing: it does not check signatures.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use rust_decimal::Decimal;
use serde_json::Value;

/// Capacity units consumed, by operation.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    units: Arc<Mutex<BTreeMap<String, Decimal>>>,
    inner: Option<SharedHttpClient>,
}

impl Capacity {
    pub fn new() -> Capacity {
        Capacity {
            units: Arc::default(),
            inner: Some(aws_smithy_http_client::Builder::new().build_http()),
        }
    }

    /// Units by operation so far.
    pub fn snapshot(&self) -> BTreeMap<String, Decimal> {
        self.units.lock().unwrap().clone()
    }

    /// (read units, write units) consumed since `before`: reads are GetItem, BatchGetItem and
    /// Query; everything else writes.
    pub fn since(&self, before: &BTreeMap<String, Decimal>) -> (Decimal, Decimal) {
        let mut split = (Decimal::ZERO, Decimal::ZERO);
        for (operation, units) in self.snapshot() {
            let units = units - before.get(&operation).copied().unwrap_or_default();
            match operation.as_str() {
                "GetItem" | "BatchGetItem" | "Query" => split.0 += units,
                _ => split.1 += units,
            }
        }
        split
    }
}

/// The sum of `CapacityUnits` in an answer (one object, or one per table).
fn units_of(answer: &Value) -> Decimal {
    let one = |c: &Value| {
        c["CapacityUnits"]
            .as_f64()
            .and_then(|u| Decimal::try_from(u).ok())
            .unwrap_or_default()
    };
    match &answer["ConsumedCapacity"] {
        Value::Array(all) => all.iter().map(one).sum(),
        single => one(single),
    }
}

impl HttpClient for Capacity {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let inner = self
            .inner
            .as_ref()
            .expect("built with Capacity::new")
            .http_connector(settings, components);
        SharedHttpConnector::new(Counting {
            units: self.units.clone(),
            inner,
        })
    }
}

#[derive(Debug)]
struct Counting {
    units: Arc<Mutex<BTreeMap<String, Decimal>>>,
    inner: SharedHttpConnector,
}

impl HttpConnector for Counting {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_string();
        let asked = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok());
        if let Some(Value::Object(mut body)) = asked {
            body.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
            let bytes = serde_json::to_vec(&body).unwrap();
            request
                .headers_mut()
                .insert("content-length", bytes.len().to_string());
            *request.body_mut() = SdkBody::from(bytes);
        }
        let inner = self.inner.clone();
        let units = self.units.clone();
        HttpConnectorFuture::new(async move {
            let mut response = inner.call(request).await?;
            let body = std::mem::replace(response.body_mut(), SdkBody::taken());
            let bytes = ByteStream::new(body)
                .collect()
                .await
                .map(|data| data.into_bytes())
                .unwrap_or_default();
            if let Ok(answer) = serde_json::from_slice::<Value>(&bytes) {
                *units.lock().unwrap().entry(operation).or_default() += units_of(&answer);
            }
            *response.body_mut() = SdkBody::from(bytes);
            Ok(response)
        })
    }
}
