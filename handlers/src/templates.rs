//! Templates compiled into the binary from the repository's `templates/` folder: proposal
//! layouts, brandings and mail. Mail is rendered with minijinja, which escapes every value
//! placed in an `.html` template.

use std::sync::LazyLock;

use minijinja::Environment;
use serde::{Deserialize, Serialize};

use crate::error::ReactionError;

macro_rules! template_files {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $dir, "/", $name)))),*]
    };
}

const PROPOSALS: &[(&str, &str)] =
    template_files!("proposals": "standard_proposal.json", "executive_brief.json");
const BRANDINGS: &[(&str, &str)] = template_files!("branding": "sagesoft.json", "default.json");
const MAIL: &[(&str, &str)] = template_files!("mail":
    "proposal_ready.subject.txt", "proposal_ready.txt", "proposal_ready.html",
    "estimation_shared.subject.txt", "estimation_shared.txt", "estimation_shared.html",
    "booking_received.subject.txt", "booking_received.txt", "booking_received.html",
    "booking_status.subject.txt", "booking_status.txt", "booking_status.html",
);

/// A proposal layout: its title and the sections it shows, in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProposalTemplate {
    pub title: String,
    pub subtitle: String,
    pub sections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Branding {
    pub company: String,
    pub accent: String,
    pub accent_light: String,
    pub footer: String,
}

fn find<'a>(files: &'a [(&str, &str)], name: &str) -> Option<&'a str> {
    files
        .iter()
        .find(|(file, _)| file.strip_suffix(".json") == Some(name))
        .map(|(_, text)| *text)
}

fn names(files: &[(&str, &str)]) -> String {
    files
        .iter()
        .map(|(f, _)| f.trim_end_matches(".json"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The layout named `name` (`Metadata.Template`).
pub fn proposal_template(name: &str) -> Result<ProposalTemplate, ReactionError> {
    let text = find(PROPOSALS, name).ok_or_else(|| {
        ReactionError::Rejected(format!(
            "unknown proposal template {name:?}; templates: {}",
            names(PROPOSALS)
        ))
    })?;
    serde_json::from_str(text).map_err(|e| ReactionError::Encode(format!("template {name}: {e}")))
}

/// The branding named `name` (`Metadata.Branding`).
pub fn branding(name: &str) -> Result<Branding, ReactionError> {
    let text = find(BRANDINGS, name).ok_or_else(|| {
        ReactionError::Rejected(format!(
            "unknown branding {name:?}; brandings: {}",
            names(BRANDINGS)
        ))
    })?;
    serde_json::from_str(text).map_err(|e| ReactionError::Encode(format!("branding {name}: {e}")))
}

static MAIL_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Every value placed in a message is one line: user-typed names and file names must not
    // break the message's lines. (HTML escaping still happens, in the default formatter.)
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if text.contains(char::is_control) => {
            let one_line: String = text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            minijinja::escape_formatter(out, state, &minijinja::Value::from(one_line))
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    // A template that fails to parse is caught by the tests; at run time rendering it fails.
    for (name, text) in MAIL {
        let _ = env.add_template(name, text);
    }
    env
});

/// A rendered message: subject, plain text, HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Render `name` (`proposal_ready`, `estimation_shared`) with `context`.
pub fn mail<C: Serialize>(name: &str, context: &C) -> Result<RenderedMail, ReactionError> {
    let render = |suffix: &str| -> Result<String, ReactionError> {
        let file = format!("{name}.{suffix}");
        MAIL_ENV
            .get_template(&file)
            .and_then(|t| t.render(context))
            .map_err(|e| ReactionError::Encode(format!("mail template {file}: {e}")))
    };
    Ok(RenderedMail {
        subject: render("subject.txt")?.trim().to_string(),
        text: render("txt")?,
        html: render("html")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in PROPOSALS {
            proposal_template(name.trim_end_matches(".json")).unwrap();
        }
        for (name, _) in BRANDINGS {
            branding(name.trim_end_matches(".json")).unwrap();
        }
        assert!(proposal_template("nope")
            .unwrap_err()
            .to_string()
            .contains("standard_proposal"));
    }

    #[test]
    fn html_mail_escapes_names_and_text_mail_keeps_them() {
        let context = serde_json::json!({
            "first_name": "<script>alert(1)</script>", "shared_by": "Zoë & Co", "project_name": "Café \"Süd\"",
            "permission": "READ", "estimation_id": "e1", "sender_name": "Team", "expires_at": null,
        });
        let mail = mail("estimation_shared", &context).unwrap();
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            mail.html
        );
        assert!(mail.html.contains("Zoë &amp; Co"));
        assert!(!mail.html.contains("<script>"));
        assert!(
            mail.text.contains("Hello <script>alert(1)</script>,"),
            "plain text is not HTML"
        );
        assert_eq!(
            mail.subject,
            "Zoë & Co shared the estimation Café \"Süd\" with you"
        );
        let hostile = serde_json::json!({
            "first_name": "Eve\r\nBcc: victim@example.com", "shared_by": "x", "project_name": "p\u{0}q",
            "permission": "READ", "estimation_id": "e1", "sender_name": "Team", "expires_at": null,
        });
        let one_line = super::mail("estimation_shared", &hostile).unwrap();
        assert!(
            one_line
                .text
                .contains("Hello Eve  Bcc: victim@example.com,"),
            "{}",
            one_line.text
        );
        assert!(!one_line.text.lines().any(|l| l.starts_with("Bcc:")));
        assert!(one_line.subject.contains("p q"));
    }
}
