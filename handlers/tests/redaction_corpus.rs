//! Redaction never alters an id: over a generated corpus of 110,000 ids of the shapes
//! applications use, none is changed, alone or inside a log line; and every email address
//! inside free text is redacted, whatever ids stand beside it.

use handlers::redact::{pseudonymize, redact_text, REDACTED};

/// A small deterministic generator (xorshift64*), so the corpus is the same on every run.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    fn hex(&mut self, len: usize) -> String {
        self.pick(b"0123456789abcdef", len)
    }

    /// Epoch milliseconds between 2001 and 2033.
    fn millis(&mut self) -> u64 {
        1_000_000_000_000 + self.next() % 1_000_000_000_000
    }

    fn id(&mut self, shape: usize) -> String {
        const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const NANOID: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
        match shape {
            // UUID v4
            0 => format!(
                "{}-{}-4{}-{}{}-{}",
                self.hex(8),
                self.hex(4),
                self.hex(3),
                self.pick(b"89ab", 1),
                self.hex(3),
                self.hex(12)
            ),
            // UUID v7: 48 bits of milliseconds first
            1 => {
                let ms = format!("{:012x}", self.millis());
                format!(
                    "{}-{}-7{}-{}{}-{}",
                    &ms[..8],
                    &ms[8..],
                    self.hex(3),
                    self.pick(b"89ab", 1),
                    self.hex(3),
                    self.hex(12)
                )
            }
            // ULID
            2 => self.pick(CROCKFORD, 26),
            // KSUID
            3 => self.pick(BASE62, 27),
            // nanoid
            4 => self.pick(NANOID, 21),
            // epoch milliseconds with a suffix (a session id)
            5 => format!(
                "{}-{}",
                self.millis(),
                self.pick(b"abcdefghijklmnopqrstuvwxyz0123456789", 8)
            ),
            // prefix_<ms>_<random>
            6 => format!("booking_{}_{}", self.millis(), self.hex(8)),
            // snowflake: 19 digits
            7 => format!(
                "{}",
                1_000_000_000_000_000_000 + self.next() % 8_000_000_000_000_000_000
            ),
            // provider|id
            8 => format!("auth0|{}", self.next() % 10_000_000_000),
            // a line item key of a UUID-keyed estimation
            9 => format!("ESTIMATION#{}", self.id(0)),
            // a digit-heavy account-style id with separators
            _ => format!(
                "{}-{}-{}",
                self.next() % 1_000_000,
                self.next() % 10_000,
                self.next() % 100_000_000
            ),
        }
    }
}

const SHAPES: usize = 11;
const PER_SHAPE: usize = 10_000;

#[test]
fn no_id_of_the_shapes_applications_use_is_altered() {
    let mut ids = Ids(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for shape in 0..SHAPES {
        for _ in 0..PER_SHAPE {
            let id = ids.id(shape);
            assert_eq!(redact_text(&id), id, "shape {shape}");
            assert_eq!(pseudonymize(&id), id, "shape {shape}");
            // Inside a log line, beside a module path, a queue URL and an ARN.
            let line = format!(
                "WARN ddb_stream_worker::batch::record: parked booking={id} queue=https://sqs.us-east-1.amazonaws.com/123456789012/failed-records arn=arn:aws:dynamodb:us-east-1:123456789012:table/Bookings/stream/2026-12-03T10:04:51.777"
            );
            assert_eq!(redact_text(&line), line, "shape {shape}");
            checked += 1;
        }
    }
    assert!(checked >= 100_000, "{checked} ids");
}

#[test]
fn every_email_address_in_free_text_is_redacted_and_the_ids_beside_it_are_kept() {
    let mut ids = Ids(0xD1B5_4A32_D192_ED03);
    for i in 0..20_000 {
        let id = ids.id(i % SHAPES);
        let user = ids.pick(b"abcdefghijklmnopqrstuvwxyz0123456789._+-", 1 + i % 20);
        let user = format!("a{user}z");
        let domain = ids.pick(b"abcdefghijklmnopqrstuvwxyz0123456789-", 1 + i % 12);
        let email = format!("{user}@{domain}.example");
        let text = format!(
            "Booking {id}: write to {email}, or reply to {}.",
            email.to_uppercase()
        );
        let redacted = redact_text(&text);
        assert!(
            !redacted.contains(&email) && !redacted.contains(&email.to_uppercase()),
            "{text} -> {redacted}"
        );
        assert_eq!(
            redacted.matches(REDACTED).count(),
            2,
            "{text} -> {redacted}"
        );
        assert!(redacted.contains(&id), "{text} -> {redacted}");
    }
}
