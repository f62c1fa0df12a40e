//! Remembering event ids, to count an event delivered twice only once.

/// The set of event ids seen so far.
///
/// Megazord ids are increasing integers, and exports list them in order, so the common case
/// is kept cheap: canonical decimal ids that arrive in increasing order are appended to a
/// sorted list (a duplicate of one of them is found by binary search); decimal ids out of order
/// and all other ids go to hash sets. Ids compare as text: `007` and `7` are different ids.
///
/// ```
/// use azi3_status_jobs::replay::SeenIds;
///
/// let mut seen = SeenIds::default();
/// assert!(seen.insert(b"10"));
/// assert!(seen.insert(b"12"));
/// assert!(seen.insert(b"11"));
/// assert!(!seen.insert(b"10"));
/// assert!(!seen.insert(b"11"));
/// assert!(seen.insert(b"010"));
/// assert!(seen.insert(b"sensara-abc"));
/// assert!(!seen.insert(b"sensara-abc"));
/// ```
#[derive(Debug, Default)]
pub struct SeenIds {
    ascending: Vec<u64>,
    out_of_order: foldhash::HashSet<u64>,
    other: foldhash::HashSet<Box<[u8]>>,
}

impl SeenIds {
    /// Makes room for `additional` ids arriving in order.
    pub fn reserve(&mut self, additional: usize) {
        self.ascending.reserve(additional);
    }

    /// Adds `id`; `true` when it had not been seen before.
    #[inline]
    pub fn insert(&mut self, id: &[u8]) -> bool {
        let Some(n) = canonical_decimal(id) else {
            return self.other.insert(Box::from(id));
        };
        match self.ascending.last() {
            // Every id in `out_of_order` is below the last ascending one, so a larger id is new.
            None => {
                self.ascending.push(n);
                true
            }
            Some(&last) if n > last => {
                self.ascending.push(n);
                true
            }
            Some(&last) if n == last => false,
            Some(_) => self.ascending.binary_search(&n).is_err() && self.out_of_order.insert(n),
        }
    }
}

/// `id` as a number when it is written the one way a number is written: digits only, no
/// leading zero, fitting in 64 bits.
fn canonical_decimal(id: &[u8]) -> Option<u64> {
    match id {
        [] => None,
        [b'0', _, ..] => None,
        _ if id.len() > 19 => None,
        _ => id.iter().try_fold(0u64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_plain_set_of_strings() {
        let ids = [
            "5",
            "7",
            "7",
            "6",
            "6",
            "5",
            "9",
            "8",
            "08",
            "8",
            "0",
            "0",
            "x",
            "x",
            "18446744073709551615",
            "99999999999999999999",
            "99999999999999999999",
            "",
            "",
        ];
        let mut seen = SeenIds::default();
        let mut plain = std::collections::HashSet::new();
        for id in ids {
            assert_eq!(seen.insert(id.as_bytes()), plain.insert(id), "{id:?}");
        }
    }
}
