//! Writes of many sessions sent as few statements: a transaction that writes the same kinds of
//! rows for many sessions (a batch of window closes, a batch of alarms marked sent) has its
//! writes grouped by statement, and each group sent as one statement: single-row `INSERT`s as
//! one multi-row `INSERT`, single-row `UPDATE`s by key as one `UPDATE` whose assignments are a
//! `CASE` on the key.
//!
//! MariaDB spends about as long on a statement's parsing, opening and locking as on writing a
//! row: with 10,000 windows ending together, some eight single-row statements per window kept
//! it on a full core while the reads waited for CPU.
//!
//! Grouping changes the order of the writes: every write of a group goes where the group's
//! first write was. That is only right for writes no other write of the transaction depends on,
//! which is why a transaction asks for it ([`crate::store::sql::Tx::group_writes`]) and only the
//! batches whose every session is written at most once do.

use std::collections::HashMap;

use super::transaction::inline_mysql;
use crate::store::error::StoreError;
use crate::store::sql::Arg;

/// The most rows one grouped statement writes.
const ROWS_PER_STATEMENT: usize = 200;

/// Appends `writes` to `out` as `;`-terminated statements, grouped as the module says. A write
/// whose form cannot be grouped is sent as it is, in its group's place.
pub(crate) fn render(out: &mut String, writes: &[(String, Vec<Arg>)]) -> Result<(), StoreError> {
    // Each statement text with the writes using it, in the order the texts first came.
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<&[Arg]>> = HashMap::new();
    for (sql, args) in writes {
        groups
            .entry(sql.as_str())
            .or_insert_with(|| {
                order.push(sql.as_str());
                Vec::new()
            })
            .push(args);
    }
    for sql in order {
        let rows = &groups[sql];
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            if chunk.len() > 1 {
                if let Some(form) = Insert::of(sql) {
                    form.render(out, chunk)?;
                    continue;
                }
                // Two writes of one row stay two statements: one `CASE` would keep only one.
                if let Some(form) = Update::of(sql)
                    && distinct_keys(chunk)
                {
                    form.render(out, chunk)?;
                    continue;
                }
            }
            for args in chunk {
                inline_mysql(out, sql, args)?;
                out.push(';');
            }
        }
    }
    Ok(())
}

/// `INSERT … VALUES (<tuple>)`, nothing after the tuple.
struct Insert<'a> {
    head: &'a str,
    tuple: &'a str,
}

impl<'a> Insert<'a> {
    fn of(sql: &'a str) -> Option<Insert<'a>> {
        if !sql.starts_with("INSERT ") {
            return None;
        }
        let at = sql.find(" VALUES (")?;
        let tuple = &sql[at + " VALUES ".len()..];
        // The tuple must be the whole rest: no second tuple, no `ON DUPLICATE KEY`.
        (closing_paren(tuple)? == tuple.len() - 1).then_some(Insert {
            head: &sql[..at + " VALUES ".len()],
            tuple,
        })
    }

    fn render(&self, out: &mut String, rows: &[&[Arg]]) -> Result<(), StoreError> {
        out.push_str(self.head);
        for (i, args) in rows.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            inline_mysql(out, self.tuple, args)?;
        }
        out.push(';');
        Ok(())
    }
}

/// `UPDATE <table> SET <a> = <expr>, … WHERE <key> = ?`: one row by its key.
struct Update<'a> {
    table: &'a str,
    /// Each assignment's column and expression, with how many values the expression takes.
    assignments: Vec<(&'a str, &'a str, usize)>,
    key: &'a str,
}

