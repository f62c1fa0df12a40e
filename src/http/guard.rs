//! What keeps other web pages from talking to the service: it listens on loopback by default,
//! where any page a browser on the same machine opens could otherwise post to it. Its only
//! browser pages are its own dashboard's.
//!
//! - A request with an `Origin` header other than the service's own is refused with 403.
//!   Browsers send `Origin` on every cross-origin request (and on every `POST`), so a page can
//!   neither forge an event nor read an answer.
//! - A `POST` must declare `Content-Type: application/json` (415 otherwise): a page can send a
//!   form or `text/plain` body without asking first (a CORS "simple" request), but not JSON.
//!   The dashboard's sign-in and sign-out forms ([`FORM_ROUTES`]) are the exception: they take
//!   `application/x-www-form-urlencoded` (or no body type), and only with no `Origin` or the
//!   service's own.
//! - A body over the limit is answered with the usual JSON error naming `body` and the limit.

use axum::extract::Request;
use axum::http::uri::{Authority, Uri};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The largest request body taken, in bytes.
pub const BODY_LIMIT: usize = 1 << 20;

/// Refuses requests from foreign web pages and `POST`s that are not JSON.
pub async fn refuse_browsers(request: Request, next: Next) -> Result<Response, ApiError> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !is_same_origin(&origin, headers) {
            return Err(ApiError::foreign_origin(&origin));
        }
    }
    if request.method() == Method::POST {
        let content_type = headers.get(header::CONTENT_TYPE);
        // A form of the service's own pages, or no body type at all (a sign-out posts none).
        let form_allowed = FORM_ROUTES.contains(&request.uri().path())
            && content_type.is_none_or(|v| is_form(v.as_bytes()));
        if !form_allowed && !content_type.is_some_and(|v| is_json(v.as_bytes())) {
            let given = content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            return Err(ApiError::not_json(given.as_deref()));
        }
    }
    Ok(next.run(request).await)
}

/// Turns the plain-text 413 of the body limit into the API's JSON error.
pub async fn json_body_too_large(response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::body_too_large(BODY_LIMIT).into_response();
    }
    response
}

/// The routes whose `POST` is a form of the service's own pages.
pub const FORM_ROUTES: [&str; 2] = ["/sign-in", "/sign-out"];

/// `application/x-www-form-urlencoded`, with any parameters, in any case.
fn is_form(content_type: &[u8]) -> bool {
    essence_is(content_type, "application/x-www-form-urlencoded")
}

/// `application/json`, with any parameters (`; charset=utf-8`), in any case.
fn is_json(content_type: &[u8]) -> bool {
    essence_is(content_type, "application/json")
}

/// Whether the media type of `content_type`, without its parameters, is `media_type`.
fn essence_is(content_type: &[u8], media_type: &str) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(media_type)
}

/// Whether `origin` is the request's own `Host` (host and port) over `http` or `https`: a page
/// served by this very service (its dashboard, directly or through a TLS proxy on the same
/// host and port), since no other server can listen on that host and port.
fn is_same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
    else {
        return false;
    };
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (origin.scheme_str(), origin.authority()) else {
        return false;
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        return false;
    };
    origin.path() == "/"
        && authority.as_str().rsplit_once('@').is_none()
        && authority.host().eq_ignore_ascii_case(host.host())
        && authority.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_service_itself_is_same_origin() {
        let own = host("127.0.0.1:8080");
        assert!(is_same_origin("http://127.0.0.1:8080", &own));
        assert!(is_same_origin("HTTP://127.0.0.1:8080", &own));
        assert!(!is_same_origin("http://127.0.0.1:8081", &own));
        assert!(is_same_origin("https://127.0.0.1:8080", &own));
        assert!(!is_same_origin("ftp://127.0.0.1:8080", &own));
        assert!(is_same_origin(
            "https://dash.example",
            &host("dash.example:443")
        ));
        assert!(is_same_origin(
            "https://dash.example",
            &host("dash.example")
        ));
        assert!(!is_same_origin(
            "https://dash.example",
            &host("dash.example:80")
        ));
        assert!(!is_same_origin("http://localhost:8080", &own));
        assert!(!is_same_origin("http://evil.example", &own));
        assert!(!is_same_origin("null", &own));
        assert!(!is_same_origin("http://127.0.0.1:8080", &HeaderMap::new()));
        assert!(is_same_origin("http://localhost", &host("localhost:80")));
        assert!(is_same_origin("http://Localhost:80", &host("localhost")));
    }

    #[test]
    fn json_is_recognised_with_parameters_and_in_any_case() {
        assert!(is_json(b"application/json"));
        assert!(is_json(b"Application/JSON; charset=utf-8"));
        assert!(!is_json(b"text/plain"));
        assert!(!is_json(b"application/jsonx"));
        assert!(!is_json(b"application/x-www-form-urlencoded"));
        assert!(!is_json(b""));
        assert!(is_form(b"application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(!is_form(b"multipart/form-data"));
    }
}
