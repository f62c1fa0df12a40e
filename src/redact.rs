//! Keeping credentials out of logs, error messages and pages: URLs are shown with their scheme,
//! host, port and path, but never a password or a query value.

use url::Url;

/// What stands in for a hidden value.
pub const HIDDEN: &str = "***";

/// `url` with the password of its user info and the value of every query parameter replaced
/// by `***` (the user name, scheme, host, port and path stay, so the message still says which
/// server was meant); a fragment is dropped. SQLite URLs keep their query: it only holds open
/// options such as `mode=rwc`. Text that is no URL with a host is shown as it is when it has
/// neither `@` nor `?`, and is hidden whole otherwise: it may be a mistyped URL whose password
/// the parser could not find (`admin:pw@db` parses as scheme `admin`).
pub fn redact_url(url: &str) -> String {
    let may_hold_secrets = url.contains(['@', '?']);
    let mut parsed = match Url::parse(url.trim()) {
        Ok(parsed) if !(parsed.cannot_be_a_base() && may_hold_secrets) => parsed,
        _ if !may_hold_secrets => return url.to_string(),
        _ => return format!("{HIDDEN} (not a URL)"),
    };
    if parsed.password().is_some() {
        // Fails only for URLs without a host, which have no user info either.
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() && parsed.scheme() != "sqlite" {
        let names: Vec<String> = parsed
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        if names.is_empty() {
            parsed.set_query(Some(HIDDEN));
        } else {
            let mut query = parsed.query_pairs_mut();
            query.clear();
            for name in &names {
                query.append_pair(name, HIDDEN);
            }
        }
    }
    parsed.set_fragment(None);
    // `Url` percent-encodes the stand-in in a query; show it as written.
    parsed.as_str().replace("%2A%2A%2A", HIDDEN)
}

/// [`redact_url`] for an optional URL, for `Debug` impls of settings.
pub fn redact_optional_url(url: &Option<String>) -> Option<String> {
    url.as_deref().map(redact_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_password_is_hidden_and_the_server_still_named() {
        assert_eq!(
            redact_url("mysql://admin:TopSecretPw123@db.internal:3306/tinybots"),
            "mysql://admin:***@db.internal:3306/tinybots"
        );
        assert_eq!(
            redact_url("mariadb://admin:p%40ss@127.0.0.1:1/x?ssl-mode=required"),
            "mariadb://admin:***@127.0.0.1:1/x?ssl-mode=***"
        );
    }

    #[test]
    fn query_values_are_hidden_and_their_names_kept() {
        assert_eq!(
            redact_url("https://hooks.example/alarm?key=abc123&sig=zz#frag"),
            "https://hooks.example/alarm?key=***&sig=***"
        );
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example:8443/a/b?token"),
            "https://user:***@hooks.example:8443/a/b?token=***"
        );
    }

    #[test]
    fn a_url_without_secrets_is_unchanged() {
        for url in [
            "http://megazord-events:8080",
            "https://sqs.eu-central-1.amazonaws.com/1234/status-queue",
            "sqlite://azi3-status-jobs.db?mode=rwc",
            "sqlite::memory:",
            "http://user@host/",
        ] {
            let expected = Url::parse(url).unwrap().to_string();
            assert_eq!(redact_url(url), expected);
        }
    }

    #[test]
    fn text_that_is_not_a_url_is_hidden_whole_when_it_may_hold_a_secret() {
        for text in [
            "mysql://admin:TopSecret@db:notaport/x",
            "admin:TopSecret@db/x",
            "db/x?key=TopSecret",
        ] {
            assert_eq!(redact_url(text), "*** (not a URL)");
        }
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("sqs.example/1/queue"), "sqs.example/1/queue");
    }
}