impl<'a> Update<'a> {
    fn of(sql: &'a str) -> Option<Update<'a>> {
        let rest = sql.strip_prefix("UPDATE ")?;
        let (table, rest) = rest.split_once(" SET ")?;
        if !is_name(table) {
            return None;
        }
        let (sets, key) = rest.rsplit_once(" WHERE ")?;
        let key = key.strip_suffix(" = ?")?;
        if !is_name(key) {
            return None;
        }
        let mut assignments = Vec::new();
        for item in split_top_level(sets)? {
            let (column, expr) = item.split_once(" = ")?;
            let column = column.trim();
            if !is_name(column) {
                return None;
            }
            let expr = expr.trim();
            // Every `?` is a placeholder, as `inline_mysql` takes them (the store's
            // statements quote none).
            assignments.push((column, expr, expr.matches('?').count()));
        }
        Some(Update {
            table,
            assignments,
            key,
        })
    }

    fn render(&self, out: &mut String, rows: &[&[Arg]]) -> Result<(), StoreError> {
        let taken: usize = self.assignments.iter().map(|(_, _, n)| n).sum();
        if rows.iter().any(|args| args.len() != taken + 1) {
            return Err(StoreError::Invalid(format!(
                "wrong number of arguments for the statement UPDATE {} … WHERE {} = ?",
                self.table, self.key
            )));
        }
        out.push_str("UPDATE ");
        out.push_str(self.table);
        out.push_str(" SET ");
        let mut first_arg = 0;
        for (i, (column, expr, n)) in self.assignments.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(column);
            out.push_str(" = ");
            if *n == 0 {
                // The same for every row.
                out.push_str(expr);
            } else {
                out.push_str("CASE ");
                out.push_str(self.key);
                for args in rows {
                    out.push_str(" WHEN ");
                    inline_mysql(out, "?", &args[taken..])?;
                    out.push_str(" THEN (");
                    inline_mysql(out, expr, &args[first_arg..first_arg + n])?;
                    out.push(')');
                }
                out.push_str(" ELSE ");
                out.push_str(column);
                out.push_str(" END");
            }
            first_arg += n;
        }
        out.push_str(" WHERE ");
        out.push_str(self.key);
        out.push_str(" IN (");
        for (i, args) in rows.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            inline_mysql(out, "?", &args[taken..])?;
        }
        out.push_str(");");
        Ok(())
    }
}

/// Whether the rows' keys (each row's last value) are all different.
fn distinct_keys(rows: &[&[Arg]]) -> bool {
    let keys: Vec<&Arg> = rows.iter().filter_map(|args| args.last()).collect();
    keys.len() == rows.len()
        && keys
            .iter()
            .enumerate()
            .all(|(i, key)| !keys[..i].contains(key))
}

