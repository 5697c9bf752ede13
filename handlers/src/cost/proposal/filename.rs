//! Object keys from user-supplied names: `proposals/<EstimationId>/<DocumentId>/<stem>.pdf`,
//! where nothing a user typed can add a path segment, a control character or unbounded length.
//!
//! The document's id makes the key its own: two documents never share an object, whatever
//! their file names, and every retry or re-request of one document writes the same key. The
//! ids are kept distinct (letters and digits of any script stay, anything else is
//! percent-encoded), so `estéñ` and `est` never share a folder.

/// Longest stem kept, in characters.
const MAX_STEM: usize = 100;

/// A file-name stem safe in an S3 key and on a file system: letters, digits, `-`, `_` and
/// single dots in the middle; everything else becomes `_`; no `..`, `/` or `\`; bounded.
/// An extension `.pdf` is dropped (the key adds its own); an empty result is `proposal`.
pub(crate) fn safe_stem(file_name: &str) -> String {
    let trimmed = file_name.trim();
    let without_pdf = match trimmed.len().checked_sub(4) {
        Some(cut)
            if trimmed.is_char_boundary(cut) && trimmed[cut..].eq_ignore_ascii_case(".pdf") =>
        {
            &trimmed[..cut]
        }
        _ => trimmed,
    };
    let mut stem = String::with_capacity(without_pdf.len());
    for c in without_pdf.chars() {
        let keep = c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
        let c = if keep { c } else { '_' };
        // No runs of separators: "..", "__" and "._" all collapse to one.
        let separator = |x: char| x == '_' || x == '.';
        if separator(c) && stem.ends_with(separator) {
            continue;
        }
        stem.push(c);
    }
    let stem: String = stem
        .trim_matches(|c| c == '_' || c == '.' || c == '-')
        .chars()
        .take(MAX_STEM)
        .collect();
    let stem = stem.trim_end_matches(['_', '.', '-']).to_string();
    if stem.is_empty() {
        "proposal".to_string()
    } else {
        stem
    }
}

/// One key segment from an id, injectively: letters and digits (of any script), `-` and `_`
/// stay; every other character is percent-encoded byte by byte (so `/`, `.` and `%` cannot
/// make a path or collide with an encoding).
pub(crate) fn id_segment(id: &str) -> String {
    if id.is_empty() {
        return "%00".to_string(); // not a byte any other id encodes to
    }
    let mut segment = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_alphanumeric() || c == '-' || c == '_' {
            segment.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                segment.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    segment
}

/// `proposals/<estimation>/<document>/<stem>.pdf`.
pub(crate) fn proposal_key(estimation_id: &str, document_id: &str, file_name: &str) -> String {
    format!(
        "proposals/{}/{}/{}.pdf",
        id_segment(estimation_id),
        id_segment(document_id),
        safe_stem(file_name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_name_keeps_its_shape_under_its_document() {
        assert_eq!(
            proposal_key("est456", "doc123", "ABC_Corporation_AWS_Proposal.pdf"),
            "proposals/est456/doc123/ABC_Corporation_AWS_Proposal.pdf"
        );
    }

    #[test]
    fn ids_beyond_ascii_stay_distinct() {
        let ids = [
            "estéñ", "est", "est_", "est-", "est%C3", "est/x", "est.x", "est x", "",
        ];
        let segments: std::collections::BTreeSet<String> =
            ids.iter().map(|id| id_segment(id)).collect();
        assert_eq!(segments.len(), ids.len(), "{segments:?}");
        assert_eq!(id_segment("estéñ"), "estéñ");
        assert_eq!(id_segment("est/x"), "est%2Fx");
        assert_eq!(id_segment("../x"), "%2E%2E%2Fx");
    }

    #[test]
    fn hostile_names_cannot_escape_or_inject() {
        for (name, expected) in [
            ("../../etc/passwd", "etc_passwd"),
            ("..\\..\\windows\\system32", "windows_system32"),
            ("/absolute/path.pdf", "absolute_path"),
            ("a\r\nb\u{0}c", "a_b_c"),
            (
                "Société Générale – Proposal €.PDF",
                "Soci_t_G_n_rale_Proposal",
            ),
            ("...", "proposal"),
            ("", "proposal"),
            ("name.with.dots.pdf", "name.with.dots"),
        ] {
            assert_eq!(safe_stem(name), expected, "{name:?}");
        }
        let long = "x".repeat(500);
        assert_eq!(safe_stem(&long).len(), MAX_STEM);
        let key = proposal_key("../other", "doc/../1", "../../x");
        assert_eq!(key, "proposals/%2E%2E%2Fother/doc%2F%2E%2E%2F1/x.pdf");
        assert!(!key.contains(".."));
    }
}
