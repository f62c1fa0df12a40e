//! Signing in to the dashboard with the service's token: a form that sets a cookie, so that a
//! person with a browser needs no `Authorization` header.
//!
//! The cookie holds a digest of the token, never the token: changing the token signs everyone
//! out. It is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it) and `Secure` when the request came over TLS (`X-Forwarded-Proto: https` from the proxy
//! in front). The forms post `application/x-www-form-urlencoded`, which the browser guard
//! allows only on these two routes and only from the service's own pages.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::{bearer_credentials, constant_time_eq};
#[allow(unused_imports)]
use super::openapi::ErrorBody;
use super::{ApiError, HttpState};
use crate::replay::page::page;

/// The cookie's name.
pub const COOKIE: &str = "azi3_dashboard";
/// How long a sign-in lasts, in seconds: a working day and a night shift.
const MAX_AGE_SECONDS: u32 = 16 * 60 * 60;

/// The cookie value for `token`.
fn cookie_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"azi3-status-jobs dashboard sign-in\0")
        .chain_update(token.as_bytes())
        .finalize();
    hex::encode(digest)
}

/// The value of cookie `name` in `headers`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the request may see the dashboard: no token is configured, or it carries the
/// sign-in cookie or the bearer token.
pub fn signed_in(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    if let Some(value) = cookie(headers, COOKIE)
        && constant_time_eq(value.as_bytes(), cookie_value(token).as_bytes())
    {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Sends a browser that is not signed in to the sign-in form, with the page it asked for.
pub async fn require_sign_in(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    if signed_in(request.headers(), state.token.as_deref()) {
        return next.run(request).await;
    }
    let asked = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let to = format!("/sign-in?next={}", url_encode(&asked));
    Redirect::to(&to).into_response()
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Where to go after signing in: a path of this service, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

/// The query and form fields of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    /// The page to show after signing in.
    next: Option<String>,
}

/// The fields the sign-in form posts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignInForm {
    /// The service's token.
    token: String,
    /// The page to show after signing in.
    next: Option<String>,
}

/// `GET /sign-in`: the form.
#[utoipa::path(get, path = "/sign-in", tag = "dashboard",
    params(("next" = Option<String>, Query, description = "The page to show after signing in (a path of this service)")),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"), (status = 403, description = "From a web page of another origin", body = ErrorBody)))]
pub async fn form(
    query: Result<Query<SignInQuery>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(query) = query?;
    Ok(Html(sign_in_page(safe_next(query.next.as_deref()), None)))
}

/// `POST /sign-in`: checks the token and sets the cookie (303 to the page asked for), or shows
/// the form again with 401.
#[utoipa::path(post, path = "/sign-in", tag = "dashboard",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed in: the cookie is set; to `next`"),
              (status = 400, description = "The form lacks a field", body = ErrorBody),
              (status = 401, description = "Not the token: the form again", body = String, content_type = "text/html"),
              (status = 403, description = "From a web page of another origin", body = ErrorBody),
              (status = 415, description = "Not a form", body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<HttpState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let next = safe_next(form.next.as_deref()).to_string();
    let Some(token) = state.token.as_deref() else {
        return Redirect::to(&next).into_response();
    };
    if !constant_time_eq(form.token.trim().as_bytes(), token.as_bytes()) {
        tracing::warn!("dashboard sign-in with a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(sign_in_page(
                &next,
                Some("That is not the service's token."),
            )),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECONDS}{}",
        cookie_value(token),
        secure(&headers)
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /sign-out`: forgets the cookie and shows the form.
#[utoipa::path(post, path = "/sign-out", tag = "dashboard",
    responses((status = 303, description = "Signed out: the cookie is cleared; to the sign-in form"),
              (status = 403, description = "From a web page of another origin", body = ErrorBody),
              (status = 415, description = "Neither a form nor JSON", body = ErrorBody)))]
pub async fn sign_out(headers: HeaderMap) -> Response {
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&headers)
    );
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `; Secure` when the request came over TLS to the proxy in front of the service.
fn secure(headers: &HeaderMap) -> &'static str {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if tls { "; Secure" } else { "" }
}

const STYLE: &str = "
form{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:16px;max-width:420px}
label{display:block;margin-bottom:6px} input[type=password]{width:100%;padding:6px;box-sizing:border-box}
button{margin-top:12px;padding:6px 16px} .problem{color:#9b1c1c}
";

/// The sign-in form, which brings the browser to `next` once signed in, with `problem` above it.
fn sign_in_page(next: &str, problem: Option<&str>) -> String {
    let body = html! {
        h1 { "Sign in" }
        div.sub {
            "The dashboard shows the service's robots. Sign in with the service's token ("
            code { "http.token" } " in its configuration)."
        }
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        form method="post" action="/sign-in" {
            label for="token" { "Token" }
            input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
            input type="hidden" name="next" value=(next);
            button type="submit" { "Sign in" }
        }
    };
    page("Sign in — azi3-status-jobs", STYLE, None, body).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_service_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/robots/7?date=2024-03-31")),
            "/robots/7?date=2024-03-31"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_cookie_holds_a_digest_not_the_token() {
        let value = cookie_value("s3cret-token");
        assert_eq!(value.len(), 64);
        assert!(!value.contains("s3cret"));
        assert_ne!(value, cookie_value("another"));
    }

    #[test]
    fn a_request_is_signed_in_by_cookie_or_bearer_and_by_nothing_else() {
        let token = Some("tok");
        let mut headers = HeaderMap::new();
        assert!(!signed_in(&headers, token));
        assert!(signed_in(&headers, None));
        headers.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={}", cookie_value("tok"))
                .parse()
                .unwrap(),
        );
        assert!(signed_in(&headers, token));
        let mut wrong = HeaderMap::new();
        wrong.insert(header::COOKIE, format!("{COOKIE}=tok").parse().unwrap());
        assert!(!signed_in(&wrong, token));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert!(signed_in(&bearer, token));
    }
}
