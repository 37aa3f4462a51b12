//! Location and network owner of the source address, from MaxMind-format databases the
//! user provides (`enrich.geoip_city`, `enrich.geoip_asn`: GeoLite2 or GeoIP2 City and
//! ASN), written as Elastic's `geoip` processor writes them: `source.geo.*`,
//! `source.as.number`, `source.as.organization.name`. Off unless a database is given.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;
use serde_json::json;

use super::Enricher;
use crate::transforms::decode::SourceRecord;
use crate::transforms::normalize::Normalized;

#[derive(Debug, thiserror::Error)]
#[error("cannot open the MaxMind database {path} ({setting}): {source}; give a GeoLite2/GeoIP2 .mmdb file")]
pub struct GeoIpError {
    setting: &'static str,
    path: PathBuf,
    source: maxminddb::MaxMindDbError,
}

/// The parts of a City record Elastic writes, borrowed from the database: only the
/// English names are read, so a lookup allocates no map of every language.
#[derive(Deserialize)]
struct City<'a> {
    #[serde(borrow)]
    city: Option<Named<'a>>,
    #[serde(borrow)]
    continent: Option<Named<'a>>,
    #[serde(borrow)]
    country: Option<Named<'a>>,
    location: Option<Location>,
    #[serde(borrow)]
    subdivisions: Option<Vec<Named<'a>>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Asn<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

fn english<'a>(named: Option<&Named<'a>>) -> Option<&'a str> {
    named?.names.as_ref()?.en
}

pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

fn open(setting: &'static str, path: Option<&Path>) -> Result<Option<Reader<Vec<u8>>>, GeoIpError> {
    path.map(|p| {
        Reader::open_readfile(p).map_err(|source| GeoIpError {
            setting,
            path: p.to_path_buf(),
            source,
        })
    })
    .transpose()
}

impl GeoIp {
    /// Read the databases into memory now: a missing or corrupt file stops the start.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoIpError> {
        Ok(GeoIp {
            city: open("enrich.geoip_city", city)?,
            asn: open("enrich.geoip_asn", asn)?,
        })
    }

    fn city(&self, ip: IpAddr) -> Option<City<'_>> {
        self.city.as_ref()?.lookup(ip).ok()?.decode::<City>().ok()?
    }

    fn asn(&self, ip: IpAddr) -> Option<Asn<'_>> {
        self.asn.as_ref()?.lookup(ip).ok()?.decode::<Asn>().ok()?
    }
}

/// The caller's address, and whether the log already says where it is (an Entra
/// sign-in carries its own location, which is kept).
fn source_ip(source: &SourceRecord) -> Option<(IpAddr, bool)> {
    let (text, located) = match source {
        SourceRecord::CloudTrail(r) => (r.str("sourceIPAddress")?, false),
        SourceRecord::Azure(r) => (
            r.prop_str("ipAddress")
                .or_else(|| r.str("callerIpAddress"))?,
            r.kind().is_sign_in(),
        ),
        SourceRecord::Gcp(r) => (r.caller_ip()?, false),
    };
    Some((text.parse().ok()?, located))
}

impl Enricher for GeoIp {
    fn enrich(&self, record: &mut Normalized) {
        let Some((ip, located)) = source_ip(&record.source) else {
            return;
        };
        let Some(ecs) = record.ecs.as_mut() else {
            return;
        };
        if let Some(c) = self.city(ip).filter(|_| !located) {
            let country = c.country.as_ref();
            let region = c.subdivisions.as_ref().and_then(|s| s.first());
            ecs.put_opt("source.geo.city_name", english(c.city.as_ref()));
            ecs.put_opt("source.geo.continent_name", english(c.continent.as_ref()));
            ecs.put_opt(
                "source.geo.country_iso_code",
                country.and_then(|p| p.iso_code),
            );
            ecs.put_opt("source.geo.country_name", english(country));
            if let Some((lat, lon)) = c.location.and_then(|l| Some((l.latitude?, l.longitude?))) {
                ecs.put("source.geo.location", json!({"lat": lat, "lon": lon}));
            }
            if let (Some(country), Some(region)) = (
                country.and_then(|p| p.iso_code),
                region.and_then(|p| p.iso_code),
            ) {
                ecs.put("source.geo.region_iso_code", format!("{country}-{region}"));
            }
            ecs.put_opt("source.geo.region_name", english(region));
        }
        if let Some(a) = self.asn(ip) {
            ecs.put_opt("source.as.number", a.autonomous_system_number);
            ecs.put_opt(
                "source.as.organization.name",
                a.autonomous_system_organization,
            );
        }
    }
}
