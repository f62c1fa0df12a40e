//! `[queue]`: where the status queue is and how it is consumed, and the limits SQS sets on it.

use serde::{Deserialize, Serialize};

use super::error::QueueError;
use crate::redact::redact_url;

/// The suffix Megazord appends to the status queue address for this service's subscriptions.
pub const DEFAULT_QUEUE_SUFFIX: &str = "azi-3-status-jobs";

/// SQS returns at most 10 messages per receive.
pub(super) const SQS_MAX_BATCH: u32 = 10;
/// SQS long polls for at most 20 s.
const SQS_MAX_WAIT_SECONDS: u32 = 20;
/// SQS keeps a message invisible for at most 12 h.
const SQS_MAX_VISIBILITY_SECONDS: u32 = 43_200;

/// `[queue]`: where the status queue is and how it is consumed.
///
/// ```
/// use azi3_status_jobs::queue::SqsSettings;
///
/// let settings = SqsSettings {
///     status_queue_address: Some("https://sqs.eu-central-1.amazonaws.com/1234/status-queue".into()),
///     ..SqsSettings::default()
/// };
/// assert_eq!(
///     settings.consumer_queue_url().as_deref(),
///     Some("https://sqs.eu-central-1.amazonaws.com/1234/status-queue-azi-3-status-jobs"),
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsSettings {
    /// Megazord's status queue URL without suffix (its `STATUS_QUEUE_ADDRESS`). With neither this
    /// nor `consumer_queue_url`, the service consumes no queue.
    pub status_queue_address: Option<String>,
    /// The `queue` suffix of this service's Megazord subscriptions; never the one of another
    /// service, which would then take this service's messages and this one theirs.
    pub queue_suffix: String,
    /// The full URL of the queue to consume, overriding address and suffix.
    pub consumer_queue_url: Option<String>,
    /// The SQS endpoint, for an emulator (`http://127.0.0.1:4566`); otherwise the region's.
    pub endpoint_url: Option<String>,
    /// The AWS region; otherwise taken from the usual AWS environment and profile.
    pub region: Option<String>,
    /// Long-poll wait per receive, 0 to 20 s.
    pub wait_time_seconds: u32,
    /// Messages asked for per receive, 1 to 10.
    pub max_messages: u32,
    /// Messages handled at once, at least 1.
    pub max_in_flight: usize,
    /// How long a received message stays invisible to other consumers; extended every half of
    /// it while the handler works. 1 s to 12 h.
    pub visibility_timeout_seconds: u32,
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            status_queue_address: None,
            queue_suffix: DEFAULT_QUEUE_SUFFIX.to_string(),
            consumer_queue_url: None,
            endpoint_url: None,
            region: None,
            wait_time_seconds: SQS_MAX_WAIT_SECONDS,
            max_messages: SQS_MAX_BATCH,
            max_in_flight: 10,
            visibility_timeout_seconds: 30,
        }
    }
}

/// URLs redacted: a query may carry a presigned credential.
impl std::fmt::Debug for SqsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::redact_optional_url;
        f.debug_struct("SqsSettings")
            .field(
                "status_queue_address",
                &redact_optional_url(&self.status_queue_address),
            )
            .field("queue_suffix", &self.queue_suffix)
            .field(
                "consumer_queue_url",
                &redact_optional_url(&self.consumer_queue_url),
            )
            .field("endpoint_url", &redact_optional_url(&self.endpoint_url))
            .field("region", &self.region)
            .field("wait_time_seconds", &self.wait_time_seconds)
            .field("max_messages", &self.max_messages)
            .field("max_in_flight", &self.max_in_flight)
            .field(
                "visibility_timeout_seconds",
                &self.visibility_timeout_seconds,
            )
            .finish()
    }
}

