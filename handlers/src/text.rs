//! Cutting values for display. A value may be 400 KB long (DynamoDB's item limit), and every
//! place a person reads one cuts it the same way: after a number of characters (never inside
//! one), marked with `…`. The limits, in characters:
//!
//! | where | limit |
//! |---|---|
//! | an error or log message naming a value | [`MESSAGE_CHARS`] |
//! | a value copied into an item the worker writes (an audit item's old and new values, a calculation's line item names and types) | [`COPIED_CHARS`] |
//! | a mail subject | [`SUBJECT_CHARS`] |
//! | a value laid out in a proposal PDF (then fitted to its column or wrapped) | [`LAYOUT_CHARS`] |

use std::borrow::Cow;

pub const MESSAGE_CHARS: usize = 64;
pub const COPIED_CHARS: usize = 256;
pub const SUBJECT_CHARS: usize = 200;
pub const LAYOUT_CHARS: usize = 1_000;

/// `text` cut after `max` characters, with `…` where it was cut.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_and_marked() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééé", 3), "ééé…");
        assert_eq!(cut(&"x".repeat(400_000), COPIED_CHARS).chars().count(), 257);
    }
}
