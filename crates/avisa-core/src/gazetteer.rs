//! The nearest town to a point, offline: GeoNames' populated places of
//! 1,000 people or more in the US, Puerto Rico and Mexico (CC BY 4.0,
//! <https://www.geonames.org>), compiled into the binary. A console shows a
//! place name without sending anyone's location to a third party.

use std::collections::HashMap;
use std::sync::LazyLock;

const PLACES_CSV: &str = include_str!("../data/places.csv");

/// Mexico's states by GeoNames' admin1 number.
const MX_STATES: [&str; 32] = [
    "Aguascalientes",
    "Baja California",
    "Baja California Sur",
    "Campeche",
    "Chiapas",
    "Chihuahua",
    "Coahuila",
    "Colima",
    "Ciudad de México",
    "Durango",
    "Guanajuato",
    "Guerrero",
    "Hidalgo",
    "Jalisco",
    "Estado de México",
    "Michoacán",
    "Morelos",
    "Nayarit",
    "Nuevo León",
    "Oaxaca",
    "Puebla",
    "Querétaro",
    "Quintana Roo",
    "San Luis Potosí",
    "Sinaloa",
    "Sonora",
    "Tabasco",
    "Tamaulipas",
    "Tlaxcala",
    "Veracruz",
    "Yucatán",
    "Zacatecas",
];

/// A town of the gazetteer, and how far a point is from it.
#[derive(Debug, Clone, PartialEq)]
pub struct NearestPlace {
    pub name: &'static str,
    /// The state's name ("California", "Jalisco", "Puerto Rico").
    pub admin: &'static str,
    /// ISO 3166-1: "US", "MX" or "PR".
    pub country: &'static str,
    pub distance_km: f64,
}

struct Place {
    name: String,
    country: &'static str,
    admin: &'static str,
    lat: f64,
    lon: f64,
}

/// Places by whole-degree cell, for a look-up that reads a few hundred
/// rows, not all of them.
struct Gazetteer {
    places: Vec<Place>,
    cells: HashMap<(i32, i32), Vec<u32>>,
}

/// Farther than this from every place: no name (open sea, desert).
const MAX_KM: f64 = 60.0;

fn cell(lat: f64, lon: f64) -> (i32, i32) {
    (lat.floor() as i32, lon.floor() as i32)
}

fn admin_name(country: &str, code: &str) -> &'static str {
    match country {
        "US" => crate::states::STATES
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("", |(_, name)| name),
        "MX" => code
            .parse::<usize>()
            .ok()
            .and_then(|n| MX_STATES.get(n.wrapping_sub(1)))
            .copied()
            .unwrap_or(""),
        _ => "Puerto Rico",
    }
}

static GAZETTEER: LazyLock<Gazetteer> = LazyLock::new(|| {
    let mut places = Vec::new();
    let mut cells: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
    let mut reader = csv::Reader::from_reader(PLACES_CSV.as_bytes());
    for record in reader.records().flatten() {
        let (Some(lat), Some(lon)) = (
            record.get(3).and_then(|v| v.parse::<f64>().ok()),
            record.get(4).and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let country: &'static str = match record.get(1) {
            Some("US") => "US",
            Some("MX") => "MX",
            _ => "PR",
        };
        let name = record.get(0).unwrap_or("").to_string();
        cells
            .entry(cell(lat, lon))
            .or_default()
            .push(places.len() as u32);
        places.push(Place {
            name,
            country,
            admin: admin_name(country, record.get(2).unwrap_or("")),
            lat,
            lon,
        });
    }
    Gazetteer { places, cells }
});

/// Distance in km, equirectangular: exact enough within a degree or two.
fn km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let x = (lon2 - lon1).to_radians() * ((lat1 + lat2) / 2.0).to_radians().cos();
    let y = (lat2 - lat1).to_radians();
    (x * x + y * y).sqrt() * 6371.0
}

/// The nearest town within 60 km of the point, if any.
pub fn nearest(lat: f64, lon: f64) -> Option<NearestPlace> {
    if !lat.is_finite() || !lon.is_finite() {
        return None;
    }
    let g: &'static Gazetteer = &GAZETTEER;
    let (cy, cx) = cell(lat, lon);
    let mut best: Option<(f64, &'static Place)> = None;
    for dy in -1..=1 {
        for dx in -1..=1 {
            for &i in g.cells.get(&(cy + dy, cx + dx)).into_iter().flatten() {
                let p = &g.places[i as usize];
                let d = km(lat, lon, p.lat, p.lon);
                if best.is_none_or(|(b, _)| d < b) {
                    best = Some((d, p));
                }
            }
        }
    }
    best.filter(|(d, _)| *d <= MAX_KM)
        .map(|(d, p)| NearestPlace {
            name: p.name.as_str(),
            admin: p.admin,
            country: p.country,
            distance_km: d,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_town_a_point_is_in() {
        let la = nearest(34.0522, -118.2437).expect("Los Angeles");
        assert_eq!(
            (la.name, la.admin, la.country),
            ("Los Angeles", "California", "US")
        );
        assert!(la.distance_km < 1.0, "{la:?}");
        let gdl = nearest(20.6767, -103.3475).expect("Guadalajara");
        assert_eq!((gdl.name, gdl.admin), ("Guadalajara", "Jalisco"));
        let sj = nearest(18.4655, -66.1057).expect("San Juan");
        assert_eq!(sj.admin, "Puerto Rico");
        // The middle of the Pacific has no town.
        assert_eq!(nearest(20.0, -140.0), None);
        assert_eq!(nearest(f64::NAN, 0.0), None);
    }

    #[test]
    fn every_place_has_a_name_and_a_state() {
        let g = &*GAZETTEER;
        assert!(g.places.len() > 25_000, "{}", g.places.len());
        for p in &g.places {
            assert!(!p.name.is_empty() && !p.admin.is_empty(), "{}", p.name);
        }
    }
}
