//! The consulate directory and the routing rule.
//!
//! The directory is the Mexican consular network in the United States (53
//! offices), embedded from `data/consulates.csv` and replaceable by the
//! operator with a file of the same columns. Routing an alert to an office:
//!
//! 1. **With a location** inside the United States (50 states, DC) or Puerto
//!    Rico, decided by an offline reverse geocoder (OpenStreetMap boundaries,
//!    the `country-boundaries` crate): the nearest office by great-circle
//!    distance.
//! 2. **With a location in another country**: [`Route::OutsideCoverage`], never a
//!    wrong consulate.
//! 3. **Without a location**, or with one that falls in no country at all (at sea,
//!    or a fix that drifted off the coast): by the person's home state, in this
//!    order of preference among the offices whose jurisdiction mentions that
//!    state:
//!    a. the office that lists the person's home county (`ST:County`);
//!    b. the office that covers the whole state (`ST`);
//!    c. a consulado general that covers the rest of the state (`ST:partial`);
//!    d. any consulado general with part of the state;
//!    e. any office with the rest of the state, then any office at all.
//!
//!    Ties go to the office listed first in the directory. Large states
//!    shared by several offices (Texas, California) therefore resolve coarsely
//!    without a county: a county in the profile, or a location, makes it exact.

use std::collections::HashSet;
use std::sync::LazyLock;

use country_boundaries::{BOUNDARIES_ODBL_360X180, CountryBoundaries, LatLon};
use serde::Serialize;

use crate::location::haversine_km;
use crate::states;

/// The directory compiled into the binary.
pub const EMBEDDED_CSV: &str = include_str!("../../data/consulates.csv");

const COLUMNS: [&str; 11] = [
    "id",
    "name_es",
    "kind",
    "city",
    "state",
    "address",
    "phone",
    "lat",
    "lon",
    "jurisdiction",
    "source",
];

/// What kind of office a consulate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficeKind {
    ConsuladoGeneral,
    ConsuladoDeCarrera,
    SeccionConsular,
}

impl OfficeKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "consulado_general" => Some(Self::ConsuladoGeneral),
            "consulado_de_carrera" => Some(Self::ConsuladoDeCarrera),
            "seccion_consular" => Some(Self::SeccionConsular),
            _ => None,
        }
    }
}

/// One entry of an office's jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jurisdiction {
    /// `ST`: the whole state.
    State(String),
    /// `ST:County`: one county, kept folded for comparison.
    County { state: String, county: String },
    /// `ST:partial`: further counties of the state not listed.
    RestOfState(String),
}

impl Jurisdiction {
    fn state(&self) -> &str {
        match self {
            Jurisdiction::State(s) | Jurisdiction::RestOfState(s) => s,
            Jurisdiction::County { state, .. } => state,
        }
    }
}

/// One consular office.
#[derive(Debug, Clone, Serialize)]
pub struct Consulate {
    pub id: String,
    pub name: String,
    pub kind: OfficeKind,
    pub city: String,
    pub state: String,
    pub address: String,
    /// The main switchboard, when known. Never a target for alert SMS.
    pub phone: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Three letters staff say on the phone, the start of each case number
    /// ("LAX-2026-0042"); unique in the directory.
    pub case_code: String,
    #[serde(skip)]
    pub jurisdiction: Vec<Jurisdiction>,
}

/// A refused directory file, with the line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consulate directory, line {line}: {reason}")]
pub struct DirectoryError {
    pub line: u64,
    pub reason: String,
}

/// Why an alert went to the office it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteBasis {
    /// The nearest office to the alert's location.
    Nearest,
    /// The office listing the person's home county.
    HomeCounty,
    /// The office chosen for the person's home state.
    HomeState,
}

/// The outcome of routing.
#[derive(Debug, Clone, PartialEq)]
pub enum Route<'a> {
    Office {
        office: &'a Consulate,
        /// Great-circle distance from the alert's location, when there is one.
        distance_km: Option<f64>,
        basis: RouteBasis,
    },
    /// A place in the United States that no office's jurisdiction covers
    /// (Guam, the Northern Marianas, American Samoa, or a home state no
    /// office lists): the 24-hour centre, CIAM, has the alert.
    Ciam,
    /// The location is in a country the directory does not serve (ISO code
    /// when known).
    OutsideCoverage { country: Option<String> },
    /// No location, and no home state that any office covers.
    Unroutable,
}

