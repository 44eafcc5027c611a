//! The phone app, compiled into the binary from `web/app/`, and the public
//! configuration it reads.
//!
//! Plain HTML, CSS and JavaScript modules: no framework, no CDN, nothing
//! loaded from elsewhere (a strict Content-Security-Policy says so), small
//! enough for a 2G connection. The service worker is served from `/` so its
//! scope is the whole app.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use avisa_core::messages::CIAM_PHONE;
use avisa_core::sms::MAX_MESSAGE_SEGMENTS;
use avisa_store::MAX_CONTACTS;

use crate::error::ApiError;
use crate::state::AppState;

/// A file of the app or the console, with its encodings precompressed at
/// build time (`build.rs`; images are served as they are).
struct Asset {
    path: &'static str,
    content_type: &'static str,
    raw: &'static [u8],
    gzip: Option<&'static [u8]>,
    brotli: Option<&'static [u8]>,
    /// A hash of the file, for `If-None-Match`.
    etag: &'static str,
}

// `APP_VERSION`, `ASSETS` (the app) and `CONSOLE_ASSETS`.
include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Every path of the app, for the service worker's list and for tests.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// Every path of the console.
pub fn console_paths() -> impl Iterator<Item = &'static str> {
    CONSOLE_ASSETS.iter().map(|a| a.path)
}

/// The encodings a request accepts, best first, of those we keep.
fn accepted(headers: &HeaderMap) -> (bool, bool) {
    let mut brotli = false;
    let mut gzip = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or("").split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            match name {
                "br" => brotli |= !refused,
                "gzip" => gzip |= !refused,
                _ => {}
            }
        }
    }
    (brotli, gzip)
}

/// The origin of a tile URL template, to allow its images.
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let host = host.replace("{s}", "*");
    Some(format!("{scheme}://{host}"))
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; manifest-src 'self'; worker-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Serves a file of the app or the console, or the JSON 404 for anything
/// else. Any other path under `/console/` is the console's page (its links,
/// such as `/console/alerts/{id}` in a duty SMS, are routes of the page).
pub async fn asset(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::NotFound.into_response();
    }
    let path = if uri.path() == "/index.html" {
        "/"
    } else {
        uri.path()
    };
    let console = path == "/console" || path.starts_with("/console/");
    let found = if console {
        CONSOLE_ASSETS.iter().find(|a| a.path == path).or_else(|| {
            (!path.starts_with("/console/vendor/")
                && !path.ends_with(".js")
                && !path.ends_with(".css"))
            .then_some(&CONSOLE_ASSETS[0])
        })
    } else {
        ASSETS.iter().find(|a| a.path == path)
    };
    let Some(asset) = found else {
        return ApiError::NotFound.into_response();
    };
    let fresh = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim() == asset.etag))
        });
    let (br, gz) = accepted(&request_headers);
    let (body, encoding) = match (asset.brotli, asset.gzip) {
        _ if fresh => (&[][..], None),
        (Some(b), _) if br => (b, Some("br")),
        (_, Some(g)) if gz => (g, Some("gzip")),
        _ => (asset.raw, None),
    };
    let mut response = if fresh {
        axum::http::StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    // Checked on every use (a 304 when unchanged); the app's service worker
    // keeps its own copy, versioned, and answers from it first.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The policy governs documents and workers; a script, a style sheet
    // or an image ignores it, and it would cost every one of them 230 bytes.
    if asset.content_type.starts_with("text/html") || asset.path == "/sw.js" {
        let csp = match (console, tile_origin(&state.config.console.tile_url)) {
            (true, Some(origin)) => HeaderValue::from_str(&CSP.replace(
                "img-src 'self' data:",
                &format!("img-src 'self' data: {origin}"),
            ))
            .unwrap_or_else(|_| HeaderValue::from_static(CSP)),
            _ => HeaderValue::from_static(CSP),
        };
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // The app may ask where the phone is, for its own origin only; the
        // console never; nothing else any page could ask for.
        headers.insert(
            "permissions-policy",
            HeaderValue::from_static(if console {
                "geolocation=(), camera=(), microphone=(), payment=(), usb=(), interest-cohort=()"
            } else {
                "geolocation=(self), camera=(), microphone=(), payment=(), usb=(), interest-cohort=()"
            }),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[derive(Serialize, ToSchema)]
pub struct PublicConfig {
    /// The number to text the keyword to, when the operator set one.
    pub service_number: Option<String>,
    /// The same number as people read it ("+1 213-555-0199").
    pub service_number_display: Option<String>,
    /// The consular network's 24-hour line (CIAM).
    pub ciam_phone: &'static str,
    pub max_contacts: i64,
    pub max_message_segments: usize,
    /// Seconds the app counts down before sending, unless the person changed it.
    pub countdown_seconds: u32,
}

/// What the phone app needs to know about this server.
#[utoipa::path(get, path = "/api/v1/config", tag = "app", responses((status = 200, body = PublicConfig)))]
pub async fn config(State(state): State<AppState>) -> Json<PublicConfig> {
    Json(PublicConfig {
        service_number: Some(state.config.sms.service_number.trim().to_string())
            .filter(|s| !s.is_empty()),
        service_number_display: Some(state.config.sms.service_number.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                avisa_core::PhoneNumber::parse(s)
                    .map(|p| p.international())
                    .unwrap_or_else(|_| s.to_string())
            }),
        ciam_phone: CIAM_PHONE,
        max_contacts: MAX_CONTACTS,
        max_message_segments: MAX_MESSAGE_SEGMENTS,
        countdown_seconds: 5,
    })
}

/// The app's public configuration route, with its OpenAPI operation (the
/// static files are the router's fallback, [`asset`]).
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(config))
}

