//! Cold start in Lambda mode: time from process start to the first request for an event,
//! against a Runtime API on loopback (the test's own). Release build (`cargo bench` builds the
//! binary with the bench profile). Prints figures; asserts nothing.
//! Run: `cargo bench --bench cold_start`.

#[path = "../support/runtime_api.rs"]
#[allow(dead_code)]
mod runtime_api;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let runs = 20;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let api = runtime_api::RuntimeApi::start();
            let started = Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_ddb-stream-worker"))
                .env("AWS_LAMBDA_RUNTIME_API", &api.address)
                .env("AWS_LAMBDA_FUNCTION_NAME", "ddb-stream-worker")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the binary");
            let polled = api.first_poll(Duration::from_secs(30));
            let _ = child.kill();
            let _ = child.wait();
            polled - started
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "cold start (release, process start to first /invocation/next): median {:.1} ms, min {:.1} ms, max {:.1} ms over {runs} starts",
        ms(times[runs / 2]),
        ms(times[0]),
        ms(times[runs - 1])
    );
}
