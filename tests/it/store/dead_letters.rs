//! Storage that outside input cannot grow without bound, on SQLite and on MariaDB: dead letters
//! are cut, measured, hashed and pruned; event ids are keys byte for byte.

use super::support::{TestDb, ts};
use azi3_status_jobs::store::{DEAD_LETTER_BODY_LIMIT, DeadLetterRetention};
use jiff::SignedDuration;

#[tokio::test]
async fn a_long_body_is_kept_cut_with_its_length_and_hash() {
    for db in TestDb::both().await {
        let at = ts("2025-03-30T06:00:00Z");
        // Multi-byte characters across the cut: the kept part ends on a character boundary.
        let body = format!("{{\"x\":\"{}\"}}", "é".repeat(50_000));
        db.store
            .record_dead_letter(&body, "no event", at)
            .await
            .unwrap();
        db.store
            .record_dead_letter(&body, "no event", at + SignedDuration::from_secs(1))
            .await
            .unwrap();
        let letters = db.store.dead_letters().await.unwrap();
        assert_eq!(letters.len(), 1, "{}", db.name);
        let letter = &letters[0];
        assert_eq!(letter.count, 2, "{}", db.name);
        assert!(letter.body.len() <= DEAD_LETTER_BODY_LIMIT, "{}", db.name);
        assert!(
            letter.body.len() > DEAD_LETTER_BODY_LIMIT - 4,
            "{}",
            db.name
        );
        assert!(body.starts_with(&letter.body), "{}", db.name);
        assert_eq!(letter.body_length, body.len() as u64, "{}", db.name);
        assert_eq!(letter.body_sha256.as_ref().map(String::len), Some(64));
        db.finish().await;
    }
}

#[tokio::test]
async fn letters_are_pruned_by_age_and_then_by_count_least_recently_seen_first() {
    for db in TestDb::both().await {
        let start = ts("2025-03-01T00:00:00Z");
        let day = |n: i64| start + SignedDuration::from_hours(24 * n);
        for n in 0..10 {
            db.store
                .record_dead_letter(&format!("body {n}"), "unreadable", day(n))
                .await
                .unwrap();
        }
        // Body 0 comes back on day 9: it is now among the most recently seen.
        db.store
            .record_dead_letter("body 0", "unreadable", day(9))
            .await
            .unwrap();
        let retention = DeadLetterRetention {
            max_age: SignedDuration::from_hours(24 * 5),
            max_count: 3,
        };
        // On day 10, letters last seen before day 5 are too old: bodies 1 to 4.
        let deleted = db
            .store
            .prune_dead_letters(retention, day(10))
            .await
            .unwrap();
        // Left: 0 (day 9), 5, 6, 7, 8, 9; beyond three, the least recently seen go: 5, 6, 7.
        assert_eq!(deleted, 4 + 3, "{}", db.name);
        let mut left: Vec<String> = db
            .store
            .dead_letters()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.body)
            .collect();
        left.sort();
        assert_eq!(left, ["body 0", "body 8", "body 9"], "{}", db.name);
        assert_eq!(
            db.store
                .prune_dead_letters(retention, day(10))
                .await
                .unwrap(),
            0,
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn event_ids_differing_in_case_or_spaces_are_different_events() {
    for db in TestDb::both().await {
        let ids = ["ok-1", " ok-1", "ok-1 ", "OK-1", "ok-1\u{a0}"];
        let mut local = Vec::new();
        for id in ids {
            local.push(db.store.event_id(Some(id)).await.unwrap());
        }
        let mut distinct = local.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len(), "{}: {local:?}", db.name);
        for (id, first) in ids.iter().zip(&local) {
            assert_eq!(
                db.store.event_id(Some(id)).await.unwrap(),
                *first,
                "{}",
                db.name
            );
        }
        db.finish().await;
    }
}
