//! The `ddb-stream-worker` binary: Lambda mode when `AWS_LAMBDA_RUNTIME_API` is set,
//! otherwise the command line (`ddb_stream_worker::cli`). It parses and dispatches; the
//! commands live in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ddb_stream_worker::cli::{self, Cli, CliError};
use ddb_stream_worker::wiring::output::printable;

// Replays and batches allocate many small items; mimalloc handles that churn far better than
// the system allocator (see BENCHMARKS.md). It is built without transparent huge pages
// (Cargo feature `no_thp`): with them the kernel zeroes 2 MB at each first touch, again after
// every purge, and replays of up to 10,000 records ran 15-25 % slower with 10-30 % more memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_t`, mimalloc.h; the bindings
/// name no constant for it).
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed stays with the process before it goes back to the OS, in ms
/// (mimalloc's default is 1,000). A replay frees a batch's records while the next runs: held a
/// second, they raised a day's peak by 36-51 MiB; giving them back sooner costs it about 2-3 %
/// of its time (BENCHMARKS.md).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

fn main() -> ExitCode {
    // SAFETY: sets one of mimalloc's options, an integer it reads at each purge; no pointer.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, PURGE_DELAY_MS) };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(CliError::Runtime(e)),
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match runtime.block_on(ddb_stream_worker::lambda::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", printable(&e.to_string()));
                ExitCode::FAILURE
            }
        };
    }
    cli::init_logging();
    let cli = Cli::parse();
    let json = cli.wants_json();
    match runtime.block_on(cli::run(cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            // A `--json` run's reader gets the error where it reads (stdout), as JSON.
            // Not `println!`: with the reader gone (`| head`) that panics, and the error
            // below still goes to stderr.
            if json {
                let _ = writeln!(std::io::stdout(), "{}", e.to_json());
            }
            fail(e)
        }
    }
}

fn fail(error: CliError) -> ExitCode {
    eprintln!("error: {}", printable(&error.to_string()));
    ExitCode::from(error.exit_code())
}
