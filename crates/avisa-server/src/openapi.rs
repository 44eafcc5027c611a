//! The OpenAPI document beyond what each handler's `#[utoipa::path]` says:
//! the security schemes, and the refusals every route of a kind can answer
//! whatever its handler does — a JSON body's 400/408/413/415/422, a path id's
//! 404, a device token's 401/403, a console session's 401/403, a query
//! string's 400/422 — added here once, so no handler can forget one and
//! schemathesis (in `.ci/run`) holds the document to what is served.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi, Ref, RefOr, ResponseBuilder};

/// The console's session cookie (set by `POST /api/v1/console/login`).
pub const CONSOLE_SESSION: &str = "console_session";
/// The console's CSRF token, echoed on every change.
pub const CONSOLE_CSRF: &str = "console_csrf";
/// A phone's device token.
pub const DEVICE_TOKEN: &str = "device_token";

/// Completes the document made from the routes.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        DEVICE_TOKEN,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        CONSOLE_SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::console::COOKIE,
            "the console session, from POST /api/v1/console/login",
        ))),
    );
    components.add_security_scheme(
        CONSOLE_CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "the csrf_token of the login's answer, on every change",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                refusals(path, method, op);
            }
        }
    }
}

fn refusals(path: &str, method: &str, op: &mut Operation) {
    let console = path.starts_with("/api/v1/console/") && path != "/api/v1/console/login";
    if console {
        let mut session = SecurityRequirement::new(CONSOLE_SESSION, Vec::<String>::new());
        if method != "GET" {
            session = session.add(CONSOLE_CSRF, Vec::<String>::new());
        }
        op.security = Some(vec![session]);
        add(op, "401", "no console session, or one that ended");
        if method != "GET" {
            add(op, "403", "the X-CSRF-Token header is missing or wrong");
        }
    }
    let device = op.security.as_ref().is_some_and(|s| {
        serde_json::to_value(s)
            .ok()
            .is_some_and(|v| v.to_string().contains(DEVICE_TOKEN))
    });
    if device {
        add(op, "401", "no device token, or one that names no device");
        add(
            op,
            "403",
            "the device is not verified yet, or the PIN's unlock is needed",
        );
    }
    if op.request_body.is_some() {
        add(op, "400", "the body is not well-formed");
        add(
            op,
            "408",
            "the body came slower than the minimum rate, or not in time",
        );
        add(op, "413", "the body is over the size limit");
        add(op, "415", "the body is not of the declared content type");
        add(
            op,
            "422",
            "the body's fields are missing, unknown or invalid",
        );
    }
    let query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| {
            serde_json::to_value(p)
                .ok()
                .is_some_and(|v| v["in"] == "query")
        })
    });
    if query {
        add(op, "400", "the query string is not of the declared shape");
        add(op, "422", "a query parameter's value is invalid");
    }
    if path.contains('{') {
        add(op, "404", "no such resource (or not the caller's)");
    }
    // Whatever reads or writes the store answers 503 `busy` with
    // Retry-After while the database cannot be reached in time.
    if path.starts_with("/api/v1/") || path.starts_with("/hooks/") {
        add(
            op,
            "503",
            "the database cannot be reached for now; try again after Retry-After",
        );
    }
}

/// Documents a refusal with the JSON error shape, unless the handler did.
fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
}
