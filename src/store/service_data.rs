//! Dead letters, service metadata and the poller lock refresh.

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::error::StoreError;
use super::session_row::ts_to_ms;
use super::sql::{Arg, Tx};

/// The most of a dead letter's body that is kept, in bytes; the rest is known by its length
/// and SHA-256 only.
pub const DEAD_LETTER_BODY_LIMIT: usize = 64 * 1024;

/// How long dead letters are kept, and how many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterRetention {
    /// A letter not seen for this long is deleted.
    pub max_age: SignedDuration,
    /// Beyond this many letters, the least recently seen are deleted.
    pub max_count: u64,
}

/// Keeps a queue message that could not be used; the same body seen again counts up. Only the
/// first [`DEAD_LETTER_BODY_LIMIT`] bytes of the body are kept, with its whole length and
/// SHA-256.
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
                &[reason.into(), now.into(), row.int("id")?.into()],
            )
            .await?;
        }
        None => {
            let kept = &body[..floor_char_boundary(body, DEAD_LETTER_BODY_LIMIT)];
            let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
            tx.execute(
                "INSERT INTO status_job_dead_letter \
                 (body_hash, body, body_length, body_sha256, reason, first_seen_ms, last_seen_ms, seen_count) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                &[
                    hash.into(),
                    kept.into(),
                    length.into(),
                    sha256_hex(body.as_bytes()).into(),
                    reason.into(),
                    now.into(),
                    now.into(),
                ],
            )
            .await?;
        }
    }
    tx.checkpoint().await
}

/// Deletes the dead letters last seen longer than `retention.max_age` before `now`, then the
/// least recently seen beyond `retention.max_count`. Returns how many it deleted.
pub async fn prune_dead_letters(
    tx: &mut Tx,
    retention: DeadLetterRetention,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let cutoff = now.checked_sub(retention.max_age).unwrap_or(Timestamp::MIN);
    let mut deleted = tx
        .execute(
            "DELETE FROM status_job_dead_letter WHERE last_seen_ms < ?",
            &[ts_to_ms(cutoff).into()],
        )
        .await?;
    // The newest letter that is one too many, if there are too many: it and every older one go.
    let first_too_many = tx
        .fetch_optional(
            "SELECT last_seen_ms, id FROM status_job_dead_letter \
             ORDER BY last_seen_ms DESC, id DESC LIMIT 1 OFFSET ?",
            &[retention.max_count.into()],
        )
        .await?;
    if let Some(row) = first_too_many {
        let (last_seen, id) = (row.int("last_seen_ms")?, row.int("id")?);
        deleted += tx
            .execute(
                "DELETE FROM status_job_dead_letter \
                 WHERE last_seen_ms < ? OR (last_seen_ms = ? AND id <= ?)",
                &[last_seen.into(), last_seen.into(), id.into()],
            )
            .await?;
    }
    tx.checkpoint().await?;
    Ok(deleted)
}

/// A stored dead letter: body, reason, first and last seen, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message body, or its first [`DEAD_LETTER_BODY_LIMIT`] bytes.
    pub body: String,
    /// The length of the whole body in bytes.
    pub body_length: u64,
    /// The SHA-256 of the whole body, hex; unknown for letters a SQLite database kept before
    /// bodies were cut.
    pub body_sha256: Option<String>,
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
            "SELECT body, reason, first_seen_ms, last_seen_ms, seen_count, body_length, body_sha256 \
             FROM status_job_dead_letter ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                body: r.text("body")?,
                reason: r.text("reason")?,
                first_seen: super::session_row::ms_to_ts(r.int("first_seen_ms")?)?,
                last_seen: super::session_row::ms_to_ts(r.int("last_seen_ms")?)?,
                count: u32::try_from(r.int("seen_count")?).unwrap_or(u32::MAX),
                body_length: u64::try_from(r.int("body_length")?).unwrap_or(0),
                body_sha256: r.opt_text("body_sha256")?,
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
    row.map(|r| r.text("meta_value")).transpose()
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

/// The ids of up to `limit` poller rows locked by `owner` after `after` (in id order) whose
/// `updated_at` is older than `fresh_for_seconds` by the database's clock (or unset).
pub async fn stale_poller_locks(
    tx: &mut Tx,
    owner: &str,
    after: u64,
    fresh_for_seconds: i64,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let dialect = tx.dialect();
    let sql = format!(
        "SELECT status_check_id FROM status_check_poller \
         WHERE lock_id = ? AND status_check_id > ? \
         AND (updated_at IS NULL OR {} < {} - ?) \
         ORDER BY status_check_id LIMIT {limit}",
        dialect.epoch_seconds("updated_at"),
        dialect.epoch_seconds("CURRENT_TIMESTAMP"),
    );
    let rows = tx
        .fetch_all(
            &sql,
            &[
                owner.into(),
                super::sql::to_i64(after).into(),
                fresh_for_seconds.into(),
            ],
        )
        .await?;
    rows.iter().map(|r| r.id("status_check_id")).collect()
}

/// Refreshes `updated_at` of the poller rows `ids` that `owner` still holds, so that the
/// legacy stale-lock cleanup never takes them (contracts §6 item 10). Returns how many rows it
/// touched.
pub async fn refresh_poller_locks(
    tx: &mut Tx,
    owner: &str,
    ids: &[u64],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let mut args: Vec<Arg> = Vec::with_capacity(ids.len() + 1);
    args.push(owner.into());
    args.extend(ids.iter().map(|id| super::sql::to_i64(*id).into()));
    tx.execute(
        &format!(
            "UPDATE status_check_poller SET updated_at = CURRENT_TIMESTAMP \
             WHERE lock_id = ? AND status_check_id IN ({marks})"
        ),
        &args,
    )
    .await
}

/// The largest index at most `limit` that starts a character of `text`.
fn floor_char_boundary(text: &str, limit: usize) -> usize {
    if limit >= text.len() {
        return text.len();
    }
    (0..=limit)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
