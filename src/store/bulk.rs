//! Store reads and writes that serve many sessions at once: what lets thousands of windows
//! ending in the same second, and thousands of rules, cost few round trips.

use super::error::StoreError;
use super::{BoxFuture, Dialect, Store};

/// What identifies the stored rule set: how many rules there are and the sum of their
/// versions. Rules are only ever inserted or updated, and every update bumps the rule's
/// version, so any change to any rule changes this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesFingerprint {
    /// How many rules are stored.
    pub count: i64,
    /// The sum of their versions.
    pub versions: i64,
}

impl Store {
    /// The rule set's [`RulesFingerprint`], in one small query: the scheduler reads every rule
    /// again only when it changed.
    pub async fn rules_fingerprint(&self) -> Result<RulesFingerprint, StoreError> {
        self.run(
            |tx| -> BoxFuture<'_, Result<RulesFingerprint, StoreError>> {
                Box::pin(async move {
                    // MySQL sums into a DECIMAL: cast back to an integer.
                    let sum = match tx.dialect() {
                        Dialect::Mysql => "CAST(COALESCE(SUM(version), 0) AS SIGNED)",
                        Dialect::Sqlite => "COALESCE(SUM(version), 0)",
                    };
                    let row = tx
                        .fetch_optional(
                            &format!("SELECT COUNT(*), {sum} FROM status_job_rule"),
                            &[],
                        )
                        .await?
                        .ok_or_else(|| StoreError::corrupt("no answer to COUNT(*)"))?;
                    Ok(RulesFingerprint {
                        count: row.int(0)?,
                        versions: row.int(1)?,
                    })
                })
            },
        )
        .await
    }
}
