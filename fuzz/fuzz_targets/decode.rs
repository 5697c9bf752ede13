//! Any bytes as a stream event: decoded, split into changes, offered to every reaction.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = ddb_stream_worker::fuzz_target::decode_and_extract(data) {
        panic!("{broken}");
    }
});
