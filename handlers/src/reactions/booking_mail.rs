//! Booking mail for the marketplace and PilotForce: a new booking is announced (to the
//! marketplace provider, to the PilotForce user), and every status change is mailed to the
//! customer with the booking's date and time.
//!
//! Guarded by the idempotency table: one mail per booking event, whatever the re-deliveries.
//! The address comes from the first source that has one: the booking's own address attribute
//! (`customerEmail`, `providerEmail`, `userEmail`), the person's item (a marketplace
//! provider's `email` in the providers table), the users table (`email` by `userId`). A person
//! whose `preferences.notifications` is false gets none. Every attribute name is the seed's by
//! default and can be renamed (`ATTRIBUTE_NAMES`); a mail that cannot be addressed is
//! `not_sent`, with what was tried.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use crate::attribute_names::AttributeNames;
use crate::change::{Change, ChangeKind};
use crate::error::ReactionError;
use crate::item::{from_item, partition, string_key, Item};
use crate::mail::{self, MailConfig};
use crate::ports::Ports;
use crate::settings::{ConfigError, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Marketplace,
    PilotForce,
}

/// The attributes read from a booking, by their seed names.
const BOOKING_ATTRIBUTES: &[&str] = &[
    "bookingId",
    "customerId",
    "providerId",
    "userId",
    "status",
    "scheduledDate",
    "bookingDate",
    "bookingTime",
    "serviceType",
    "customerEmail",
    "providerEmail",
    "userEmail",
];

/// The attributes read from a person's item (a user, a marketplace provider): its key, as the
/// booking names the person, and what the mail needs. Prefixed so that a user's `email` and a
/// booking's `customerEmail` are renamed apart.
const USER_ATTRIBUTES: &[&str] = &["user.userId", "user.email", "user.name", "user.preferences"];
const PROVIDER_ATTRIBUTES: &[&str] = &["provider.providerId", "provider.email", "provider.name"];

/// Where a booking mail's address may come from, tried in the configured order
/// (`MARKETPLACE_MAIL_SOURCES`, `PILOTFORCE_MAIL_SOURCES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientSource {
    /// The booking's own address attribute (`customerEmail`, `providerEmail`, `userEmail`).
    Booking,
    /// A marketplace provider's item in the providers table (`email`).
    Provider,
    /// The users table (`email` by `userId`).
    Users,
}

impl RecipientSource {
    /// `booking,provider,users` as sources, in order; the variable named in the error.
    fn list(s: &Settings, variable: &'static str, default: &str) -> Result<Vec<Self>, ConfigError> {
        let text = s.text(variable, default);
        let sources: Option<Vec<Self>> = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|source| match source {
                "booking" => Some(RecipientSource::Booking),
                "provider" => Some(RecipientSource::Provider),
                "users" => Some(RecipientSource::Users),
                _ => None,
            })
            .collect();
        sources.filter(|s| !s.is_empty()).ok_or(ConfigError {
            name: variable,
            value: text,
            expected: "booking, provider and users, in the order to try, separated by commas"
                .into(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct BookingMailConfig {
    pub system: System,
    pub bookings_table: String,
    pub users_table: String,
    /// Where the marketplace keeps its providers (their `email`); None for PilotForce.
    pub providers_table: Option<String>,
    pub booking: AttributeNames,
    pub user: AttributeNames,
    pub provider: AttributeNames,
    /// Where the address comes from, in order.
    pub sources: Vec<RecipientSource>,
    pub mail: MailConfig,
}

impl BookingMailConfig {
    pub fn from_settings(system: System, s: &Settings) -> Result<Self, ConfigError> {
        let (bookings_table, users_table, providers_table) = match system {
            System::Marketplace => (
                s.table("MARKETPLACE_BOOKINGS_TABLE"),
                s.table("MARKETPLACE_USERS_TABLE"),
                Some(s.table("MARKETPLACE_PROVIDERS_TABLE")),
            ),
            System::PilotForce => (
                s.table("PILOTFORCE_BOOKINGS_TABLE"),
                s.table("PILOTFORCE_USERS_TABLE"),
                None,
            ),
        };
        let name = reaction_name(system);
        let provider = match system {
            System::Marketplace => s.attribute_names(name, PROVIDER_ATTRIBUTES)?,
            System::PilotForce => AttributeNames::default(),
        };
        let sources = match system {
            System::Marketplace => {
                RecipientSource::list(s, "MARKETPLACE_MAIL_SOURCES", "booking,provider,users")?
            }
            System::PilotForce => {
                RecipientSource::list(s, "PILOTFORCE_MAIL_SOURCES", "booking,users")?
            }
        };
        Ok(BookingMailConfig {
            sources,
            system,
            bookings_table,
            users_table,
            providers_table,
            booking: s.attribute_names(name, BOOKING_ATTRIBUTES)?,
            user: s.attribute_names(name, USER_ATTRIBUTES)?,
            provider,
            mail: MailConfig::from_settings(s)?,
        })
    }
}

fn reaction_name(system: System) -> &'static str {
    match system {
        System::Marketplace => "marketplace-booking-mail",
        System::PilotForce => "pilotforce-booking-mail",
    }
}

/// A booking of either system (marketplace: customerId/providerId/scheduledDate; PilotForce:
/// userId/serviceType/bookingDate/bookingTime), under the seed's names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    #[serde(default)]
    pub booking_id: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub scheduled_date: Option<String>,
    #[serde(default)]
    pub booking_date: Option<String>,
    #[serde(default)]
    pub booking_time: Option<String>,
    #[serde(default)]
    pub service_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserPreferences {
    #[serde(default)]
    pub notifications: Option<bool>,
}

/// A person's item (a user, a provider), under the seed's names less their prefix.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Person {
    #[serde(default, rename = "user.email", alias = "provider.email")]
    pub email: Option<String>,
    #[serde(default, rename = "user.name", alias = "provider.name")]
    pub name: Option<String>,
    #[serde(default, rename = "user.preferences")]
    pub preferences: Option<UserPreferences>,
}

pub struct BookingMail {
    config: BookingMailConfig,
}

impl BookingMail {
    pub fn new(config: BookingMailConfig) -> Self {
        BookingMail { config }
    }

    fn status_of<'a>(&self, image: Option<&'a Item>) -> Option<&'a str> {
        image.and_then(|i| self.config.booking.text(i, "status"))
    }

