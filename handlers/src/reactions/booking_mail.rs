//! Booking mail for the marketplace and PilotForce: a new booking is announced (to the
//! marketplace provider, to the PilotForce user), and every status change is mailed to the
//! customer with the booking's date and time.
//!
//! Guarded by the idempotency table: one mail per booking event, whatever the re-deliveries.
//! Addresses come from the system's users table (`email` by `userId`); a PilotForce user whose
//! `preferences.notifications` is false gets none.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use crate::change::{Change, ChangeKind};
use crate::error::ReactionError;
use crate::item::{from_item, get_str, partition, string_key};
use crate::mail::{self, MailConfig};
use crate::ports::Ports;
use crate::settings::{ConfigError, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Marketplace,
    PilotForce,
}

#[derive(Debug, Clone)]
pub struct BookingMailConfig {
    pub system: System,
    pub bookings_table: String,
    pub users_table: String,
    pub mail: MailConfig,
}

impl BookingMailConfig {
    pub fn from_settings(system: System, s: &Settings) -> Result<Self, ConfigError> {
        let (bookings_table, users_table) = match system {
            System::Marketplace => (
                s.text(
                    "MARKETPLACE_BOOKINGS_TABLE",
                    "marketplace-dev-bookings-table",
                ),
                s.text("MARKETPLACE_USERS_TABLE", "marketplace-dev-users-table"),
            ),
            System::PilotForce => (
                s.text("PILOTFORCE_BOOKINGS_TABLE", "PilotForce-Bookings"),
                s.text("PILOTFORCE_USERS_TABLE", "PilotForce-Users"),
            ),
        };
        Ok(BookingMailConfig {
            system,
            bookings_table,
            users_table,
            mail: MailConfig::from_settings(s)?,
        })
    }
}

/// A booking of either system (marketplace: customerId/providerId/scheduledDate; PilotForce:
/// userId/serviceType/bookingDate/bookingTime).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub booking_id: String,
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

/// A user of either system's users table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferences: Option<UserPreferences>,
}

pub struct BookingMail {
    config: BookingMailConfig,
}

impl BookingMail {
    pub fn new(config: BookingMailConfig) -> Self {
        BookingMail { config }
    }
}

fn status_of(image: Option<&crate::Item>) -> Option<&str> {
    image.and_then(|i| get_str(i, "status"))
}

/// `2025-11-20T14:30:00Z` -> ("2025-11-20", "14:30 UTC"); a plain date stays a date.
fn date_and_time(booking: &Booking) -> (Option<String>, Option<String>) {
    if let Some(date) = &booking.booking_date {
        return (Some(date.clone()), booking.booking_time.clone());
    }
    match booking
        .scheduled_date
        .as_deref()
        .map(|d| (d, chrono::DateTime::parse_from_rfc3339(d)))
    {
        Some((_, Ok(at))) => {
            let utc = at.with_timezone(&chrono::Utc);
            (
                Some(utc.format("%Y-%m-%d").to_string()),
                Some(utc.format("%H:%M UTC").to_string()),
            )
        }
        Some((raw, Err(_))) => (Some(raw.to_string()), None),
        None => (None, None),
    }
}

#[async_trait]
impl Reaction for BookingMail {
    fn name(&self) -> &'static str {
        match self.config.system {
            System::Marketplace => "marketplace-booking-mail",
            System::PilotForce => "pilotforce-booking-mail",
        }
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }

    fn partitions(&self, change: &Change) -> Vec<String> {
        // The users whose profiles the mail is addressed from.
        let Some(new) = &change.new else {
            return Vec::new();
        };
        ["customerId", "providerId", "userId"]
            .iter()
            .filter_map(|name| get_str(new, name))
            .map(|user| partition(&self.config.users_table, user))
            .collect()
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.bookings_table
            && match change.kind {
                ChangeKind::Insert => true,
                ChangeKind::Modify => {
                    status_of(change.new.as_ref()) != status_of(change.old.as_ref())
                }
                ChangeKind::Remove => false,
            }
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let what = format!(
            "{} {}",
            change.table,
            crate::item::describe_keys(&change.keys)
        );
        let booking: Booking = from_item(change.new.clone().unwrap_or_default(), &what)?;
        let new_booking = change.kind == ChangeKind::Insert;
        // Who hears of it: the provider (marketplace) or the user (PilotForce) of a new
        // booking; the customer of a status change.
        let recipient = match (self.config.system, new_booking) {
            (System::Marketplace, true) => booking.provider_id.clone(),
            (System::Marketplace, false) => booking.customer_id.clone(),
            (System::PilotForce, _) => booking.user_id.clone(),
        };
        let done = |result| {
            Ok(Reacted {
                result,
                deferred_writes: Vec::new(),
            })
        };
        let Some(recipient) = recipient else {
            return done(json!({ "not_sent": "the booking names no recipient" }));
        };
        let key = string_key(&[("userId", &recipient)]);
        let Some(user_item) = ports.tables.get(&self.config.users_table, &key).await? else {
            return done(
                json!({ "not_sent": format!("user {recipient} is not in {}", self.config.users_table) }),
            );
        };
        let user: User = from_item(
            user_item,
            &format!("{} {recipient}", self.config.users_table),
        )?;
        if user.preferences.as_ref().and_then(|p| p.notifications) == Some(false) {
            return done(
                json!({ "not_sent": format!("user {recipient} turned notifications off") }),
            );
        }
        let Some(email) = user.email.clone() else {
            return done(json!({ "not_sent": format!("user {recipient} has no email") }));
        };
        let (date, time) = date_and_time(&booking);
        let status = booking.status.clone().unwrap_or_else(|| "pending".into());
        let intro = match self.config.system {
            System::Marketplace => "A customer booked your service.",
            System::PilotForce => "We received your booking.",
        };
        let context = json!({
            "name": user.name.clone().unwrap_or_else(|| "there".into()),
            "intro": intro,
            "booking_id": booking.booking_id,
            "service": booking.service_type,
            "date": date,
            "time": time,
            "status": status,
            "previous_status": status_of(change.old.as_ref()).unwrap_or("new"),
            "sender_name": self.config.mail.sender_name,
        });
        let template = if new_booking {
            "booking_received"
        } else {
            "booking_status"
        };
        done(json!({ "mail": mail::send(
                ports,
                &self.config.mail,
                &email,
                template,
                &context,
                change.approximate_creation,
            )
            .await? }))
    }
}
