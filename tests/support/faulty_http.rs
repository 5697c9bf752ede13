//! An HTTP client for the SDK adapters that fails chosen attempts the way AWS would answer
//! them (throttling, 5xx, timeouts, permanent errors) before they reach DynamoDB Local or moto,
//! so the real SDK retry policy (`wiring::retry_policy`) is what gets tested. It counts calls
//! and attempts per operation so tests can print what the retries cost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// What an injected failure looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// ThrottlingException (DynamoDB), SlowDown (S3), Throttling (SES).
    Throttle,
    /// 500 InternalServerError / InternalError / ServiceUnavailable.
    ServerError,
    /// The attempt times out before an answer.
    Timeout,
    /// ValidationException / AccessDenied / MessageRejected: not worth retrying.
    Permanent,
    /// ConditionalCheckFailedException (DynamoDB): another writer got there first.
    Conflict,
}

/// Which attempts fail.
#[derive(Debug, Clone)]
pub enum Plan {
    Nothing,
    /// The first `count` attempts of every call fail, the kind cycling through throttle, 5xx
    /// and timeout from call to call and attempt to attempt.
    FirstAttempts {
        count: u32,
    },
    /// Every attempt of the `call`-th call (from 0) of `operation` fails with `fault`.
    Call {
        operation: &'static str,
        call: usize,
        fault: Fault,
    },
    /// Nothing fails, but requests of these operations wait at `gate` until it opens: a worker
    /// whose write arrives after another worker's, however the scheduler runs them.
    Hold {
        operations: &'static [&'static str],
        gate: Arc<Gate>,
    },
}

/// Where held requests wait. `arrived` lets the test know a request is waiting.
#[derive(Debug)]
pub struct Gate {
    arrived: tokio::sync::Notify,
    open: tokio::sync::watch::Sender<bool>,
    /// The HTTP status each held request got once through: 400 for a failed condition.
    answers: Mutex<Vec<u16>>,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            arrived: tokio::sync::Notify::new(),
            open: tokio::sync::watch::Sender::new(false),
            answers: Mutex::new(Vec::new()),
        })
    }

    /// The statuses of the requests that were held here, in the order they were answered.
    pub fn answers(&self) -> Vec<u16> {
        self.answers.lock().unwrap().clone()
    }

    /// Returns once a request waits at the gate.
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    async fn pass(&self) {
        self.arrived.notify_one();
        let mut open = self.open.subscribe();
        // An error means the gate was dropped: nothing holds the request any more.
        let _ = open.wait_for(|open| *open).await;
    }
}

/// What the client saw, per operation.
#[derive(Debug, Default, Clone)]
pub struct OperationStats {
    pub calls: usize,
    pub attempts: usize,
    pub injected: BTreeMap<Fault, usize>,
    pub max_attempts_in_a_call: u32,
    /// Longest time between two attempts of one call: the retry's sleep plus the attempt.
    pub longest_gap: Duration,
}

#[derive(Debug, Default)]
struct State {
    plan: Option<Plan>,
    /// Per SDK invocation id: operation, its call number, attempts so far, last attempt.
    invocations: HashMap<String, (String, usize, u32, Instant)>,
    stats: BTreeMap<String, OperationStats>,
    /// Operation and body of every attempt of a call that `Plan::Call` made fail.
    failed_calls: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct FaultyHttp {
    inner: SharedHttpClient,
    state: Arc<Mutex<State>>,
}

impl FaultyHttp {
    pub fn new(plan: Plan) -> Self {
        FaultyHttp {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            state: Arc::new(Mutex::new(State {
                plan: Some(plan),
                ..State::default()
            })),
        }
    }

    /// Change the plan (e.g. to `Plan::Nothing` before a re-delivery).
    pub fn set_plan(&self, plan: Plan) {
        self.state.lock().unwrap().plan = Some(plan);
    }

    /// The fault `Plan::Call` injects, if that is the plan.
    pub fn planned_fault(&self) -> Option<Fault> {
        match &self.state.lock().unwrap().plan {
            Some(Plan::Call { fault, .. }) => Some(*fault),
            _ => None,
        }
    }

    pub fn client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    pub fn stats(&self) -> BTreeMap<String, OperationStats> {
        self.state.lock().unwrap().stats.clone()
    }

    /// Whether `Plan::Call` failed a call of `operation` whose request contains `text`.
    pub fn failed_call_of(&self, operation: &str, text: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .failed_calls
            .iter()
            .any(|(op, body)| op == operation && body.contains(text))
    }

    /// Faults injected so far, over all operations.
    pub fn injected_count(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.stats.values().flat_map(|s| s.injected.values()).sum()
    }

    /// One line per operation: calls, attempts, faults injected, most attempts in one call,
    /// the longest gap between attempts.
    pub fn report(&self, title: &str) -> String {
        let mut text = format!("{title}:\n");
        for (operation, s) in self.stats() {
            text.push_str(&format!(
                "  {operation:<20} calls {:>3}  attempts {:>3}  injected {:?}  most attempts {}  longest gap {} ms\n",
                s.calls,
                s.attempts,
                s.injected,
                s.max_attempts_in_a_call,
                s.longest_gap.as_millis()
            ));
        }
        text
    }

