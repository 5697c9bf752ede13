//! Object keys from user-supplied names: `proposals/<EstimationId>/<stem>_<yyyymmdd>.pdf`,
//! where nothing a user typed can add a path segment, a control character or unbounded length.

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

/// `proposals/<estimation>/<stem>_<yyyymmdd>.pdf`.
pub(crate) fn proposal_key(
    estimation_id: &str,
    file_name: &str,
    date: chrono::NaiveDate,
) -> String {
    format!(
        "proposals/{}/{}_{}.pdf",
        safe_stem(estimation_id),
        safe_stem(file_name),
        date.format("%Y%m%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_name_keeps_its_shape() {
        let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 15).unwrap();
        assert_eq!(
            proposal_key("est456", "ABC_Corporation_AWS_Proposal.pdf", date),
            "proposals/est456/ABC_Corporation_AWS_Proposal_20240115.pdf"
        );
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
        let key = proposal_key(
            "../other",
            "../../x",
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        );
        assert_eq!(key, "proposals/other/x_20240101.pdf");
        assert!(!key.contains(".."));
    }
}