    /// Who hears of this change: the provider (marketplace) or the user (PilotForce) of a new
    /// booking, the customer of a status change. (person id attribute, address attribute.)
    fn recipient(&self, new_booking: bool) -> (&'static str, &'static str) {
        match (self.config.system, new_booking) {
            (System::Marketplace, true) => ("providerId", "providerEmail"),
            (System::Marketplace, false) => ("customerId", "customerEmail"),
            (System::PilotForce, _) => ("userId", "userEmail"),
        }
    }

    /// The person's item from `table` (key attribute `key`, by its application's name), as a
    /// [`Person`]; None when it is not there.
    async fn person(
        &self,
        ports: Ports<'_>,
        table: &str,
        names: &AttributeNames,
        key: &str,
        id: &str,
    ) -> Result<Option<Person>, ReactionError> {
        let item_key = string_key(&[(names.of(key), id)]);
        let Some(item) = ports.tables.get(table, &item_key).await? else {
            return Ok(None);
        };
        let what = format!("{table} {}", crate::item::describe_keys(&item_key));
        Ok(Some(from_item(names.project(&item), &what)?))
    }

    /// The address (and the person's item, for the name and preferences) from the first of
    /// the configured sources ([`RecipientSource`]) that has one. Err: why there is none, with
    /// every place looked in, to report.
    async fn address(
        &self,
        ports: Ports<'_>,
        image: &Item,
        new_booking: bool,
    ) -> Result<Result<(String, Person), String>, ReactionError> {
        let cfg = &self.config;
        let (id_attribute, address_attribute) = self.recipient(new_booking);
        let id = cfg.booking.text(image, id_attribute);
        let mut tried = Vec::new();
        let mut person: Option<Person> = None;
        let mut address = None;
        let mut users_read = false;
        for source in &cfg.sources {
            let read = match (source, id) {
                (RecipientSource::Booking, _) => {
                    tried.push(format!(
                        "the booking's {}",
                        cfg.booking.of(address_attribute)
                    ));
                    address = cfg
                        .booking
                        .text(image, address_attribute)
                        .map(str::to_string);
                    None
                }
                (RecipientSource::Provider, Some(id)) => match &cfg.providers_table {
                    // Only a marketplace provider has an item there.
                    Some(providers) if cfg.system == System::Marketplace && new_booking => {
                        tried.push(format!("{providers} {}", cfg.provider.of("provider.email")));
                        self.person(ports, providers, &cfg.provider, "provider.providerId", id)
                            .await?
                    }
                    _ => None,
                },
                (RecipientSource::Users, Some(id)) => {
                    users_read = true;
                    tried.push(format!("{} {}", cfg.users_table, cfg.user.of("user.email")));
                    self.person(ports, &cfg.users_table, &cfg.user, "user.userId", id)
                        .await?
                }
                (_, None) => None,
            };
            if let Some(read) = read {
                address = address.or_else(|| read.email.clone());
                person.get_or_insert(read);
            }
            if address.is_some() {
                break;
            }
        }
        // An address from the booking itself: the person's item still gives the name and
        // whether they want mail, when the users table is a source not read yet.
        let users_unread = !users_read && cfg.sources.contains(&RecipientSource::Users);
        if let (None, Some(id), true) = (&person, id, users_unread) {
            person = self
                .person(ports, &cfg.users_table, &cfg.user, "user.userId", id)
                .await?;
        }
        match address {
            Some(address) => Ok(Ok((address, person.unwrap_or_default()))),
            None if id.is_none() => Ok(Err(format!(
                "the booking has neither {} nor {}",
                cfg.booking.of(address_attribute),
                cfg.booking.of(id_attribute)
            ))),
            None => Ok(Err(format!(
                "no address for {} {}: looked in {}",
                cfg.booking.of(id_attribute),
                // Cut: the reason is logged and reported, and an id can be any length.
                crate::value_rules::short(id.unwrap_or_default()),
                tried.join(", then ")
            ))),
        }
    }
}