    fn gate_for(&self, operation: &str) -> Option<Arc<Gate>> {
        match &self.state.lock().unwrap().plan {
            Some(Plan::Hold { operations, gate }) if operations.contains(&operation) => {
                Some(gate.clone())
            }
            _ => None,
        }
    }

    /// Decide the fate of one attempt and count it.
    fn attempt(&self, request: &HttpRequest) -> (String, Option<Fault>) {
        let operation = operation_name(request);
        let invocation = request
            .headers()
            .get("amz-sdk-invocation-id")
            .unwrap_or_default()
            .to_string();
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        let calls_so_far = state.stats.get(&operation).map_or(0, |s| s.calls);
        let (call, attempt, gap) = match state.invocations.get_mut(&invocation) {
            Some((_, call, attempts, last)) => {
                *attempts += 1;
                let gap = now - *last;
                *last = now;
                (*call, *attempts, gap)
            }
            None => {
                state
                    .invocations
                    .insert(invocation, (operation.clone(), calls_so_far, 1, now));
                (calls_so_far, 1, Duration::ZERO)
            }
        };
        let fault = match state.plan.as_ref().unwrap_or(&Plan::Nothing) {
            Plan::Nothing | Plan::Hold { .. } => None,
            Plan::FirstAttempts { count } => (attempt <= *count).then(|| {
                [Fault::Throttle, Fault::ServerError, Fault::Timeout][(call + attempt as usize) % 3]
            }),
            Plan::Call {
                operation: target,
                call: n,
                fault,
            } => (*target == operation && *n == call).then_some(*fault),
        };
        let stats = state.stats.entry(operation.clone()).or_default();
        if attempt == 1 {
            stats.calls += 1;
        }
        stats.attempts += 1;
        stats.max_attempts_in_a_call = stats.max_attempts_in_a_call.max(attempt);
        stats.longest_gap = stats.longest_gap.max(gap);
        if let Some(fault) = fault {
            *stats.injected.entry(fault).or_default() += 1;
            if matches!(state.plan, Some(Plan::Call { .. })) {
                let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default());
                state
                    .failed_calls
                    .push((operation.clone(), body.into_owned()));
            }
        }
        (operation, fault)
    }
}

impl HttpClient for FaultyHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            client: self.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    client: FaultyHttp,
    inner: SharedHttpConnector,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match self.client.attempt(&request) {
            (operation, None) => match self.client.gate_for(&operation) {
                Some(gate) => {
                    let inner = self.inner.clone();
                    HttpConnectorFuture::new(async move {
                        gate.pass().await;
                        let answer = inner.call(request).await;
                        if let Ok(response) = &answer {
                            gate.answers
                                .lock()
                                .unwrap()
                                .push(response.status().as_u16());
                        }
                        answer
                    })
                }
                None => self.inner.call(request),
            },
            (_, Some(Fault::Timeout)) => HttpConnectorFuture::ready(Err(ConnectorError::timeout(
                "injected: the attempt timed out".into(),
            ))),
            (operation, Some(fault)) => {
                HttpConnectorFuture::ready(Ok(error_response(&operation, fault)))
            }
        }
    }
}

/// The operation a request is for: DynamoDB's X-Amz-Target, SES's Action, S3's method.
fn operation_name(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let body = request.body().bytes().unwrap_or_default();
    let body = String::from_utf8_lossy(body);
    if let Some(action) = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return action.to_string();
    }
    match request.method() {
        "PUT" => "PutObject",
        "DELETE" => "DeleteObject",
        "HEAD" => "HeadObject",
        _ => "GetObject",
    }
    .to_string()
}

/// The answer AWS gives for `fault` on `operation`, in that service's protocol.
fn error_response(operation: &str, fault: Fault) -> HttpResponse {
    let dynamodb =
        operation.ends_with("Item") || operation.ends_with("Items") || operation == "Query";
    let ses = operation.starts_with("Send");
    let (status, code) = match (fault, dynamodb, ses) {
        (Fault::Throttle, true, _) => (400, "ThrottlingException"),
        (Fault::Throttle, _, true) => (400, "Throttling"),
        (Fault::Throttle, _, _) => (503, "SlowDown"),
        (Fault::ServerError, true, _) => (500, "InternalServerError"),
        (Fault::ServerError, _, true) => (503, "ServiceUnavailable"),
        (Fault::ServerError, _, _) => (500, "InternalError"),
        (Fault::Conflict, true, _) => (400, "ConditionalCheckFailedException"),
        (_, true, _) => (400, "ValidationException"),
        (_, _, true) => (400, "MessageRejected"),
        (_, _, _) => (403, "AccessDenied"),
    };
    let (content_type, body) = if dynamodb
        && code == "ConditionalCheckFailedException"
        && operation == "TransactWriteItems"
    {
        // A transaction's failed condition: cancelled, with the reason per action.
        (
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"injected","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"injected"}]}"#.to_string(),
        )
    } else if dynamodb {
        (
            "application/x-amz-json-1.0",
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected"}}"#
            ),
        )
    } else if ses {
        (
            "text/xml",
            format!(
                r#"<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error><RequestId>injected</RequestId></ErrorResponse>"#
            ),
        )
    } else {
        (
            "application/xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected</Message><RequestId>injected</RequestId></Error>"#
            ),
        )
    };
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).expect("a valid status"),
        SdkBody::from(body),
    );
    response.headers_mut().insert("content-type", content_type);
    response
}