#[cfg(test)]
mod tests {
    /// The app's country list (`web/app/countries.js`) offers only countries
    /// the server reads numbers in, and México and the US among them.
    #[test]
    fn the_apps_countries_are_the_servers() {
        let js = include_str!("../../../web/app/countries.js");
        let list = js
            .split("export const CODES = '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("CODES in countries.js");
        let codes: Vec<&str> = list.split(' ').collect();
        assert!(codes.len() > 200, "{} countries", codes.len());
        for code in &codes {
            assert!(
                avisa_core::Country::parse("country", code).is_ok(),
                "{code} is not a country the server knows"
            );
        }
        assert!(codes.contains(&"MX") && codes.contains(&"US"));
    }
}

#[cfg(test)]
mod counter_tests {
    use avisa_core::Language;
    use avisa_core::messages::longest_contact_alert;
    use avisa_core::sms::analyze;

    /// The app's estimate (`longestLine` in app.js) counts the same as the
    /// server's 3-SMS limit (`longest_contact_alert`), in both languages.
    #[test]
    fn the_apps_longest_line_counts_as_the_servers() {
        let js = include_str!("../../../web/app/app.js");
        let link = js
            .split("const link = '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .expect("link in app.js");
        let line = |lang: Language| {
            let marker = match lang {
                Language::En => "? `Location: ${link}",
                Language::Es => ": `Ubicacion: ${link}",
            };
            let rest = js.split(marker).nth(1).expect("line in app.js");
            let tail = rest.split('`').next().expect("template end");
            let head = &marker[3..marker.len() - "${link}".len()];
            format!("{head}{link}{tail}")
        };
        for (lang, who) in [
            (Language::Es, "`Avisa: ${shown} pide ayuda:\\n`"),
            (Language::En, "`Avisa: ${shown} needs help:\\n`"),
        ] {
            assert!(js.contains(who), "app.js writes {who} as the server does");
            for text in [
                "Me detuvieron.",
                &"a".repeat(300),
                &"á".repeat(90),
                "Llama a la abogada €",
            ] {
                // The first line, "Avisa: <name> pide ayuda:", as
                // `whoAsks` writes it.
                let who = avisa_core::messages::who_asks("Maria Perez", lang);
                let app = analyze(&format!("{who}\n{text}\n{}", line(lang)));
                let server = analyze(&longest_contact_alert(text, lang, "Maria Perez"));
                assert_eq!(
                    (app.encoding, app.characters, app.segments),
                    (server.encoding, server.characters, server.segments),
                    "{lang:?} {text:?}"
                );
            }
        }
    }
}
