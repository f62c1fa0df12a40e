//! Look-ups the live service needs besides the transitions: sessions by key or subscription,
//! running sessions, subscriptions still to delete, and local ids for events taken in over HTTP.

use jiff::Timestamp;
use jiff::civil::Date;

use super::session_row::{ms_to_ts, ts_to_ms};
use super::{StatusCheckId, Store, StoreError, Tx};
use crate::domain::RobotId;

/// Local event ids (of events taken in without an id) start here, far above any Megazord
/// incoming id, so the two never meet.
pub const LOCAL_EVENT_ID_BASE: u64 = 1 << 60;

/// Ids of events taken in with an id that is not a Megazord incoming id
/// ([`named_event_id`]) start here, far above the local ids.
pub const NAMED_EVENT_ID_BASE: u64 = 1 << 62;

/// A session found by a look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// The robot.
    pub robot_id: RobotId,
    /// E.
    pub end: Timestamp,
}

/// A Megazord subscription of an ended session, not yet deleted at Megazord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftoverSubscription {
    /// The session.
    pub status_check_id: StatusCheckId,
    /// The robot.
    pub robot_id: RobotId,
    /// The subscription.
    pub subscription_id: u64,
}

impl Store {
    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|tx| {
            Box::pin(async move {
                tx.fetch_all("SELECT 1", &[]).await?;
                Ok(())
            })
        })
        .await
    }

    /// The `status_check.id` of the robot's session on `date`, if it was started.
    pub async fn session_id(
        &self,
        robot_id: RobotId,
        date: Date,
    ) -> Result<Option<StatusCheckId>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let row = tx
                    .fetch_optional(
                        "SELECT status_check_id FROM status_job_session WHERE robot_id = ? AND local_date = ?",
                        &[robot_id.into(), date.to_string().into()],
                    )
                    .await?;
                row.map(|r| r.id("status_check_id").map(StatusCheckId::new))
                    .transpose()
            })
        })
        .await
    }

    /// The session a Megazord subscription was made for (also after it ended).
    pub async fn session_by_subscription(
        &self,
        subscription_id: u64,
    ) -> Result<Option<SessionKey>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let row = tx
                    .fetch_optional(
                        "SELECT s.status_check_id, s.robot_id, s.session_end_ms \
                         FROM status_job_subscription sub \
                         JOIN status_job_session s ON s.status_check_id = sub.status_check_id \
                         WHERE sub.subscription_id = ?",
                        &[subscription_id.into()],
                    )
                    .await?;
                row.map(|r| key(&r)).transpose()
            })
        })
        .await
    }

    /// Every running session.
    pub async fn running_sessions(&self) -> Result<Vec<SessionKey>, StoreError> {
        self.run(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        "SELECT status_check_id, robot_id, session_end_ms FROM status_job_session \
                         WHERE result = 'PENDING' ORDER BY status_check_id",
                        &[],
                    )
                    .await?;
                rows.iter().map(key).collect()
            })
        })
        .await
    }

    /// How many sessions run, counted by the database: the janitor's gauge, without reading
    /// every running session.
    pub async fn running_session_count(&self) -> Result<u64, StoreError> {
        self.run(|tx| {
            Box::pin(async move {
                let n = tx
                    .fetch_optional(
                        "SELECT COUNT(*) AS running FROM status_job_session WHERE result = 'PENDING'",
                        &[],
                    )
                    .await?
                    .map(|r| r.int("running"))
                    .transpose()?
                    .unwrap_or(0);
                Ok(u64::try_from(n).unwrap_or(0))
            })
        })
        .await
    }

    /// The running sessions whose end is before `before` (sessions nobody ended).
    pub async fn running_sessions_ended_before(
        &self,
        before: Timestamp,
    ) -> Result<Vec<SessionKey>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        "SELECT status_check_id, robot_id, session_end_ms FROM status_job_session \
                         WHERE result = 'PENDING' AND session_end_ms < ? ORDER BY status_check_id",
                        &[ts_to_ms(before).into()],
                    )
                    .await?;
                rows.iter().map(key).collect()
            })
        })
        .await
    }

    /// Subscriptions still to be deleted at Megazord: those of ended sessions, and spares (a
    /// subscription an instance made for a session another instance had subscribed first).
    pub async fn ended_subscriptions(
        &self,
        limit: u32,
    ) -> Result<Vec<LeftoverSubscription>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        "SELECT sub.status_check_id, sub.robot_id, sub.subscription_id \
                         FROM status_job_subscription sub \
                         JOIN status_job_session s ON s.status_check_id = sub.status_check_id \
                         JOIN status_check c ON c.id = sub.status_check_id \
                         WHERE sub.deleted_at_ms IS NULL AND (s.result <> 'PENDING' \
                             OR c.subscription_id IS NULL OR c.subscription_id <> sub.subscription_id) \
                         ORDER BY sub.subscription_id LIMIT ?",
                        &[limit.into()],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LeftoverSubscription {
                            status_check_id: StatusCheckId::new(r.id("status_check_id")?),
                            robot_id: r.robot_id("robot_id")?,
                            subscription_id: r.id("subscription_id")?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Notes that a subscription was deleted at Megazord; the session it was made for no
    /// longer shows it (semantics §8: `subscription_id` is set only while one exists).
    pub async fn forget_subscription(
        &self,
        subscription_id: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE status_job_subscription SET deleted_at_ms = ? \
                     WHERE subscription_id = ? AND deleted_at_ms IS NULL",
                    &[ts_to_ms(now).into(), subscription_id.into()],
                )
                .await?;
                tx.execute(
                    "UPDATE status_check SET subscription_id = NULL, updated_at = CURRENT_TIMESTAMP \
                     WHERE subscription_id = ?",
                    &[subscription_id.into()],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The numeric id of an event taken in over HTTP: a Megazord incoming id (a plain number)
    /// is used as it is; any other id gives the same [`named_event_id`] every time; no id gets
    /// a fresh local id (every such event is distinct).
    pub async fn event_id(&self, external_id: Option<&str>) -> Result<u64, StoreError> {
        if let Some(id) = external_id.map(named_or_megazord_event_id) {
            return Ok(id);
        }
        self.run(move |tx| Box::pin(async move { event_id(tx, None).await }))
            .await
    }
}

/// [`Store::event_id`] inside an open transaction: only an event without an id needs a
/// statement.
pub(crate) async fn event_id(tx: &mut Tx, external_id: Option<&str>) -> Result<u64, StoreError> {
    if let Some(id) = external_id.map(named_or_megazord_event_id) {
        return Ok(id);
    }
    let id = tx
        .insert(
            "INSERT INTO status_job_event_id (external_id) VALUES (NULL)",
            &[],
        )
        .await?;
    Ok(LOCAL_EVENT_ID_BASE + id)
}

/// A Megazord incoming id as it is, any other id as its [`named_event_id`].
fn named_or_megazord_event_id(external_id: &str) -> u64 {
    megazord_event_id(external_id).unwrap_or_else(|| named_event_id(external_id))
}

/// The numeric id of an event whose id is not a Megazord incoming id: the first eight bytes of
/// the SHA-256 of its id, taken into `[NAMED_EVENT_ID_BASE, 2^63)`, so that it fits a signed
/// 64-bit integer and meets neither Megazord's ids nor the local ids.
///
/// Computed, not looked up: taking an event in writes no row for its id, and every instance
/// (and every version of the service) gives an id the same number. Ids are compared byte for
/// byte: `"a"` and `"A"` are two events. Two ids could give the same number; within one
/// session, where numbers are compared, that is one chance in 2^62 for each pair of its
/// events, and the later of the two would be taken as a duplicate.
///
/// ```
/// use azi3_status_jobs::store::{NAMED_EVENT_ID_BASE, named_event_id};
/// let id = named_event_id("sensor-42");
/// assert_eq!(id, named_event_id("sensor-42"));
/// assert_ne!(id, named_event_id("Sensor-42"));
/// assert!(id >= NAMED_EVENT_ID_BASE && id <= i64::MAX as u64);
/// ```
pub fn named_event_id(external_id: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(external_id.as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    NAMED_EVENT_ID_BASE | (u64::from_be_bytes(first) & (NAMED_EVENT_ID_BASE - 1))
}

/// A plain number below the local ids is a Megazord incoming id, used as it is.
fn megazord_event_id(id: &str) -> Option<u64> {
    let n = id.parse::<u64>().ok()?;
    (n < LOCAL_EVENT_ID_BASE && n.to_string() == id).then_some(n)
}

fn key(row: &super::sql::Row) -> Result<SessionKey, StoreError> {
    Ok(SessionKey {
        status_check_id: StatusCheckId::new(row.id("status_check_id")?),
        robot_id: row.robot_id("robot_id")?,
        end: ms_to_ts(row.int("session_end_ms")?)?,
    })
}
