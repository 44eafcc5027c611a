//! US immigration detention facilities, for recording where a person is held.
//!
//! Embedded from `data/ice-facilities.csv` (228 rows from ICE lists obtained
//! under FOIA, 2017–2019, plus five opened in 2025; some have closed since and
//! some newer ones are missing: the console also accepts a typed name).

use std::sync::LazyLock;

use serde::Serialize;

const EMBEDDED_CSV: &str = include_str!("../data/ice-facilities.csv");

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Facility {
    pub name: String,
    pub city: String,
    pub state: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

static FACILITIES: LazyLock<Vec<Facility>> = LazyLock::new(|| {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(EMBEDDED_CSV.as_bytes());
    reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            let field = |i: usize| r.get(i).unwrap_or("").trim().to_string();
            let name = field(0);
            (!name.is_empty()).then(|| Facility {
                name,
                city: field(1),
                state: field(2),
                lat: field(3).parse().ok(),
                lon: field(4).parse().ok(),
            })
        })
        .collect()
});

/// Every facility in the embedded list.
pub fn all() -> &'static [Facility] {
    &FACILITIES
}

/// Facilities whose name, city or state contain every word of `query`
/// (case and accents ignored), at most `limit`.
pub fn search(query: &str, limit: usize) -> Vec<&'static Facility> {
    let words: Vec<String> = crate::states::fold_county(query)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    FACILITIES
        .iter()
        .filter(|f| {
            let hay = crate::states::fold_county(&format!("{} {} {}", f.name, f.city, f.state));
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .take(limit)
        .collect()
}

/// The `n` facilities nearest to a point, with their distance in km
/// (those the list places).
pub fn nearest(lat: f64, lon: f64, n: usize) -> Vec<(&'static Facility, f64)> {
    let mut near: Vec<(&'static Facility, f64)> = FACILITIES
        .iter()
        .filter_map(|f| Some((f, crate::location::haversine_km(lat, lon, f.lat?, f.lon?))))
        .collect();
    near.sort_by(|a, b| a.1.total_cmp(&b.1));
    near.truncate(n);
    near
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_to_los_angeles_are_in_california() {
        let near = nearest(34.0522, -118.2437, 3);
        assert_eq!(near.len(), 3);
        assert!(near.iter().all(|(f, _)| f.state == "CA"), "{near:?}");
        assert!(near.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn the_list_is_embedded_and_searchable() {
        assert_eq!(all().len(), 228);
        let adelanto = search("adelanto", 5);
        assert!(!adelanto.is_empty(), "Adelanto is in the list");
        assert!(adelanto.iter().all(|f| f.state == "CA"));
        assert!(search("krome", 5).iter().any(|f| f.state == "FL"));
        assert!(search("no such facility anywhere", 5).is_empty());
        assert!(search("", 3).len() == 3);
    }
}
