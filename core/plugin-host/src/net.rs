//! Network facts shared by everything that connects out on a tenant's behalf (sign-in
//! providers, plugins): which addresses count as public.

/// Whether `ip` is a public unicast address: not loopback, private, link-local (cloud metadata
/// lives there), carrier-grade NAT, documentation, multicast or reserved.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Checks that every address `host` resolves to is public: the reason it is refused otherwise.
pub async fn resolves_publicly(host: &str, port: u16) -> Result<(), &'static str> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| "its host name does not resolve")?;
    let mut any = false;
    for address in addresses {
        if !is_public(address.ip()) {
            return Err("it points to a private or local address");
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err("its host name does not resolve")
    }
}
