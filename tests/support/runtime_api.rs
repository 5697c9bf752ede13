//! A small Lambda Runtime API on loopback (`/2018-06-01/runtime/invocation/next`,
//! `/response`, `/error`), enough to run the worker's binary in Lambda mode as Lambda does:
//! events are handed out with the request-id and deadline headers, answers are recorded.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the function answered for one invocation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    /// `response` or `error`.
    pub kind: String,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String, i64)>,
    answers: Vec<Answer>,
    first_poll: Option<Instant>,
}

#[derive(Clone)]
pub struct RuntimeApi {
    pub address: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, state));
            }
        });
        RuntimeApi { address, state }
    }

    /// Queue an event; returns the deadline it is given (epoch ms).
    pub fn invoke(&self, request_id: &str, event: &serde_json::Value, timeout: Duration) -> i64 {
        let deadline = chrono::Utc::now().timestamp_millis() + timeout.as_millis() as i64;
        self.invoke_until(request_id, event, deadline)
    }

    /// Queue an event with this deadline (epoch ms), which may have passed already.
    pub fn invoke_until(&self, request_id: &str, event: &serde_json::Value, deadline: i64) -> i64 {
        let (lock, ready) = &*self.state;
        lock.lock()
            .unwrap()
            .queue
            .push_back((request_id.to_string(), event.to_string(), deadline));
        ready.notify_all();
        deadline
    }

    /// The answer for `request_id`, waiting up to `timeout`.
    pub fn answer(&self, request_id: &str, timeout: Duration) -> Answer {
        let (lock, ready) = &*self.state;
        let until = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(answer) = state.answers.iter().find(|a| a.request_id == request_id) {
                return answer.clone();
            }
            let left = until
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no answer for {request_id} within {timeout:?}"));
            state = ready.wait_timeout(state, left).unwrap().0;
        }
    }

    /// When the function first asked for an event (the end of its cold start).
    pub fn first_poll(&self, timeout: Duration) -> Instant {
        let (lock, ready) = &*self.state;
        let until = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(at) = state.first_poll {
                return at;
            }
            let left = until
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("the function never polled"));
            state = ready.wait_timeout(state, left).unwrap().0;
        }
    }
}

fn serve(stream: TcpStream, state: Arc<(Mutex<State>, Condvar)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (lock, ready) = &*state;
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let mut guard = lock.lock().unwrap();
            guard.first_poll.get_or_insert_with(Instant::now);
            ready.notify_all();
            while guard.queue.is_empty() {
                guard = ready.wait(guard).unwrap();
            }
            let (id, event, deadline) = guard.queue.pop_front().unwrap();
            drop(guard);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:ddb-stream-worker\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{event}",
                event.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        } else {
            // .../invocation/<id>/response, .../invocation/<id>/error, .../init/error
            let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').collect();
            let kind = segments.first().copied().unwrap_or("").to_string();
            let request_id = segments.get(1).copied().unwrap_or("").to_string();
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            lock.lock().unwrap().answers.push(Answer {
                request_id,
                kind,
                body,
            });
            ready.notify_all();
            if writer
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    }
}
