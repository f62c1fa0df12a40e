//! Dead letters, service metadata and the poller lock refresh.

use jiff::Timestamp;

use super::error::StoreError;
use super::session_row::ts_to_ms;
use super::sql::Tx;

/// Keeps a queue message that could not be used; the same body seen again counts up.
pub async fn record_dead_letter(
    tx: &mut Tx,
    body: &str,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let hash = fnv1a64(body.as_bytes());
    let now = ts_to_ms(now);
    let existing = tx
        .fetch_optional(
            &format!(
                "SELECT id FROM status_job_dead_letter WHERE body_hash = ?{}",
                tx.dialect().for_update()
            ),
            &[hash.into()],
        )
        .await?;
    match existing {
        Some(row) => {
            tx.execute(
                "UPDATE status_job_dead_letter SET reason = ?, last_seen_ms = ?, seen_count = seen_count + 1 \
                 WHERE id = ?",
                &[reason.into(), now.into(), row.int(0)?.into()],
            )
            .await?;
        }
        None => {
            tx.execute(
                "INSERT INTO status_job_dead_letter (body_hash, body, reason, first_seen_ms, last_seen_ms, seen_count) \
                 VALUES (?, ?, ?, ?, ?, 1)",
                &[hash.into(), body.into(), reason.into(), now.into(), now.into()],
            )
            .await?;
        }
    }
    tx.checkpoint().await
}

/// A stored dead letter: body, reason, first and last seen, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The raw message body.
    pub body: String,
    /// Why it could not be used (the latest reason).
    pub reason: String,
    /// First seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
    /// How many times it arrived.
    pub count: u32,
}

/// Every dead letter, oldest first.
pub async fn dead_letters(tx: &mut Tx) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT body, reason, first_seen_ms, last_seen_ms, seen_count FROM status_job_dead_letter ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                body: r.text(0)?,
                reason: r.text(1)?,
                first_seen: super::session_row::ms_to_ts(r.int(2)?)?,
                last_seen: super::session_row::ms_to_ts(r.int(3)?)?,
                count: u32::try_from(r.int(4)?).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Reads a metadata value.
pub async fn get_meta(tx: &mut Tx, key: &str) -> Result<Option<String>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT meta_value FROM status_job_meta WHERE meta_key = ?",
            &[key.into()],
        )
        .await?;
    row.map(|r| r.text(0)).transpose()
}

/// Writes a metadata value.
pub async fn set_meta(
    tx: &mut Tx,
    key: &str,
    value: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO status_job_meta (meta_key, meta_value, updated_at_ms) VALUES (?, ?, ?){}",
        tx.dialect()
            .upsert("meta_key", &["meta_value", "updated_at_ms"])
    );
    tx.execute(&sql, &[key.into(), value.into(), ts_to_ms(now).into()])
        .await?;
    tx.checkpoint().await
}

/// Refreshes `updated_at` of every poller row locked by `owner`, so that the legacy stale-lock
/// cleanup never takes them (contracts §6 item 10). Returns how many rows it touched.
pub async fn refresh_poller_locks(tx: &mut Tx, owner: &str) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE status_check_poller SET updated_at = CURRENT_TIMESTAMP WHERE lock_id = ?",
        &[owner.into()],
    )
    .await
}

/// FNV-1a, 64 bits: a hash that stays the same across releases, as a stored key must.
fn fnv1a64(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}
