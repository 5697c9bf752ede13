//! What the worker prints, made safe to print: a value from a record may hold anything a
//! writer put into a table, so every line a person reads (the human report, an error) and every
//! log line has its control and direction characters escaped, and log lines carry no personal
//! data (email addresses, phone numbers, IP addresses, tokens: `handlers::redact`).
//!
//! Without this, a key holding `\n#1 INSERT ...` forges a report line, an ANSI escape repaints
//! the terminal, and a right-to-left override hides what a line says.

use std::borrow::Cow;
use std::io::{self, Write};

/// `text` with every control character (C0, DEL, C1: line breaks, tabs, ANSI escapes) and every
/// invisible direction or separator character (bidi overrides and isolates, zero-width marks,
/// line and paragraph separators) written as `\u{…}`.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match needs_escape(c) {
            true => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Writes `text` as one line: escaped ([`printable`]), then a newline.
pub fn print_line(out: &mut dyn Write, text: &str) -> io::Result<()> {
    out.write_all(printable(text).as_bytes())?;
    out.write_all(b"\n")
}

/// A `tracing_subscriber` writer whose every log line is escaped and redacted before it
/// reaches `W`: the subscriber formats one event into one writer, which writes it on drop.
pub struct SafeLogs<F>(pub F);

impl<'a, F, W> tracing_subscriber::fmt::MakeWriter<'a> for SafeLogs<F>
where
    F: Fn() -> W + 'static,
    W: Write,
{
    type Writer = SafeLine<W>;

    fn make_writer(&'a self) -> SafeLine<W> {
        SafeLine {
            buffer: Vec::new(),
            inner: (self.0)(),
        }
    }
}

/// One log event, held until it is complete.
pub struct SafeLine<W: Write> {
    buffer: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for SafeLine<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for SafeLine<W> {
    /// One event is one line: the subscriber's own newline ends it, and a newline inside a
    /// value (the text format does not escape field values) is escaped with the rest.
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let event = text.strip_suffix('\n').unwrap_or(&text);
        if !event.is_empty() {
            let safe = handlers::redact::redact_text(&printable(event));
            // A log line that cannot be written has nowhere else to go.
            let _ = print_line(&mut self.inner, &safe);
        }
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_direction_marks_are_escaped() {
        assert_eq!(printable("plain text é"), "plain text é");
        assert_eq!(printable("a\nb\rc\td"), "a\\u{a}b\\u{d}c\\u{9}d");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(
            printable("x\u{202e}y\u{2028}z\u{85}"),
            "x\\u{202e}y\\u{2028}z\\u{85}"
        );
    }

    #[test]
    fn a_log_line_is_one_line_without_personal_data() {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let logs = SafeLogs({
            let buffer = buffer.clone();
            move || Shared(buffer.clone())
        });
        {
            let mut line = tracing_subscriber::fmt::MakeWriter::make_writer(&logs);
            line.write_all(b"WARN cost of jane.roe@example.com\x1b[2J\n")
                .unwrap();
        }
        let written = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert_eq!(written, "WARN cost of [REDACTED]\\u{1b}[2J\n");
    }
}
