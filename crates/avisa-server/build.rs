//! Precompresses the phone app's and the console's files (brotli and gzip)
//! and stamps the app's version into its service worker, so a reopen costs
//! no more than the worker's own check and the first load is as small as
//! it can be. Writes `$OUT_DIR/assets.rs`, which `src/web.rs` includes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// (URL path, file under web/, content type): the app first, then the
/// console.
const APP: &[(&str, &str, &str)] = &[
    ("/", "app/index.html", "text/html; charset=utf-8"),
    ("/app.css", "app/app.css", "text/css; charset=utf-8"),
    ("/app.js", "app/app.js", "text/javascript; charset=utf-8"),
    ("/i18n.js", "app/i18n.js", "text/javascript; charset=utf-8"),
    ("/sms.js", "app/sms.js", "text/javascript; charset=utf-8"),
    (
        "/store.js",
        "app/store.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/countries.js",
        "app/countries.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/checkins.js",
        "app/checkins.js",
        "text/javascript; charset=utf-8",
    ),
    ("/live.js", "app/live.js", "text/javascript; charset=utf-8"),
    (
        "/history.js",
        "app/history.js",
        "text/javascript; charset=utf-8",
    ),
    ("/pow.js", "app/pow.js", "text/javascript; charset=utf-8"),
    (
        "/settings.js",
        "app/settings.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/locator.js",
        "app/locator.js",
        "text/javascript; charset=utf-8",
    ),
    ("/sw.js", "app/sw.js", "text/javascript; charset=utf-8"),
    (
        "/manifest.webmanifest",
        "app/manifest.webmanifest",
        "application/manifest+json",
    ),
    ("/icon.svg", "app/icon.svg", "image/svg+xml"),
    ("/icon-192.png", "app/icon-192.png", "image/png"),
    ("/icon-512.png", "app/icon-512.png", "image/png"),
];

const CONSOLE: &[(&str, &str, &str)] = &[
    ("/console", "console/index.html", "text/html; charset=utf-8"),
    (
        "/console/console.js",
        "console/console.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/console/console.css",
        "console/console.css",
        "text/css; charset=utf-8",
    ),
    // The API reference, drawn from /api/openapi.json (nothing kept by hand).
    (
        "/console/api",
        "console/api.html",
        "text/html; charset=utf-8",
    ),
    (
        "/console/api.js",
        "console/api.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/console/api.css",
        "console/api.css",
        "text/css; charset=utf-8",
    ),
    (
        "/console/vendor/leaflet/leaflet.js",
        "console/vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/console/vendor/leaflet/leaflet.css",
        "console/vendor/leaflet/leaflet.css",
        "text/css; charset=utf-8",
    ),
    // The base map when no tile server is configured: US states and
    // counties, Mexico's outline; loaded only by a case's map.
    (
        "/console/vendor/topojson/topojson-client.min.js",
        "console/vendor/topojson/topojson-client.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/console/vendor/atlas/us-counties-10m.json",
        "console/vendor/atlas/us-counties-10m.json",
        "application/json",
    ),
    (
        "/console/vendor/atlas/mexico-50m.geojson",
        "console/vendor/atlas/mexico-50m.geojson",
        "application/geo+json",
    ),
];

/// What the service worker's source says where the version goes.
const VERSION_MARK: &str = "__AVISA_SHELL_VERSION__";

/// FNV-1a, 64 bits: enough to tell one version of the files from another.
fn fnv(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    out.write_all(bytes).expect("gzip");
    out.finish().expect("gzip")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("brotli");
    out
}

/// A script without its comment lines (the comments are for whoever reads
/// the source; the phone on a 2G connection pays for every byte). Only
/// whole lines that start with `//` go, never one inside a template string.
fn without_comment_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_template = false;
    for line in text.lines() {
        if !in_template && line.trim_start().starts_with("//") {
            continue;
        }
        if line.matches('`').count() % 2 == 1 {
            in_template = !in_template;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes a file's three encodings to `out` and its table entry to `rs`.
fn entry(rs: &mut String, out: &Path, index: usize, path: &str, kind: &str, bytes: &[u8]) {
    let name = format!("asset-{index}");
    let raw = out.join(&name);
    std::fs::write(&raw, bytes).expect("write");
    // Images are compressed already: only text is worth compressing.
    let text = kind.starts_with("text/") || kind.contains("json") || kind.contains("svg");
    let (gz, br) = if text {
        let gz = out.join(format!("{name}.gz"));
        let br = out.join(format!("{name}.br"));
        std::fs::write(&gz, gzip(bytes)).expect("write");
        std::fs::write(&br, brotli(bytes)).expect("write");
        (
            format!("Some(include_bytes!({:?}))", gz.display().to_string()),
            format!("Some(include_bytes!({:?}))", br.display().to_string()),
        )
    } else {
        ("None".into(), "None".into())
    };
    writeln!(
        rs,
        "    Asset {{ path: {path:?}, content_type: {kind:?}, raw: include_bytes!({:?}), gzip: {gz}, brotli: {br}, etag: \"\\\"{:016x}\\\"\" }},",
        raw.display().to_string(),
        fnv(bytes, 0xcbf2_9ce4_8422_2325),
    )
    .expect("write");
}

fn main() {
    let web =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    println!("cargo:rerun-if-changed={}", web.join("app").display());
    println!("cargo:rerun-if-changed={}", web.join("console").display());
    let read = |file: &str| {
        let path = web.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // The app's version: every file of its shell but the worker itself.
    let mut version = 0xcbf2_9ce4_8422_2325_u64;
    for (path, file, _) in APP {
        if *path != "/sw.js" {
            version = fnv(&read(file), version);
        }
    }
    let version = format!("{version:016x}");
    let mut rs = String::from("/// The phone app's files (generated by build.rs).\n");
    writeln!(rs, "pub const APP_VERSION: &str = {version:?};").expect("write");
    rs.push_str("const ASSETS: &[Asset] = &[\n");
    for (i, (path, file, kind)) in APP.iter().enumerate() {
        let mut bytes = read(file);
        if kind.starts_with("text/javascript") {
            let text = String::from_utf8(bytes).expect("scripts are UTF-8");
            bytes = without_comment_lines(&text).into_bytes();
        }
        if *path == "/sw.js" {
            let text = String::from_utf8(bytes).expect("sw.js is UTF-8");
            assert!(text.contains(VERSION_MARK), "sw.js lacks {VERSION_MARK}");
            bytes = text.replace(VERSION_MARK, &version).into_bytes();
        }
        entry(&mut rs, &out, i, path, kind, &bytes);
    }
    rs.push_str("];\n/// The console's files (generated by build.rs).\nconst CONSOLE_ASSETS: &[Asset] = &[\n");
    for (i, (path, file, kind)) in CONSOLE.iter().enumerate() {
        entry(&mut rs, &out, APP.len() + i, path, kind, &read(file));
    }
    rs.push_str("];\n");
    std::fs::write(out.join("assets.rs"), rs).expect("write assets.rs");
}
