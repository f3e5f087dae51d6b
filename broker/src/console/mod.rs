//! The web console at `/console`: a page, a script and a style sheet built into the
//! binary, so it works with no network and no other server. It reads only the public
//! v1 API (from the browser), so it holds no state of its own.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /console`.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /console/{file}`.
pub async fn file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "" | "index.html" => asset(INDEX, "text/html; charset=utf-8"),
        "app.js" => asset(APP, "text/javascript; charset=utf-8"),
        "style.css" => asset(STYLE, "text/css; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}
