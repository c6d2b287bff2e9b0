//! Where a link taken from a response may be followed ([`vet`]).
//!
//! The harness fetches links the target hands it (a job's `output_url`) without the key. A
//! hostile target can point such a link anywhere: at a cloud metadata endpoint on a
//! link-local address, or at a service inside the CI network. So a link is followed only
//! over http(s), never to a link-local, unspecified or multicast address, and to a loopback
//! or private address only when the target itself is on one (a sandbox on the same machine
//! or network). The addresses vetted are the ones connected to, so a second DNS answer
//! cannot move the request elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a link's host may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of place an address is, for following links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A public address: links may go there.
    Public,
    /// Loopback or a private range: only when the target is on one too.
    Internal(&'static str),
    /// Never followed.
    Never(&'static str),
}

/// The kind of place `ip` is.
pub fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Reach {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() {
        Reach::Never("a link-local address (where cloud metadata endpoints live)")
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 {
        Reach::Never("an unspecified, broadcast or multicast address")
    } else if ip.is_loopback() {
        Reach::Internal("a loopback address")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Reach::Internal("a private address")
    } else {
        Reach::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Reach {
    let first = ip.segments()[0];
    if (first & 0xffc0) == 0xfe80 {
        Reach::Never("a link-local address (where cloud metadata endpoints live)")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Reach::Never("an unspecified or multicast address")
    } else if ip.is_loopback() {
        Reach::Internal("a loopback address")
    } else if (first & 0xfe00) == 0xfc00 {
        Reach::Internal("a private (unique local) address")
    } else {
        Reach::Public
    }
}

/// The addresses `url`'s host stands for, resolved with a bound on time.
async fn resolve(url: &url::Url) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => return Ok(vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Ipv6(ip)) => return Ok(vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Domain(name)) => name.to_string(),
        None => return Err("the link has no host".into()),
    };
    let lookup = tokio::net::lookup_host(format!("{host}:{port}"));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(format!("{host} resolves to no address"))
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(error)) => Err(format!("cannot resolve {host}: {error}")),
        Err(_) => Err(format!(
            "resolving {host} took longer than {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

/// True when the target at `base_url` is on a loopback or private address.
pub async fn is_internal_target(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    resolve(&url).await.is_ok_and(|addresses| {
        addresses
            .iter()
            .any(|a| matches!(classify(a.ip()), Reach::Internal(_)))
    })
}

/// The addresses a link to `link` may connect to, or why it must not be followed.
/// `target_is_internal` says whether the target itself is on a loopback or private address.
pub async fn vet(link: &str, target_is_internal: bool) -> Result<Vec<SocketAddr>, String> {
    let url = url::Url::parse(link).map_err(|e| format!("`{link}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https links are followed, not {}:",
            url.scheme()
        ));
    }
    let addresses = resolve(&url).await?;
    let host = url.host_str().unwrap_or_default();
    for address in &addresses {
        match classify(address.ip()) {
            Reach::Public => {}
            Reach::Internal(_) if target_is_internal => {}
            Reach::Internal(what) => {
                return Err(format!(
                    "{host} is {what} ({}), and the target is not on one",
                    address.ip()
                ))
            }
            Reach::Never(what) => {
                return Err(format!("{host} is {what} ({})", address.ip()));
            }
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        for never in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "::",
            "ff02::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(matches!(classify(ip(never)), Reach::Never(_)), "{never}");
        }
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                matches!(classify(ip(internal)), Reach::Internal(_)),
                "{internal}"
            );
        }
        for public in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1"] {
            assert_eq!(classify(ip(public)), Reach::Public, "{public}");
        }
    }

    #[tokio::test]
    async fn links_are_vetted_by_scheme_and_address() {
        let metadata = vet("http://169.254.169.254/latest/meta-data/", true).await;
        assert!(
            metadata.as_ref().unwrap_err().contains("link-local"),
            "{metadata:?}"
        );
        assert!(vet("http://[fe80::1]/x", true).await.is_err());
        let file = vet("file:///etc/passwd", true).await.unwrap_err();
        assert!(file.contains("only http and https"), "{file}");
        // Loopback and private links only when the target is on one.
        assert!(vet("http://127.0.0.1:9/out.webm", true).await.is_ok());
        let outside = vet("http://127.0.0.1:9/out.webm", false).await.unwrap_err();
        assert!(outside.contains("the target is not on one"), "{outside}");
        assert!(vet("http://10.0.0.5/out.webm", false).await.is_err());
        assert_eq!(
            vet("https://93.184.216.34/out.webm", false).await.unwrap(),
            vec![SocketAddr::new(ip("93.184.216.34"), 443)]
        );
    }

    #[tokio::test]
    async fn a_loopback_target_is_internal() {
        assert!(is_internal_target("http://127.0.0.1:8080").await);
        assert!(is_internal_target("http://[::1]:8080").await);
        assert!(!is_internal_target("https://93.184.216.34").await);
        assert!(!is_internal_target("not a url").await);
    }
}
