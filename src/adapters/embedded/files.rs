//! Names on disk for names the state keeps: encoded so that no table name or object key can
//! become a path, a hidden file or a name too long for the file system; and back.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Longest file name written from a name the state keeps (tables, object key segments): file
/// systems allow 255 bytes, and a temporary name adds a few.
const LONGEST_NAME: usize = 200;

/// A file name for `name` that no name can turn into a path or a hidden file: bytes outside
/// `A-Z a-z 0-9 _ - .` (and a leading `.`) become `%XX`, and a name still longer than
/// [`LONGEST_NAME`] is cut and ends in `~` and a hash of the whole (such a file must then say
/// its name itself: `hashed` is true).
pub(super) fn encode_name(name: &str) -> (String, bool) {
    let mut encoded = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-') || (byte == b'.' && i > 0);
        match plain {
            true => encoded.push(byte as char),
            false => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    if encoded.is_empty() {
        encoded.push('%');
    }
    if encoded.len() <= LONGEST_NAME {
        return (encoded, false);
    }
    let mut cut = LONGEST_NAME - 17;
    while !encoded.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = handlers::item::stable_hash(name.as_bytes());
    (format!("{}~{hash:016x}", &encoded[..cut]), true)
}

/// The name [`encode_name`] encoded, unless it was cut (`None`).
pub(super) fn decode_name(encoded: &str) -> Option<String> {
    if encoded.contains('~') {
        return None;
    }
    if encoded == "%" {
        return Some(String::new());
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `objects/<bucket>/<key>` under `root`, refusing anything that could leave it: S3 allows
/// keys such as `../x` or `/etc/passwd`, a file system must not follow them.
pub(super) fn object_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with('.')
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!("unsafe or invalid bucket name {bucket:?}"));
    }
    if key.len() > MAX_OBJECT_KEY_BYTES {
        return Err(format!(
            "object key of {} bytes: S3 keys are at most {MAX_OBJECT_KEY_BYTES} bytes",
            key.len()
        ));
    }
    let key_ok = !key.is_empty()
        && !key.contains(['\0', '\\'])
        && !key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if !key_ok {
        return Err(format!(
            "unsafe object key {key:?}: keys with empty, '.' or '..' segments, a leading '/', backslashes or NUL cannot be stored as local files"
        ));
    }
    // A segment too long for a file name is stored under a cut name with a hash of the whole.
    let mut path = root.join("objects").join(bucket);
    for segment in key.split('/') {
        match segment.len() > LONGEST_NAME {
            true => path.push(encode_name(segment).0),
            false => path.push(segment),
        }
    }
    debug_assert!(path
        .strip_prefix(root)
        .is_ok_and(|p| p.components().all(|c| matches!(c, Component::Normal(_)))));
    Ok(path)
}

/// S3's longest object key.
pub(super) const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// An I/O error of the state directory as a port error: one the input caused (a name the file
/// system refuses) can never succeed, anything else (a full disk) may on a later attempt.
pub(super) fn io_error(
    operation: &'static str,
    target: String,
    e: std::io::Error,
) -> handlers::PortError {
    const NAME_TOO_LONG: i32 = 36; // ENAMETOOLONG
    let permanent = e.raw_os_error() == Some(NAME_TOO_LONG)
        || matches!(
            e.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename
        );
    let message = e.to_string();
    match permanent {
        true => handlers::PortError::Permanent {
            operation,
            target,
            message,
        },
        false => handlers::PortError::Transient {
            operation,
            target,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_plain_file_names_and_back() {
        for name in [
            "aws-cost-platform-enhanced",
            "#replay-applied",
            ".hidden",
            "a/b",
            "../x",
            "a\0b",
            "é",
            "",
        ] {
            let (encoded, hashed) = encode_name(name);
            assert!(!hashed);
            assert!(
                !encoded.starts_with('.') && !encoded.contains(['/', '\0']),
                "{encoded}"
            );
            assert_eq!(decode_name(&encoded).as_deref(), Some(name));
        }
        let long = "t".repeat(255);
        let (encoded, hashed) = encode_name(&long);
        assert!(hashed && encoded.len() <= LONGEST_NAME, "{}", encoded.len());
        assert_eq!(decode_name(&encoded), None);
        assert_ne!(
            encode_name(&format!("{long}x")).0,
            encode_name(&format!("{long}y")).0
        );
    }

    #[test]
    fn object_keys_cannot_escape_the_state_directory() {
        let root = Path::new("/state");
        assert_eq!(
            object_path(root, "docs-bucket", "proposals/est1/doc1.pdf").unwrap(),
            Path::new("/state/objects/docs-bucket/proposals/est1/doc1.pdf")
        );
        let long = format!("proposals/{}/doc.pdf", "x".repeat(300));
        let stored = object_path(root, "docs-bucket", &long).unwrap();
        assert!(
            stored.components().all(|c| c.as_os_str().len() <= 255),
            "{stored:?}"
        );
        assert!(object_path(root, "docs-bucket", &"k".repeat(1025)).is_err());
        for key in [
            "../../etc/passwd",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\..\\b",
            "",
            "a\0b",
        ] {
            assert!(
                object_path(root, "docs-bucket", key).is_err(),
                "{key:?} must be refused"
            );
        }
        assert!(object_path(root, "../x", "k").is_err());
    }
}
