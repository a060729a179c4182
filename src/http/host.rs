//! The host a request is for: one `Host` header (HTTP/1.1) or `:authority` (HTTP/2), which must
//! agree when both are present (RFC 9113 §8.3.1). An HTTP/1.1 absolute-form target
//! (`GET https://a.example/ HTTP/1.1`) names the host itself, and Host is then ignored
//! (RFC 9112 §3.2.2), though it must still be one valid value (§3.2). Lower-cased, port removed.

use http::{Request, Version, header};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    #[error("the request has no Host header")]
    Missing,
    #[error("the request has more than one Host header")]
    Duplicate,
    #[error("the Host header is not a valid host name")]
    Invalid,
    #[error("the Host header and the request target name different hosts")]
    Conflict,
}

pub(crate) fn request_host<B>(req: &Request<B>) -> Result<String, HostError> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let from_header = header
        .map(|v| {
            v.to_str()
                .map_err(|_| HostError::Invalid)
                .and_then(parse_authority)
        })
        .transpose()?;
    let from_uri = req
        .uri()
        .authority()
        .map(|a| parse_authority(a.as_str()))
        .transpose()?;
    match (from_header, from_uri) {
        (_, Some(u)) if req.version() < Version::HTTP_2 => Ok(u),
        (Some(h), Some(u)) if h != u => Err(HostError::Conflict),
        (Some(h), _) => Ok(h),
        (None, Some(u)) => Ok(u),
        (None, None) => Err(HostError::Missing),
    }
}

/// `host[:port]` → lower-case host. User info (`a@b`), empty names and stray characters are
/// refused, so the result can be compared with configured names as is.
pub(crate) fn parse_authority(s: &str) -> Result<String, HostError> {
    // Bytes are searched, not `char`s: this runs on every request.
    if s.as_bytes().contains(&b'@') {
        return Err(HostError::Invalid);
    }
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']').ok_or(HostError::Invalid)?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|_| HostError::Invalid)?;
            (h, after.strip_prefix(':'))
        }
        None => match s.bytes().position(|b| b == b':') {
            Some(colon) => (&s[..colon], Some(&s[colon + 1..])),
            None => (s, None),
        },
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(HostError::Invalid);
    }
    let host = host.trim_end_matches('.');
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':' || b == b'_');
    match valid {
        true => Ok(host.to_ascii_lowercase()),
        false => Err(HostError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(hosts: &[&str], uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn host_header_port_and_case_are_normalised() {
        assert_eq!(
            request_host(&req(&["Example.COM:8443"], "/")),
            Ok("example.com".into())
        );
        assert_eq!(request_host(&req(&["[::1]:8443"], "/")), Ok("::1".into()));
    }

    #[test]
    fn missing_duplicate_and_conflicting_hosts_are_refused() {
        assert_eq!(request_host(&req(&[], "/")), Err(HostError::Missing));
        assert_eq!(
            request_host(&req(&["a.test", "a.test"], "/")),
            Err(HostError::Duplicate)
        );
        let mut h2 = req(&["a.test"], "https://b.test/");
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(request_host(&h2), Err(HostError::Conflict));
    }

    #[test]
    fn an_http1_absolute_form_target_wins_over_host() {
        assert_eq!(
            request_host(&req(&["a.test"], "https://B.test:8443/x")),
            Ok("b.test".into())
        );
        assert_eq!(
            request_host(&req(&["a b"], "https://b.test/")),
            Err(HostError::Invalid),
            "an ignored Host must still be valid"
        );
        assert_eq!(
            request_host(&req(&["a.test", "a.test"], "https://b.test/")),
            Err(HostError::Duplicate)
        );
    }

    #[test]
    fn user_info_and_junk_in_host_are_invalid() {
        for bad in [
            "a.test@evil.example",
            "a.test:80x",
            "a b",
            "",
            ":443",
            "a.test:",
            "[zz]:1",
        ] {
            assert_eq!(parse_authority(bad), Err(HostError::Invalid), "{bad}");
        }
    }
}