impl PartialEq for Consulate {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// Where a point is, by the offline reverse geocoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 code ("US", "MX", "PR"), if on land or in territorial waters.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision ("US-CA"), when the data has one.
    pub subdivision: Option<String>,
}

static BOUNDARIES: LazyLock<Option<CountryBoundaries>> =
    LazyLock::new(|| CountryBoundaries::from_reader(BOUNDARIES_ODBL_360X180).ok());

/// Reverse-geocodes a point offline.
pub fn place_of(lat: f64, lon: f64) -> Place {
    let ids = match (BOUNDARIES.as_ref(), LatLon::new(lat, lon)) {
        (Some(b), Ok(p)) => b.ids(p).into_iter().map(str::to_string).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let country = ids.iter().find(|id| !id.contains('-')).cloned();
    let subdivision = ids.iter().find(|id| id.contains('-')).cloned();
    Place {
        country,
        subdivision,
    }
}

/// Whether a place is inside the area the directory serves: the states,
/// DC, Puerto Rico and the US Virgin Islands (San Juan's jurisdiction, and
/// its nearest office).
fn is_covered(place: &Place) -> bool {
    matches!(
        place.country.as_deref(),
        Some("US") | Some("PR") | Some("VI")
    ) || matches!(place.subdivision.as_deref(), Some("US-PR") | Some("US-VI"))
}

/// Whether a place is a US territory no office covers: the 24-hour centre
/// has its alerts ("outside coverage" would tell a person in Guam that no
/// one has them).
fn is_us_without_office(place: &Place) -> bool {
    const TERRITORIES: [&str; 4] = ["GU", "MP", "AS", "UM"];
    place
        .country
        .as_deref()
        .is_some_and(|c| TERRITORIES.contains(&c))
        || place
            .subdivision
            .as_deref()
            .and_then(|s| s.strip_prefix("US-"))
            .is_some_and(|s| TERRITORIES.contains(&s))
}

/// The code each embedded office's case numbers start with: airport-like
/// letters staff already know ("LAX", "CHI"). Offices of another directory
/// file get the first letters of their id, made unique.
const CASE_CODES: &[(&str, &str)] = &[
    ("albuquerque", "ABQ"),
    ("atlanta", "ATL"),
    ("austin", "AUS"),
    ("boise", "BOI"),
    ("boston", "BOS"),
    ("brownsville", "BRO"),
    ("calexico", "CXL"),
    ("chicago", "CHI"),
    ("dallas", "DAL"),
    ("del-rio", "DRT"),
    ("denver", "DEN"),
    ("detroit", "DET"),
    ("douglas", "DGL"),
    ("eagle-pass", "EGP"),
    ("el-paso", "ELP"),
    ("filadelfia", "PHL"),
    ("fresno", "FAT"),
    ("houston", "HOU"),
    ("indianapolis", "IND"),
    ("kansas-city", "MKC"),
    ("laredo", "LRD"),
    ("las-vegas", "LAS"),
    ("little-rock", "LIT"),
    ("los-angeles", "LAX"),
    ("mcallen", "MFE"),
    ("miami", "MIA"),
    ("milwaukee", "MKE"),
    ("new-brunswick", "NBR"),
    ("nogales", "NOG"),
    ("nueva-orleans", "MSY"),
    ("nueva-york", "NYC"),
    ("oklahoma", "OKC"),
    ("omaha", "OMA"),
    ("orlando", "ORL"),
    ("oxnard", "OXR"),
    ("phoenix", "PHX"),
    ("portland", "PDX"),
    ("presidio", "PRS"),
    ("raleigh", "RDU"),
    ("sacramento", "SAC"),
    ("saint-paul", "STP"),
    ("salt-lake-city", "SLC"),
    ("san-antonio", "SAT"),
    ("san-bernardino", "SBD"),
    ("san-diego", "SAN"),
    ("san-francisco", "SFO"),
    ("san-jose", "SJC"),
    ("san-juan", "SJU"),
    ("santa-ana", "SNA"),
    ("seattle", "SEA"),
    ("tucson", "TUS"),
    ("washington", "WAS"),
    ("yuma", "YUM"),
];

/// The case-number code of the 24-hour centre's own cases (alerts no
/// office covers).
pub const CIAM_CASE_CODE: &str = "CIAM";

fn assign_case_codes(offices: &mut [Consulate]) {
    let mut taken: HashSet<String> = HashSet::from([CIAM_CASE_CODE.to_string()]);
    for o in offices.iter_mut() {
        if let Some((_, code)) = CASE_CODES.iter().find(|(id, _)| *id == o.id) {
            o.case_code = (*code).to_string();
            taken.insert(o.case_code.clone());
        }
    }
    for o in offices.iter_mut().filter(|o| o.case_code.is_empty()) {
        let letters: String =
            o.id.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect();
        let base: String = letters.chars().take(3).collect();
        let mut code = base.clone();
        let mut n = 2;
        while !taken.insert(code.clone()) {
            code = format!("{base}{n}");
            n += 1;
        }
        o.case_code = code;
    }
}

/// The consulate directory.
#[derive(Debug, Clone)]
pub struct Directory {
    offices: Vec<Consulate>,
}

impl Directory {
    /// The directory compiled into the binary.
    pub fn embedded() -> Directory {
        // The embedded file is checked by a test; failing here is a build defect.
        Directory::from_csv(EMBEDDED_CSV).expect("the embedded consulate directory parses")
    }

    /// Parses a directory file with the columns of `data/consulates.csv`.
    /// Any malformed row refuses the whole file, naming the line.
    pub fn from_csv(text: &str) -> Result<Directory, DirectoryError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| DirectoryError {
            line: 1,
            reason: format!("cannot read the header: {e}"),
        })?;
        let found: Vec<&str> = headers.iter().collect();
        if found != COLUMNS {
            return Err(DirectoryError {
                line: 1,
                reason: format!(
                    "the header must be exactly `{}`, found `{}`",
                    COLUMNS.join(","),
                    found.join(",")
                ),
            });
        }
        let mut offices = Vec::new();
        let mut ids = HashSet::new();
        for record in reader.records() {
            let record = record.map_err(|e| DirectoryError {
                line: e.position().map(|p| line_at(text, p.byte())).unwrap_or(0),
                reason: e.to_string(),
            })?;
            let line = record
                .position()
                .map(|p| line_at(text, p.byte()))
                .unwrap_or(0);
            let err = |reason: String| DirectoryError { line, reason };
            let field = |i: usize| record.get(i).unwrap_or("").trim();
            let id = field(0);
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(err(format!(
                    "id `{id}` must be a non-empty slug of a-z, 0-9 and -"
                )));
            }
            if id == "ciam" {
                return Err(err("id `ciam` is reserved for the 24-hour centre".into()));
            }
            if !ids.insert(id.to_string()) {
                return Err(err(format!("id `{id}` appears twice")));
            }
            let name = field(1);
            if name.is_empty() {
                return Err(err("name_es is empty".into()));
            }
            let kind = OfficeKind::parse(field(2)).ok_or_else(|| {
                err(format!(
                    "kind `{}` must be consulado_general, consulado_de_carrera or seccion_consular",
                    field(2)
                ))
            })?;
            let state = states::normalize(field(4))
                .ok_or_else(|| err(format!("state `{}` is not a US state code", field(4))))?;
            let lat: f64 = field(7)
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && (-90.0..=90.0).contains(v))
                .ok_or_else(|| err(format!("lat `{}` is not a latitude", field(7))))?;
            let lon: f64 = field(8)
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && (-180.0..=180.0).contains(v))
                .ok_or_else(|| err(format!("lon `{}` is not a longitude", field(8))))?;
            let jurisdiction = parse_jurisdiction(field(9)).map_err(err)?;
            let phone = Some(field(6).to_string()).filter(|p| !p.is_empty());
            offices.push(Consulate {
                id: id.to_string(),
                name: name.to_string(),
                kind,
                city: field(3).to_string(),
                state: state.to_string(),
                address: field(5).to_string(),
                phone,
                lat,
                lon,
                case_code: String::new(),
                jurisdiction,
            });
        }
        assign_case_codes(&mut offices);
        if offices.is_empty() {
            return Err(DirectoryError {
                line: 1,
                reason: "the directory has no offices".into(),
            });
        }
        Ok(Directory { offices })
    }

    pub fn offices(&self) -> &[Consulate] {
        &self.offices
    }

    pub fn get(&self, id: &str) -> Option<&Consulate> {
        self.offices.iter().find(|o| o.id == id)
    }

    /// Every office with its distance from a point, nearest first.
    pub fn by_distance(&self, lat: f64, lon: f64) -> Vec<(&Consulate, f64)> {
        let mut all: Vec<_> = self
            .offices
            .iter()
            .map(|o| (o, haversine_km(lat, lon, o.lat, o.lon)))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        all
    }

    /// Whether some office's jurisdiction mentions `state`.
    pub fn covers_state(&self, state: &str) -> bool {
        self.offices
            .iter()
            .any(|o| o.jurisdiction.iter().any(|j| j.state() == state))
    }

    /// Routes an alert (see the module documentation for the rule).
    pub fn route(
        &self,
        location: Option<(f64, f64)>,
        home_state: Option<&str>,
        home_county: Option<&str>,
    ) -> Route<'_> {
        if let Some((lat, lon)) = location {
            let place = place_of(lat, lon);
            if is_covered(&place) {
                let (office, distance) = self.by_distance(lat, lon)[0];
                return Route::Office {
                    office,
                    distance_km: Some(distance),
                    basis: RouteBasis::Nearest,
                };
            }
            if is_us_without_office(&place) {
                return Route::Ciam;
            }
            if place.country.is_some() {
                return Route::OutsideCoverage {
                    country: place.country,
                };
            }
        }
        let Some(state) = home_state.and_then(states::normalize) else {
            return Route::Unroutable;
        };
        match self.route_by_home(state, home_county) {
            Some((office, basis)) => Route::Office {
                office,
                distance_km: location
                    .map(|(lat, lon)| haversine_km(lat, lon, office.lat, office.lon)),
                basis,
            },
            // A state or territory of the US that no office lists.
            None => Route::Ciam,
        }
    }

    /// The office for a home state (and county), by the preference order of
    /// the module documentation.
    pub fn route_by_home(
        &self,
        state: &str,
        county: Option<&str>,
    ) -> Option<(&Consulate, RouteBasis)> {
        let candidates: Vec<&Consulate> = self
            .offices
            .iter()
            .filter(|o| o.jurisdiction.iter().any(|j| j.state() == state))
            .collect();
        if let Some(county) = county.map(states::fold_county).filter(|c| !c.is_empty()) {
            let hit = candidates.iter().find(|o| {
                o.jurisdiction.iter().any(|j| {
                    matches!(j, Jurisdiction::County { state: s, county: c } if s == state && *c == county)
                })
            });
            if let Some(office) = hit {
                return Some((office, RouteBasis::HomeCounty));
            }
        }
        let has = |o: &Consulate, want: &Jurisdiction| o.jurisdiction.contains(want);
        let whole = Jurisdiction::State(state.to_string());
        let rest = Jurisdiction::RestOfState(state.to_string());
        let general = |o: &&&Consulate| o.kind == OfficeKind::ConsuladoGeneral;
        candidates
            .iter()
            .find(|o| has(o, &whole))
            .or_else(|| candidates.iter().filter(general).find(|o| has(o, &rest)))
            .or_else(|| candidates.iter().find(general))
            .or_else(|| candidates.iter().find(|o| has(o, &rest)))
            .or_else(|| candidates.first())
            .map(|o| (*o, RouteBasis::HomeState))
    }
}

/// The 1-based line of a byte offset. (The csv crate's own line count is off
/// by one on CRLF files, such as the reference directory.)
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = (byte as usize).min(bytes.len());
    // On CRLF files a record's offset can point at the '\n' ending the line
    // before it.
    while end < bytes.len() && (bytes[end] == b'\n' || bytes[end] == b'\r') {
        end += 1;
    }
    bytes[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

fn parse_jurisdiction(text: &str) -> Result<Vec<Jurisdiction>, String> {
    let mut entries = Vec::new();
    for raw in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (st, rest) = match raw.split_once(':') {
            Some((st, rest)) => (st.trim(), Some(rest.trim())),
            None => (raw, None),
        };
        let state = states::normalize(st)
            .ok_or_else(|| format!("jurisdiction entry `{raw}`: `{st}` is not a US state code"))?
            .to_string();
        entries.push(match rest {
            None => Jurisdiction::State(state),
            Some("partial") => Jurisdiction::RestOfState(state),
            Some("") => return Err(format!("jurisdiction entry `{raw}` has an empty county")),
            Some(county) => Jurisdiction::County {
                state,
                county: states::fold_county(county),
            },
        });
    }
    if entries.is_empty() {
        return Err("jurisdiction is empty".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