/// A plain or backquoted column or table name.
fn is_name(s: &str) -> bool {
    let bare = s
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .unwrap_or(s);
    !bare.is_empty() && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The characters of `s` outside quoted text (`'…'`, `"…"`, `` `…` ``), with their offsets.
fn unquoted(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    s.char_indices().filter(move |&(_, c)| match quote {
        Some(q) => {
            if c == q {
                quote = None;
            }
            false
        }
        None if matches!(c, '\'' | '"' | '`') => {
            quote = Some(c);
            false
        }
        None => true,
    })
}

/// Where the parenthesis opening `s` is closed; `None` when `s` does not open with one or is
/// unbalanced.
fn closing_paren(s: &str) -> Option<usize> {
    if !s.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in unquoted(s) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` split at the commas outside parentheses and quoted text; `None` when it is unbalanced.
fn split_top_level(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in unquoted(s) {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (depth == 0).then(|| {
        parts.push(&s[start..]);
        parts
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(writes: &[(&str, Vec<Arg>)]) -> String {
        let writes: Vec<(String, Vec<Arg>)> = writes
            .iter()
            .map(|(sql, args)| ((*sql).to_string(), args.clone()))
            .collect();
        let mut out = String::new();
        render(&mut out, &writes).unwrap();
        out
    }

    #[test]
    fn single_row_inserts_of_one_statement_become_one_multi_row_insert_in_the_first_ones_place() {
        let insert = "INSERT INTO r (a, b, phase) VALUES (?, ?, 'FUTURE')";
        let out = rendered(&[
            (insert, vec![1_i64.into(), "x".into()]),
            ("DELETE FROM p WHERE id = ?", vec![9_i64.into()]),
            (insert, vec![2_i64.into(), Arg::Null]),
        ]);
        assert_eq!(
            out,
            "INSERT INTO r (a, b, phase) VALUES (1, _utf8mb4 X'78', 'FUTURE'), (2, NULL, 'FUTURE');\
             DELETE FROM p WHERE id = 9;"
        );
    }

    #[test]
    fn single_row_updates_by_key_become_one_update_with_a_case_per_assignment() {
        let update = "UPDATE s SET w = ?, updated_at = CURRENT_TIMESTAMP, \
                      version = CASE WHEN version = ? THEN ? ELSE 0 END WHERE id = ?";
        let out = rendered(&[
            (
                update,
                vec![10_i64.into(), 1_i64.into(), 2_i64.into(), 7_i64.into()],
            ),
            (
                update,
                vec![20_i64.into(), 4_i64.into(), 5_i64.into(), 8_i64.into()],
            ),
        ]);
        assert_eq!(
            out,
            "UPDATE s SET w = CASE id WHEN 7 THEN (10) WHEN 8 THEN (20) ELSE w END, \
             updated_at = CURRENT_TIMESTAMP, \
             version = CASE id WHEN 7 THEN (CASE WHEN version = 1 THEN 2 ELSE 0 END) \
             WHEN 8 THEN (CASE WHEN version = 4 THEN 5 ELSE 0 END) ELSE version END \
             WHERE id IN (7, 8);"
        );
    }

    #[test]
    fn a_lone_write_and_forms_that_cannot_be_grouped_are_sent_as_they_are() {
        let upsert = "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = a + 1";
        let two_keys = "UPDATE t SET a = ? WHERE x = ? AND y = ?";
        let out = rendered(&[
            ("INSERT INTO t (a) VALUES (?)", vec![1_i64.into()]),
            (upsert, vec![1_i64.into()]),
            (upsert, vec![2_i64.into()]),
            (two_keys, vec![1_i64.into(), 2_i64.into(), 3_i64.into()]),
            (two_keys, vec![4_i64.into(), 5_i64.into(), 6_i64.into()]),
        ]);
        assert_eq!(
            out,
            "INSERT INTO t (a) VALUES (1);\
             INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1;\
             INSERT INTO t (a) VALUES (2) ON DUPLICATE KEY UPDATE a = a + 1;\
             UPDATE t SET a = 1 WHERE x = 2 AND y = 3;\
             UPDATE t SET a = 4 WHERE x = 5 AND y = 6;"
        );
    }

    #[test]
    fn quoted_text_with_commas_and_parentheses_stays_whole() {
        let update = "UPDATE a SET state = 'sent, (really)', n = ?, who = NULL WHERE id = ?";
        let out = rendered(&[
            (update, vec![1_i64.into(), 7_i64.into()]),
            (update, vec![2_i64.into(), 8_i64.into()]),
        ]);
        assert_eq!(
            out,
            "UPDATE a SET state = 'sent, (really)', n = CASE id WHEN 7 THEN (1) WHEN 8 THEN (2) \
             ELSE n END, who = NULL WHERE id IN (7, 8);"
        );
    }

    #[test]
    fn two_updates_of_one_row_stay_two_statements() {
        let update = "UPDATE t SET a = ? WHERE id = ?";
        let out = rendered(&[
            (update, vec![1_i64.into(), 7_i64.into()]),
            (update, vec![2_i64.into(), 7_i64.into()]),
        ]);
        assert_eq!(
            out,
            "UPDATE t SET a = 1 WHERE id = 7;UPDATE t SET a = 2 WHERE id = 7;"
        );
    }

    #[test]
    fn a_group_larger_than_a_statement_takes_is_split() {
        let insert = "INSERT INTO t (a) VALUES (?)";
        let writes: Vec<(&str, Vec<Arg>)> =
            (0..450_i64).map(|i| (insert, vec![i.into()])).collect();
        let out = rendered(&writes);
        assert_eq!(out.matches("INSERT INTO").count(), 3);
        assert!(out.ends_with("(448), (449);"), "{out}");
    }
}
