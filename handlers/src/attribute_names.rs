//! The application's names for the attributes a reaction reads.
//!
//! A reaction is written against the seed documents' names (`bookingId`, `sender_email`);
//! applications call them otherwise (`BookingId`, `sender`). Each reaction asks
//! [`crate::settings::Settings::attribute_names`] for the names it reads, with the seed's as
//! defaults, and reads items through [`AttributeNames::project`]: the attributes it uses, under
//! the seed's names, so its typed structs stay as they are and everything else in the item is
//! ignored.

use crate::item::{AttributeValue, Item};

/// The attribute a seed name stands for when nothing renames it: the name after the item it
/// belongs to (`user.email` is a user's `email`).
pub fn default_name(seed: &str) -> &str {
    seed.rsplit_once('.').map_or(seed, |(_, name)| name)
}

/// Seed name to the application's name, for one reaction's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributeNames {
    names: Vec<(&'static str, String)>,
}

impl AttributeNames {
    pub fn new(names: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        AttributeNames {
            names: names.into_iter().collect(),
        }
    }

    /// The seed names as they are (what a reaction reads when nothing is renamed).
    pub fn seed(seed_names: &[&'static str]) -> Self {
        Self::new(
            seed_names
                .iter()
                .map(|&seed| (seed, default_name(seed).to_string())),
        )
    }

    /// Each seed name with the application's name for it.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.names.iter().map(|(seed, name)| (*seed, name.as_str()))
    }

    /// The application's name of attribute `seed` (the seed's own when it was not renamed,
    /// or is not one of these).
    pub fn of<'a>(&'a self, seed: &'a str) -> &'a str {
        self.names
            .iter()
            .find(|(s, _)| *s == seed)
            .map_or(default_name(seed), |(_, name)| name.as_str())
    }

    /// Attribute `seed` of `item`, under its application's name.
    pub fn get<'a>(&self, item: &'a Item, seed: &str) -> Option<&'a AttributeValue> {
        item.get(self.of(seed))
            .filter(|v| !matches!(v, AttributeValue::Null(_)))
    }

    /// The text of attribute `seed` of `item`: a string, or a number (an id an application
    /// keeps as a number); None when absent, `NULL` or empty.
    pub fn text<'a>(&self, item: &'a Item, seed: &str) -> Option<&'a str> {
        match self.get(item, seed)? {
            AttributeValue::S(s) | AttributeValue::N(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The attributes of `item` these names cover, under the seed's names; `NULL` left out
    /// (it means the same as absent), and every other attribute too.
    pub fn project(&self, item: &Item) -> Item {
        self.project_where(item, |_| true)
    }

    /// The attributes `seeds` of `item` alone, as [`AttributeNames::project`] gives them (a
    /// reaction that needs one attribute of an item need not copy the rest).
    pub fn project_only(&self, item: &Item, seeds: &[&str]) -> Item {
        self.project_where(item, |seed| seeds.contains(&seed))
    }

    fn project_where(&self, item: &Item, wanted: impl Fn(&str) -> bool) -> Item {
        let mut projected = Item::from(
            std::collections::HashMap::<String, AttributeValue>::with_capacity(self.names.len()),
        );
        for (seed, name) in self.names.iter().filter(|(seed, _)| wanted(seed)) {
            if let Some(value) = item
                .get(name)
                .filter(|v| !matches!(v, AttributeValue::Null(_)))
            {
                projected.insert(seed.to_string(), value.clone());
            }
        }
        projected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    }

    #[test]
    fn projects_the_applications_names_onto_the_seeds_and_drops_the_rest() {
        let names = AttributeNames::new([
            ("bookingId", "BookingId".to_string()),
            ("status", "status".to_string()),
        ]);
        let projected = names.project(&item(&[
            ("BookingId", AttributeValue::S("b-1".into())),
            ("status", AttributeValue::Null(true)),
            ("Other", AttributeValue::S("x".into())),
        ]));
        assert_eq!(
            projected,
            item(&[("bookingId", AttributeValue::S("b-1".into()))])
        );
        assert_eq!(names.of("bookingId"), "BookingId");
        assert_eq!(names.of("unknown"), "unknown");
    }

    #[test]
    fn text_reads_strings_and_numbers_and_not_null_or_empty() {
        let names = AttributeNames::seed(&["a", "b", "c", "d"]);
        let it = item(&[
            ("a", AttributeValue::S("x".into())),
            ("b", AttributeValue::N("42".into())),
            ("c", AttributeValue::Null(true)),
            ("d", AttributeValue::S(String::new())),
        ]);
        assert_eq!(names.text(&it, "a"), Some("x"));
        assert_eq!(names.text(&it, "b"), Some("42"));
        assert_eq!(names.text(&it, "c"), None);
        assert_eq!(names.text(&it, "d"), None);
    }
}
