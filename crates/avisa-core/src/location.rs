//! A position on the planet, as the phone reports it.

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// A checked position: latitude in [-90, 90], longitude in [-180, 180], and an
/// optional accuracy radius in metres.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    pub accuracy_m: Option<f64>,
}

/// The largest accuracy radius accepted: beyond this a fix says nothing useful.
pub const MAX_ACCURACY_M: f64 = 1_000_000.0;

impl Location {
    pub fn new(lat: f64, lon: f64, accuracy_m: Option<f64>) -> Result<Self, Invalid> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Invalid::new(
                "location.lat",
                "location_invalid",
                "latitude must be between -90 and 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Invalid::new(
                "location.lon",
                "location_invalid",
                "longitude must be between -180 and 180",
            ));
        }
        if let Some(acc) = accuracy_m
            && (!acc.is_finite() || !(0.0..=MAX_ACCURACY_M).contains(&acc))
        {
            return Err(Invalid::new(
                "location.accuracy_m",
                "location_invalid",
                "accuracy must be between 0 and 1,000,000 metres",
            ));
        }
        Ok(Location {
            lat,
            lon,
            accuracy_m,
        })
    }

    /// Re-checks a value that arrived through serde (which only checks types).
    pub fn validated(self) -> Result<Self, Invalid> {
        Location::new(self.lat, self.lon, self.accuracy_m)
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(&self, lat: f64, lon: f64) -> f64 {
        haversine_km(self.lat, self.lon, lat, lon)
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Location(<redacted>)")
    }
}

/// Great-circle distance between two points in kilometres.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_positions_off_the_planet() {
        assert!(Location::new(91.0, 0.0, None).is_err());
        assert!(Location::new(-90.5, 0.0, None).is_err());
        assert!(Location::new(0.0, 180.01, None).is_err());
        assert!(Location::new(f64::NAN, 0.0, None).is_err());
        assert!(Location::new(0.0, f64::INFINITY, None).is_err());
        assert!(Location::new(0.0, 0.0, Some(-1.0)).is_err());
        assert!(Location::new(34.05, -118.25, Some(12.5)).is_ok());
    }

    #[test]
    fn distance_los_angeles_to_chicago() {
        let d = haversine_km(34.0522, -118.2437, 41.8781, -87.6298);
        assert!((d - 2805.0).abs() < 15.0, "{d}");
    }
}
