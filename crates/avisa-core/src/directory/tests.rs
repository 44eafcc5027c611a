//! The routing rule and the directory file, against the embedded data.
use super::*;

fn office_at(dir: &Directory, lat: f64, lon: f64) -> String {
    match dir.route(Some((lat, lon)), None, None) {
        Route::Office { office, .. } => office.id.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn embedded_directory_has_53_offices_covering_every_state() {
    let dir = Directory::embedded();
    assert_eq!(dir.offices().len(), 53);
    // Every state, DC, Puerto Rico and the Virgin Islands by an office; the
    // Pacific territories by the 24-hour centre (below).
    for (code, name) in states::STATES {
        if ["GU", "MP", "AS"].contains(code) {
            assert!(!dir.covers_state(code), "{name}");
            continue;
        }
        assert!(dir.covers_state(code), "{name} is not covered");
    }
}

#[test]
fn pinned_cities_route_to_their_offices() {
    let dir = Directory::embedded();
    let cases = [
        ("downtown Los Angeles", 34.0505, -118.2551, "los-angeles"),
        ("Chicago Loop", 41.8781, -87.6298, "chicago"),
        ("Old San Juan, PR", 18.4655, -66.1057, "san-juan"),
        ("Manhattan", 40.7580, -73.9855, "nueva-york"),
        ("Houston", 29.7604, -95.3698, "houston"),
        ("Dallas", 32.7767, -96.7970, "dallas"),
        ("Phoenix", 33.4484, -112.0740, "phoenix"),
        ("Tucson", 32.2226, -110.9747, "tucson"),
        ("Denver", 39.7392, -104.9903, "denver"),
        ("Atlanta", 33.7490, -84.3880, "atlanta"),
        ("Seattle", 47.6062, -122.3321, "seattle"),
        ("Anchorage, Alaska", 61.2181, -149.9003, "seattle"),
        ("Honolulu", 21.3069, -157.8583, "san-francisco"),
        ("Miami (Coral Gables)", 25.7500, -80.2600, "miami"),
        ("Washington, DC", 38.9072, -77.0369, "washington"),
        ("El Paso", 31.7619, -106.4850, "el-paso"),
        ("Santa Ana", 33.7455, -117.8677, "santa-ana"),
        ("San Diego", 32.7157, -117.1611, "san-diego"),
        ("Raleigh", 35.7796, -78.6382, "raleigh"),
        ("Las Vegas", 36.1699, -115.1398, "las-vegas"),
    ];
    for (place, lat, lon, want) in cases {
        assert_eq!(office_at(&dir, lat, lon), want, "{place}");
    }
}

#[test]
fn locations_abroad_are_outside_coverage() {
    let dir = Directory::embedded();
    for (place, lat, lon, country) in [
        ("Mexico City", 19.4326, -99.1332, "MX"),
        ("Tijuana", 32.5149, -117.0382, "MX"),
        ("Ciudad Juárez", 31.6904, -106.4245, "MX"),
        ("Toronto", 43.6532, -79.3832, "CA"),
        ("Madrid", 40.4168, -3.7038, "ES"),
    ] {
        assert_eq!(
            dir.route(Some((lat, lon)), Some("CA"), None),
            Route::OutsideCoverage {
                country: Some(country.to_string())
            },
            "{place}"
        );
    }
}

/// The US Virgin Islands are in San Juan's jurisdiction: an alert there
/// reaches it, not "outside coverage" (issue 34).
#[test]
fn the_virgin_islands_reach_san_juan() {
    let dir = Directory::embedded();
    for (place, lat, lon) in [
        ("Charlotte Amalie, St Thomas", 18.3419, -64.9307),
        ("Christiansted, St Croix", 17.7466, -64.7032),
    ] {
        assert_eq!(office_at(&dir, lat, lon), "san-juan", "{place}");
    }
}

/// Guam, the Northern Marianas and American Samoa: no office lists them,
/// so the 24-hour centre has their alerts, by location or by home state,
/// never "outside coverage" (issue 34).
#[test]
fn pacific_territories_reach_the_24_hour_centre() {
    let dir = Directory::embedded();
    for (place, lat, lon) in [
        ("Hagåtña, Guam", 13.4757, 144.7489),
        ("Tamuning, Guam", 13.4879, 144.7807),
        ("Saipan", 15.1850, 145.7467),
        ("Pago Pago", -14.2756, -170.7020),
    ] {
        assert_eq!(
            dir.route(Some((lat, lon)), Some("CA"), None),
            Route::Ciam,
            "{place}"
        );
    }
    for state in ["GU", "mp", "AS"] {
        assert_eq!(dir.route(None, Some(state), None), Route::Ciam, "{state}");
    }
    // Every state, DC and territory reaches someone.
    for (code, name) in crate::states::STATES {
        assert!(
            !matches!(
                dir.route(None, Some(code), None),
                Route::Unroutable | Route::OutsideCoverage { .. }
            ),
            "{name}"
        );
    }
}

#[test]
fn at_sea_falls_back_to_the_home_state() {
    let dir = Directory::embedded();
    // The middle of the Pacific: no country.
    let route = dir.route(Some((30.0, -140.0)), Some("IL"), None);
    assert!(
        matches!(route, Route::Office { office, basis: RouteBasis::HomeState, .. } if office.id == "chicago")
    );
}

#[test]
fn home_state_and_county_rules() {
    let dir = Directory::embedded();
    let id =
        |st: &str, county: Option<&str>| dir.route(None, Some(st), county).clone().pipe_office();
    // A state with a single office.
    assert_eq!(id("NV", None), "las-vegas");
    assert_eq!(id("ak", None), "seattle");
    // The county decides where several offices share a state.
    assert_eq!(id("CA", Some("Los Angeles County")), "los-angeles");
    assert_eq!(id("CA", Some("Orange")), "santa-ana");
    assert_eq!(id("TX", Some("Hidalgo")), "mcallen");
    assert_eq!(id("NM", Some("Doña Ana")), "el-paso");
    assert_eq!(id("NM", Some("Dona Ana County")), "el-paso");
    assert_eq!(id("NJ", Some("Camden")), "filadelfia");
    assert_eq!(id("NJ", Some("Middlesex")), "new-brunswick");
    // Whole-state coverage wins over a partial one.
    assert_eq!(id("AL", None), "atlanta");
    assert_eq!(id("IN", None), "chicago");
    // An unknown county falls back to the state rule.
    assert_eq!(id("NY", Some("Nowhere")), "nueva-york");
    assert_eq!(id("TX", None), "austin");
    assert!(matches!(
        dir.route(None, Some("ZZ"), None),
        Route::Unroutable
    ));
    assert!(matches!(dir.route(None, None, None), Route::Unroutable));
}

trait PipeOffice {
    fn pipe_office(self) -> String;
}
impl PipeOffice for Route<'_> {
    fn pipe_office(self) -> String {
        match self {
            Route::Office { office, .. } => office.id.clone(),
            other => format!("{other:?}"),
        }
    }
}

#[test]
fn malformed_files_are_refused_with_line_and_reason() {
    let header = COLUMNS.join(",");
    let good = "a,Consulado A,consulado_general,City,CA,addr,(1) 2,34.0,-118.0,CA,src";
    assert!(Directory::from_csv(&format!("{header}\n{good}\n")).is_ok());
    let cases = [
        ("id,name\n", 1, "header"),
        (&format!("{header}\n"), 1, "no offices"),
        (&format!("{header}\n{good}\n{good}\n"), 3, "appears twice"),
        (
            &format!("{header}\r\n{good}\r\n{good}\r\n"),
            3,
            "appears twice",
        ),
        (
            &format!("{header}\n{}\n", good.replace("34.0", "134.0")),
            2,
            "latitude",
        ),
        (
            &format!("{header}\n{}\n", good.replace("-118.0", "west")),
            2,
            "longitude",
        ),
        (
            &format!(
                "{header}\n{}\n",
                good.replace("consulado_general", "embassy")
            ),
            2,
            "kind",
        ),
        (
            &format!("{header}\n{}\n", good.replace(",CA,src", ",XX:Foo,src")),
            2,
            "not a US state",
        ),
        (
            &format!("{header}\n{}\n", good.replace(",CA,addr", ",ZZ,addr")),
            2,
            "state",
        ),
        (
            &format!("{header}\n{good}\nb,B,consulado_general\n"),
            3,
            "found",
        ),
    ];
    for (text, line, reason) in cases {
        let err = Directory::from_csv(text).expect_err(reason);
        assert_eq!(err.line, line, "{err}");
        assert!(err.reason.contains(reason), "{err}");
    }
}

#[test]
fn every_office_has_its_own_case_code() {
    let d = Directory::embedded();
    let mut seen = std::collections::HashSet::new();
    for o in d.offices() {
        assert_eq!(o.case_code.len(), 3, "{}", o.id);
        assert!(
            o.case_code.chars().all(|c| c.is_ascii_uppercase()),
            "{}",
            o.id
        );
        assert!(
            seen.insert(o.case_code.clone()),
            "{} repeats {}",
            o.id,
            o.case_code
        );
    }
    assert_eq!(d.get("los-angeles").expect("LA").case_code, "LAX");
    // Another directory's offices get letters of their own, never a clash.
    let csv = format!(
        "{}\nsan-x,Consulado X,consulado_general,X,CA,addr,,34,-118,CA,src\nsan-y,Consulado Y,consulado_general,Y,CA,addr,,35,-118,CA:partial,src\n",
        COLUMNS.join(",")
    );
    let other = Directory::from_csv(&csv).expect("parses");
    let codes: Vec<&str> = other
        .offices()
        .iter()
        .map(|o| o.case_code.as_str())
        .collect();
    assert_eq!(codes, ["SAN", "SAN2"]);
}
