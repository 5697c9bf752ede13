//! Reading configuration variables: typed, with the seed systems' defaults, and with an error
//! that names the variable and what it should hold.
//!
//! Each reaction's configuration reads its own variables through [`Settings`]
//! (`XConfig::from_settings`), so adding a reaction adds its variables in its own module. The
//! shell hands in the process environment (Lambda) or the shell's (replay); tests hand in a
//! map. Every name read is remembered, so a test can check each one is documented.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use thiserror::Error;

pub use crate::attribute_names::AttributeNames;

/// The cost estimation platform's single table (`deploy/tables/aws-cost-platform-enhanced.json`).
pub const COST_PLATFORM_TABLE: &str = "aws-cost-platform-enhanced";
/// The marketplace's idempotency table (`deploy/tables/marketplace-dev-idempotency-table.json`), which the worker shares.
pub const IDEMPOTENCY_TABLE: &str = "marketplace-dev-idempotency-table";
/// The worker's own table of what its incremental aggregates need (deploy/data-model.md).
pub const AGGREGATE_STATE_TABLE: &str = "ddb-stream-worker-aggregate-state";

#[derive(Debug, Clone, Error)]
#[error("environment variable {name}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

/// Every table variable and the seed system's table it names by default: the one place table
/// names are given (reactions ask [`Settings::table`] by variable).
pub const TABLES: &[(&str, &str)] = &[
    ("COST_TABLE", COST_PLATFORM_TABLE),
    ("AUDIT_TABLE", COST_PLATFORM_TABLE),
    ("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE),
    ("AGGREGATE_STATE_TABLE", AGGREGATE_STATE_TABLE),
    ("MARKETPLACE_REVIEWS_TABLE", "marketplace-dev-reviews-table"),
    (
        "MARKETPLACE_PROVIDERS_TABLE",
        "marketplace-dev-providers-table",
    ),
    (
        "MARKETPLACE_BOOKINGS_TABLE",
        "marketplace-dev-bookings-table",
    ),
    ("MARKETPLACE_USERS_TABLE", "marketplace-dev-users-table"),
    ("PILOTFORCE_BOOKINGS_TABLE", "PilotForce-Bookings"),
    ("PILOTFORCE_USERS_TABLE", "PilotForce-Users"),
    ("PILOTFORCE_ASSETS_TABLE", "PilotForce-Assets"),
    ("ACS_CONVERSATIONS_TABLE", "acsd2p-dev-Conversations"),
    ("ACS_THREADS_TABLE", "acsd2p-dev-Threads"),
    ("ACS_SESSIONS_TABLE", "acsd2p-dev-Sessions"),
];

/// The variable that renames the attributes reactions read ([`Settings::attribute_names`]).
pub const ATTRIBUTE_NAMES: &str = "ATTRIBUTE_NAMES";

/// Variables by name, from any lookup.
pub struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    read: RefCell<BTreeSet<String>>,
    /// Every attribute each reaction asked for, by reaction: what `ATTRIBUTE_NAMES` may rename.
    attributes_asked: RefCell<BTreeMap<&'static str, BTreeSet<&'static str>>>,
    /// Tables configured under a name of the application's: (that name, the seed table's).
    /// Every table asked for: (name, seed table).
    tables: RefCell<BTreeSet<(String, String)>>,
    /// `ATTRIBUTE_NAMES` parsed, once for every reaction that asks.
    attribute_entries: OnceCell<Result<AttributeEntries, ConfigError>>,
}

/// (reaction, seed attribute) to the application's name.
type AttributeEntries = BTreeMap<(String, String), String>;