impl SqsSettings {
    /// The queue to consume: `consumer_queue_url` when set, otherwise
    /// `${status_queue_address}-${queue_suffix}` (just the address when the suffix is empty);
    /// `None` when no queue is configured.
    pub fn consumer_queue_url(&self) -> Option<String> {
        if let Some(url) = non_empty(&self.consumer_queue_url) {
            return Some(url.to_string());
        }
        let base = non_empty(&self.status_queue_address)?.trim_end_matches('/');
        let suffix = self.queue_suffix.trim();
        Some(if suffix.is_empty() {
            base.to_string()
        } else {
            format!("{base}-{suffix}")
        })
    }

    /// Checks every value; the error names the key (`queue.<field>`) and the value.
    pub fn validate(&self) -> Result<(), QueueError> {
        let invalid = |key: &'static str, value: &dyn std::fmt::Debug, reason: &str| {
            Err(QueueError::InvalidSetting {
                key,
                value: format!("{value:?}"),
                reason: reason.to_string(),
            })
        };
        for (key, value) in [
            ("status_queue_address", &self.status_queue_address),
            ("consumer_queue_url", &self.consumer_queue_url),
            ("endpoint_url", &self.endpoint_url),
        ] {
            if let Some(url) = non_empty(value)
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return invalid(key, &redact_url(url), "must be an http:// or https:// URL");
            }
        }
        if self.wait_time_seconds > SQS_MAX_WAIT_SECONDS {
            return invalid(
                "wait_time_seconds",
                &self.wait_time_seconds,
                "must be 0 to 20 (the SQS long-poll limit)",
            );
        }
        if !(1..=SQS_MAX_BATCH).contains(&self.max_messages) {
            return invalid(
                "max_messages",
                &self.max_messages,
                "must be 1 to 10 (the SQS batch limit)",
            );
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", &self.max_in_flight, "must be at least 1");
        }
        if !(1..=SQS_MAX_VISIBILITY_SECONDS).contains(&self.visibility_timeout_seconds) {
            return invalid(
                "visibility_timeout_seconds",
                &self.visibility_timeout_seconds,
                "must be 1 to 43200 (12 h, the SQS limit)",
            );
        }
        Ok(())
    }
}

pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_url_is_the_address_with_the_suffix_unless_overridden() {
        let mut settings = SqsSettings {
            status_queue_address: Some("http://localhost:4566/000000000000/status-queue/".into()),
            ..SqsSettings::default()
        };
        assert_eq!(
            settings.consumer_queue_url().as_deref(),
            Some("http://localhost:4566/000000000000/status-queue-azi-3-status-jobs")
        );
        settings.queue_suffix = String::new();
        assert_eq!(
            settings.consumer_queue_url().as_deref(),
            Some("http://localhost:4566/000000000000/status-queue")
        );
        settings.consumer_queue_url = Some("https://sqs.example/1/other".into());
        assert_eq!(
            settings.consumer_queue_url().as_deref(),
            Some("https://sqs.example/1/other")
        );
        assert_eq!(SqsSettings::default().consumer_queue_url(), None);
    }

    #[test]
    fn invalid_settings_name_the_key_and_the_value() {
        let settings = SqsSettings {
            max_messages: 11,
            ..SqsSettings::default()
        };
        assert_eq!(
            settings.validate().unwrap_err().to_string(),
            "queue.max_messages = 11: must be 1 to 10 (the SQS batch limit)"
        );
        let settings = SqsSettings {
            status_queue_address: Some("sqs.eu-central-1.amazonaws.com/1/status-queue".into()),
            ..SqsSettings::default()
        };
        assert_eq!(
            settings.validate().unwrap_err().to_string(),
            "queue.status_queue_address = \"sqs.eu-central-1.amazonaws.com/1/status-queue\": must be an http:// or https:// URL"
        );
        assert_eq!(SqsSettings::default().validate(), Ok(()));
    }

    #[test]
    fn settings_left_out_keep_their_defaults() {
        let settings: SqsSettings = serde_json::from_str(r#"{"max_in_flight": 4}"#).unwrap();
        assert_eq!(settings.max_in_flight, 4);
        assert_eq!(settings.queue_suffix, DEFAULT_QUEUE_SUFFIX);
        assert_eq!(settings.wait_time_seconds, 20);
    }
}
