//! Reading a cost platform user's profile, for the mail reactions.

use super::model::UserProfile;
use crate::error::ReactionError;
use crate::item::{from_item, string_key};
use crate::ports::Ports;

/// `USER#<id>` / `PROFILE`, if there is one.
pub(crate) async fn profile(
    ports: Ports<'_>,
    table: &str,
    user_id: &str,
) -> Result<Option<UserProfile>, ReactionError> {
    let key = string_key(&[("PK", &format!("USER#{user_id}")), ("SK", "PROFILE")]);
    match ports.tables.get(table, &key).await? {
        Some(item) => Ok(Some(from_item(
            item,
            &format!("{table} USER#{user_id} PROFILE"),
        )?)),
        None => Ok(None),
    }
}
