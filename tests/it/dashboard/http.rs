//! The sign-in, the API description and a fuzzing run, over HTTP.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::{TOKEN, client, config};
use crate::support::app::{AppOptions, spawn_app};

/// Every route the router serves, as `(method, path)`: what the document must hold.
const ROUTES: [(&str, &str); 13] = [
    ("get", "/"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/ready"),
    ("get", "/robots/{robotId}"),
    ("get", "/robots/{robotId}/compare"),
    ("get", "/sign-in"),
    ("get", "/v1/robots/{robotId}/sessions"),
    ("post", "/internal/v1/status-jobs/messages"),
    ("post", "/internal/v1/status-jobs/robots/{robotId}/events"),
    ("post", "/sign-in"),
    ("post", "/sign-out"),
];

#[tokio::test]
async fn the_document_describes_every_route_and_every_described_route_is_served() {
    let app = spawn_app(AppOptions {
        config: config(None),
        ..AppOptions::default()
    })
    .await;
    let http = client();
    let document: Value = http
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let described: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(described, expected);
    // Each described operation reaches its handler: never the router's own 404 (which names
    // the `path`) nor a 405.
    for (method, path) in &described {
        let url = format!("{}{}", app.base_url, path.replace("{robotId}", "7"));
        let request = match method.as_str() {
            "get" => http.get(url),
            _ => http
                .post(url)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            status != 404 || !body.contains(r#""field":"path""#),
            "{method} {path} is described but not served: {body}"
        );
        // Every error answer has the documented shape.
        if status >= 400 && !body.starts_with('<') {
            let error: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{method} {path}: {status} {body}"));
            assert!(
                error["error"]["reason"].is_string(),
                "{method} {path}: {body}"
            );
        }
    }
    // An undescribed path is the router's own 404, in the same shape.
    let answer = http
        .get(format!("{}/no/such/route", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["field"], "path");
    app.stop().await;
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_holds_no_token_and_signing_out_clears_it() {
    let app = spawn_app(AppOptions {
        config: config(Some(TOKEN)),
        ..AppOptions::default()
    })
    .await;
    let http = client();
    let base = &app.base_url;
    // Not signed in: to the form, with the page asked for.
    let answer = http.get(format!("{base}/robots/7")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/sign-in?next=%2Frobots%2F7");
    let sign_in = |token: &str, next: &str| {
        http.post(format!("{base}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", token), ("next", next)]))
    };
    // A wrong token: the form again, 401, no cookie.
    let answer = sign_in("not-the-token-at-all", "/").send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    assert!(answer.headers().get("set-cookie").is_none());
    // The token: the cookie, and to the page asked for; never to another site.
    let answer = sign_in(TOKEN, "//evil.example/").send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/");
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds a digest: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{base}/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains(r#"data-robot="7""#));
    // Behind a TLS proxy the cookie is Secure.
    let answer = sign_in(TOKEN, "/")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        answer.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    // Another site's page can neither sign in nor out.
    let answer = sign_in(TOKEN, "/")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
    // The form post of the service's own page is taken.
    let answer = sign_in(TOKEN, "/")
        .header("origin", base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    // A form anywhere else is refused as before.
    let answer = http
        .post(format!("{base}/internal/v1/status-jobs/messages"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("a", "b")]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 415);
    // Signing out clears the cookie.
    let answer = http
        .post(format!("{base}/sign-out"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert!(
        answer.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The bearer token opens the dashboard too (a script's way in).
    let page = http
        .get(format!("{base}/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    app.stop().await;
}

// Several threads: the service runs in this process while schemathesis, a child process,
// waits for it on a blocking thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let app = spawn_app(AppOptions {
        config: config(None),
        ..AppOptions::default()
    })
    .await;
    let document = format!("{}/openapi.json", app.base_url);
    // Its cache of failures goes to its working directory: a throw-away one.
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_path_buf();
    let run = move || {
        Command::new("schemathesis")
            .current_dir(cwd)
            .args([
                "run",
                &document,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
                "--phases",
                "coverage,fuzzing",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--workers",
                "1",
                "--no-color",
            ])
            .output()
            .expect("schemathesis runs (scripts/services.sh installs it with pip)")
    };
    let output = tokio::task::spawn_blocking(run).await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(report.contains("passed"), "{report}");
    app.stop().await;
}