/// `2025-11-20T14:30:00Z` -> ("2025-11-20", "14:30 UTC"); a plain date stays a date.
fn date_and_time(booking: &Booking) -> (Option<String>, Option<String>) {
    if let Some(date) = &booking.booking_date {
        return (Some(date.clone()), booking.booking_time.clone());
    }
    match booking
        .scheduled_date
        .as_deref()
        .map(|d| (d, crate::instant::parse(d)))
    {
        Some((raw, Some(at))) if raw.len() > 10 => (
            Some(at.format("%Y-%m-%d").to_string()),
            Some(at.format("%H:%M UTC").to_string()),
        ),
        Some((raw, _)) => (Some(raw.to_string()), None),
        None => (None, None),
    }
}

/// A result that says no mail went out, and why: logged at WARN, and it spends no idempotency
/// item (a later delivery, once the address is there, may send it).
fn not_sent(reason: String) -> Result<Reacted, ReactionError> {
    tracing::warn!(reason = %reason, "mail not sent");
    Ok(Reacted {
        result: json!({ "not_sent": reason }),
        deferred_writes: Vec::new(),
    })
}

#[async_trait]
impl Reaction for BookingMail {
    fn name(&self) -> &'static str {
        reaction_name(self.config.system)
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }

    /// A booking mail that cannot be addressed has done nothing.
    fn nothing_done_when_not_sent(&self) -> bool {
        true
    }

    fn partitions(&self, change: &Change) -> Vec<String> {
        // The people whose items the mail is addressed from.
        let Some(new) = &change.new else {
            return Vec::new();
        };
        let cfg = &self.config;
        let mut partitions: Vec<String> = ["customerId", "providerId", "userId"]
            .iter()
            .filter_map(|name| cfg.booking.text(new, name))
            .map(|person| partition(&cfg.users_table, person))
            .collect();
        if let (Some(providers), Some(provider)) =
            (&cfg.providers_table, cfg.booking.text(new, "providerId"))
        {
            partitions.push(partition(providers, provider));
        }
        partitions
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.bookings_table
            && match change.kind {
                ChangeKind::Insert => true,
                ChangeKind::Modify => {
                    self.status_of(change.new.as_ref()) != self.status_of(change.old.as_ref())
                }
                ChangeKind::Remove => false,
            }
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let cfg = &self.config;
        let what = format!(
            "{} {}",
            change.table,
            crate::item::describe_keys(&change.keys)
        );
        let image = change.new.clone().unwrap_or_default();
        let booking: Booking = from_item(cfg.booking.project(&image), &what)?;
        // The booking's id as the application names it, or else its key, whatever the key
        // attribute is called.
        let booking_id = booking.booking_id.clone().or_else(|| {
            (change.keys.len() == 1)
                .then(|| {
                    change
                        .keys
                        .values()
                        .next()
                        .and_then(crate::item::scalar_text)
                })
                .flatten()
                .map(str::to_string)
        });
        let new_booking = change.kind == ChangeKind::Insert;
        let (email, person) = match self.address(ports, &image, new_booking).await? {
            Ok(found) => found,
            Err(reason) => return not_sent(reason),
        };
        if person.preferences.as_ref().and_then(|p| p.notifications) == Some(false) {
            return not_sent("the recipient turned notifications off".to_string());
        }
        let (date, time) = date_and_time(&booking);
        let status = booking.status.clone().unwrap_or_else(|| "pending".into());
        let intro = match cfg.system {
            System::Marketplace => "A customer booked your service.",
            System::PilotForce => "We received your booking.",
        };
        let context = json!({
            "name": person.name.clone().unwrap_or_else(|| "there".into()),
            "intro": intro,
            "booking_id": booking_id,
            "service": booking.service_type,
            "date": date,
            "time": time,
            "status": status,
            "previous_status": self.status_of(change.old.as_ref()).unwrap_or("new"),
            "sender_name": cfg.mail.sender_name,
        });
        let template = if new_booking {
            "booking_received"
        } else {
            "booking_status"
        };
        let mail = mail::send(
            ports,
            &cfg.mail,
            &email,
            template,
            &context,
            change.approximate_creation,
        )
        .await?;
        if let Some(reason) = mail.get("not_sent").and_then(|r| r.as_str()) {
            return not_sent(reason.to_string());
        }
        Ok(Reacted {
            result: json!({ "mail": mail }),
            deferred_writes: Vec::new(),
        })
    }
}
