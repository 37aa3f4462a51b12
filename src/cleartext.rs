//! Connections that would carry a secret in cleartext. A token, key or password sent without
//! TLS can be read by anyone on the path and then used to send or read events as
//! auditbridge, so such a connection is refused unless it stays on this machine
//! (loopback: tests, sidecars) or the user opts in for that one component, which is then
//! logged at every start.

use std::net::IpAddr;

/// A connection that sends a secret without TLS to another machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleartext {
    /// What travels in the clear.
    pub secret: &'static str,
    /// Where it goes.
    pub host: String,
}

impl Cleartext {
    /// The refusal, naming the key to change and the opt-in.
    pub fn refusal(&self, fix: &str, opt_in: &str) -> String {
        format!(
            "sends the {} in cleartext to {}, where anyone on the network path can read it and use it; {fix}, or set {opt_in} = true if that network is trusted (it is then logged at every start)",
            self.secret, self.host
        )
    }
}

/// Whether `host` (a name or an address, IPv6 with or without brackets) is this machine.
pub fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL whose scheme is `plain` (not its TLS twin) and whose host is another machine.
pub fn url(url: &str, plain: &str, secret: &'static str) -> Option<Cleartext> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    (parsed.scheme().eq_ignore_ascii_case(plain) && !loopback(host)).then(|| Cleartext {
        secret,
        host: host.to_string(),
    })
}

/// Kafka: `security.protocol = SASL_PLAINTEXT` to a broker that is another machine.
pub fn kafka(security_protocol: Option<&str>, brokers: &str) -> Option<Cleartext> {
    if !security_protocol.is_some_and(|p| p.eq_ignore_ascii_case("SASL_PLAINTEXT")) {
        return None;
    }
    brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|broker| match broker.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => broker,
        })
        .find(|host| !loopback(host))
        .map(|host| Cleartext {
            secret: "SASL credentials",
            host: host.to_string(),
        })
}

/// An Azure Storage connection string with `DefaultEndpointsProtocol=http` whose blob
/// endpoint is another machine (the account key signs every request; a signed request
/// read off the wire can be replayed).
pub fn storage_connection_string(connection_string: &str) -> Option<Cleartext> {
    let field = |name: &str| crate::secrets::connection_string_field(connection_string, name);
    const SECRET: &str = "storage account's signed requests";
    if let Some(endpoint) = field("BlobEndpoint") {
        return url(endpoint, "http", SECRET);
    }
    let http = field("DefaultEndpointsProtocol").is_some_and(|p| p.eq_ignore_ascii_case("http"));
    http.then(|| Cleartext {
        secret: SECRET,
        host: field("AccountName").map_or_else(
            || "the storage account".into(),
            |account| format!("{account}.blob.core.windows.net"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(loopback(host), "{host}");
        }
        for host in [
            "splunk.example.com",
            "10.0.0.1",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!loopback(host), "{host}");
        }
    }

    #[test]
    fn urls_in_cleartext_to_another_machine() {
        let hec = |u: &str| url(u, "http", "HEC token").map(|c| c.host);
        assert_eq!(
            hec("http://splunk.example.com:8088"),
            Some("splunk.example.com".into())
        );
        assert_eq!(hec("https://splunk.example.com:8088"), None);
        assert_eq!(hec("http://127.0.0.1:8088"), None);
        assert_eq!(hec("http://[::1]:8088"), None);
    }

    #[test]
    fn kafka_sasl_plaintext_to_another_broker() {
        assert_eq!(
            kafka(
                Some("sasl_plaintext"),
                "localhost:9092, kafka-1.internal:9092"
            )
            .map(|c| c.host),
            Some("kafka-1.internal".into())
        );
        assert_eq!(
            kafka(Some("SASL_PLAINTEXT"), "127.0.0.1:9092,[::1]:9093"),
            None
        );
        assert_eq!(kafka(Some("SASL_SSL"), "kafka-1.internal:9092"), None);
        assert_eq!(kafka(None, "kafka-1.internal:9092"), None);
    }

    #[test]
    fn storage_connection_strings_over_http() {
        let host = |s: &str| storage_connection_string(s).map(|c| c.host);
        assert_eq!(
            host("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=k=="),
            Some("acct.blob.core.windows.net".into())
        );
        assert_eq!(
            host("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=k=="),
            None
        );
        assert_eq!(
            host("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1"),
            None
        );
        assert_eq!(
            host("AccountName=a;AccountKey=k==;BlobEndpoint=http://blob.internal:10000/a"),
            Some("blob.internal".into())
        );
    }
}