impl<'a> Settings<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Settings {
            lookup,
            read: RefCell::new(BTreeSet::new()),
            attributes_asked: RefCell::new(BTreeMap::new()),
            tables: RefCell::new(BTreeSet::new()),
            attribute_entries: OnceCell::new(),
        }
    }

    /// A table's name: variable `name`, or the seed system's table it names by default
    /// ([`TABLES`]). A name of the application's is remembered ([`Settings::renamed_tables`]):
    /// it stands for the seed's table, whose key schema the embedded replay keeps for it.
    pub fn table(&self, name: &str) -> String {
        let seed = TABLES
            .iter()
            .find(|(variable, _)| *variable == name)
            .map_or("", |(_, seed)| *seed);
        let table = self.text(name, seed);
        self.tables
            .borrow_mut()
            .insert((table.clone(), seed.to_string()));
        table
    }

    /// Every table configured under another name than the seed's: (name, seed table).
    pub fn renamed_tables(&self) -> Vec<(String, String)> {
        self.tables
            .borrow()
            .iter()
            .filter(|(name, seed)| name != seed)
            .cloned()
            .collect()
    }

    /// Every table the reactions read or write, by the names configured.
    pub fn tables_used(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .borrow()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        names.dedup();
        names
    }

    /// The names of the attributes `reaction` reads (`seed_names`, the seed documents'), each
    /// renamed where `ATTRIBUTE_NAMES` says so: entries `reaction.attribute=Name`, separated by
    /// commas or new lines, e.g. `pilotforce-booking-mail.bookingId=BookingId`. An entry that
    /// names no reaction or attribute is refused by [`Settings::check_attribute_names`], once
    /// every reaction has asked.
    pub fn attribute_names(
        &self,
        reaction: &'static str,
        seed_names: &[&'static str],
    ) -> Result<AttributeNames, ConfigError> {
        self.attributes_asked
            .borrow_mut()
            .entry(reaction)
            .or_default()
            .extend(seed_names.iter().copied());
        let renamed = self.attribute_entries()?;
        Ok(AttributeNames::new(seed_names.iter().map(|&seed| {
            let name = renamed
                .get(&(reaction.to_string(), seed.to_string()))
                .cloned()
                .unwrap_or_else(|| crate::attribute_names::default_name(seed).to_string());
            (seed, name)
        })))
    }

    /// Refuses an `ATTRIBUTE_NAMES` entry for a reaction or an attribute no reaction asked for,
    /// naming what there is instead.
    pub fn check_attribute_names(&self) -> Result<(), ConfigError> {
        let asked = self.attributes_asked.borrow();
        for ((reaction, attribute), name) in self.attribute_entries()? {
            let expected = match asked.get(reaction.as_str()) {
                None => format!(
                    "{reaction:?} is not a reaction that reads attributes; those are: {}",
                    asked.keys().copied().collect::<Vec<_>>().join(", ")
                ),
                Some(known) if !known.contains(attribute.as_str()) => format!(
                    "{reaction} reads no attribute {attribute:?}; it reads: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
                Some(_) => continue,
            };
            return Err(ConfigError {
                name: ATTRIBUTE_NAMES,
                value: format!("{reaction}.{attribute}={name}"),
                expected,
            });
        }
        Ok(())
    }

    /// `ATTRIBUTE_NAMES`, parsed (once).
    fn attribute_entries(&self) -> Result<&AttributeEntries, ConfigError> {
        self.attribute_entries
            .get_or_init(|| self.parse_attribute_entries())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn parse_attribute_entries(&self) -> Result<AttributeEntries, ConfigError> {
        let text = self.text(ATTRIBUTE_NAMES, "");
        let mut entries = BTreeMap::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.split_once('=').and_then(|(path, name)| {
                let (reaction, attribute) = path.trim().split_once('.')?;
                let name = name.trim();
                let valid = |t: &str| !t.is_empty() && !t.chars().any(char::is_control);
                (valid(reaction) && valid(attribute) && valid(name) && name.len() <= 255).then(
                    || {
                        (
                            (reaction.to_string(), attribute.to_string()),
                            name.to_string(),
                        )
                    },
                )
            });
            match parsed {
                Some((key, name)) => {
                    entries.insert(key, name);
                }
                None => {
                    return Err(ConfigError {
                        name: ATTRIBUTE_NAMES,
                        value: entry.to_string(),
                        expected: "entries reaction.attribute=Name, separated by commas".into(),
                    })
                }
            }
        }
        Ok(entries)
    }

    /// Every variable name asked for so far (set or not).
    pub fn names_read(&self) -> BTreeSet<String> {
        self.read.borrow().clone()
    }

    fn get(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_string());
        (self.lookup)(name)
    }

    pub fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    /// A whole number, at least 1.
    pub fn count(&self, name: &'static str, default: i64) -> Result<i64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => {
                value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(ConfigError {
                        name,
                        value,
                        expected: "a whole number at least 1".into(),
                    })
            }
        }
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(value) => Err(ConfigError {
                name,
                value,
                expected: "true or false".into(),
            }),
        }
    }

    /// A decimal number, 0 or more.
    pub fn decimal(&self, name: &'static str, default: &str) -> Result<Decimal, ConfigError> {
        let value = self.text(name, default);
        value
            .trim()
            .parse::<Decimal>()
            .ok()
            .filter(|d| !d.is_sign_negative())
            .ok_or(ConfigError {
                name,
                value,
                expected: "a decimal number, 0 or more".into(),
            })
    }

    /// An optional `https://` (or `http://`) URL, e.g. a link template; anything else is refused
    /// rather than mailed to people.
    pub fn url_template(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(name).map(|v| v.trim().to_string()) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v)
                if (v.starts_with("https://") || v.starts_with("http://"))
                    && !v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Ok(Some(v))
            }
            Some(value) => Err(ConfigError {
                name,
                value,
                expected: "an https:// URL without spaces".into(),
            }),
        }
    }

    /// A comma-separated list; blanks are dropped.
    pub fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.text(name, default)
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_number_names_the_variable() {
        let lookup = |n: &str| (n == "AUDIT_SHARDS").then(|| "zero".to_string());
        let settings = Settings::new(&lookup);
        let err = settings.count("AUDIT_SHARDS", 10).unwrap_err();
        assert!(err.to_string().contains("AUDIT_SHARDS"), "{err}");
        assert!(settings.names_read().contains("AUDIT_SHARDS"));
    }

    #[test]
    fn flags_take_the_usual_words_and_refuse_others() {
        let lookup = |n: &str| match n {
            "A" => Some("Yes".to_string()),
            "B" => Some("off".to_string()),
            _ => Some("maybe".to_string()),
        };
        let settings = Settings::new(&lookup);
        assert!(settings.flag("A", false).unwrap());
        assert!(!settings.flag("B", true).unwrap());
        assert!(settings.flag("C", true).is_err());
    }
}
