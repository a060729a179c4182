//! A request's header block, field by field, to an `http::Request` — or the reason it is
//! malformed (RFC 9113 §8.1.1, a stream error that refuses only that request).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};

use super::hpack::{Name, Pseudo};

/// The fields of one header block as they are decoded, checked as they come.
pub(crate) struct Fields {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
    headers: HeaderMap,
    /// The first reason the block is malformed.
    malformed: Option<&'static str>,
    /// The header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (§6.5.2).
    size: usize,
    limit: usize,
}

/// Why a header block is not a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Larger than the header list limit: answered 431.
    TooLarge,
    /// Malformed: the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
}

impl Fields {
    pub(crate) fn new(limit: usize) -> Self {
        Fields {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            protocol: None,
            headers: HeaderMap::new(),
            malformed: None,
            size: 0,
            limit,
        }
    }

    pub(crate) fn push(&mut self, name: Name, value: Bytes) {
        self.size += name.len() + value.len() + 32;
        if self.malformed.is_some() || self.size > self.limit {
            return;
        }
        if let Err(why) = self.add(name, value) {
            self.malformed = Some(why);
        }
    }

    fn add(&mut self, name: Name, value: Bytes) -> Result<(), &'static str> {
        let name = match name {
            Name::Pseudo(p) => return self.pseudo(p, value),
            Name::Field(name) => name,
            Name::Invalid(_) => return Err("a field name that is uppercase or not a token"),
        };
        if is_connection_specific(&name) {
            return Err("a connection-specific field");
        }
        if name == header::TE && value.as_ref() != b"trailers" {
            return Err("TE other than \"trailers\"");
        }
        self.headers.append(name, field_value(value)?);
        Ok(())
    }

    fn pseudo(&mut self, p: Pseudo, value: Bytes) -> Result<(), &'static str> {
        if !self.headers.is_empty() {
            return Err("a pseudo-field after a regular field");
        }
        let slot = match p {
            Pseudo::Method => &mut self.method,
            Pseudo::Scheme => &mut self.scheme,
            Pseudo::Authority => &mut self.authority,
            Pseudo::Path => &mut self.path,
            Pseudo::Protocol => &mut self.protocol,
            Pseudo::Status => return Err(":status in a request"),
        };
        if slot.replace(value).is_some() {
            return Err("a pseudo-field twice");
        }
        Ok(())
    }

    /// The request these fields make. `connect_protocol`: whether extended CONNECT (RFC 8441)
    /// was offered.
    pub(crate) fn into_request(self, connect_protocol: bool) -> Result<Request<()>, Refused> {
        if self.size > self.limit {
            return Err(Refused::TooLarge);
        }
        if let Some(why) = self.malformed {
            return Err(Refused::Malformed(why));
        }
        let method = self.method.ok_or(Refused::Malformed("no :method"))?;
        let method =
            Method::from_bytes(&method).map_err(|_| Refused::Malformed("a bad :method"))?;
        let mut parts = http::uri::Parts::default();
        if let Some(authority) = self.authority {
            parts.authority = Some(
                Authority::from_maybe_shared(authority)
                    .map_err(|_| Refused::Malformed("a bad :authority"))?,
            );
        }
        let extended = self.protocol.is_some();
        if method == Method::CONNECT && !extended {
            // §8.5: only :method and :authority.
            if self.scheme.is_some() || self.path.is_some() || parts.authority.is_none() {
                return Err(Refused::Malformed("CONNECT needs :authority alone"));
            }
        } else {
            if extended && (method != Method::CONNECT || !connect_protocol) {
                return Err(Refused::Malformed(":protocol outside an extended CONNECT"));
            }
            let scheme = self.scheme.ok_or(Refused::Malformed("no :scheme"))?;
            let path = self.path.ok_or(Refused::Malformed("no :path"))?;
            if path.is_empty() {
                return Err(Refused::Malformed("an empty :path"));
            }
            if path.as_ref() == b"*" && method != Method::OPTIONS {
                return Err(Refused::Malformed(":path * outside OPTIONS"));
            }
            parts.scheme = Some(
                Scheme::try_from(scheme.as_ref())
                    .map_err(|_| Refused::Malformed("a bad :scheme"))?,
            );
            parts.path_and_query = Some(
                PathAndQuery::from_maybe_shared(path)
                    .map_err(|_| Refused::Malformed("a bad :path"))?,
            );
        }
        let uri = Uri::from_parts(parts).map_err(|_| Refused::Malformed("a bad target"))?;
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = self.headers;
        if let Some(protocol) = self.protocol {
            let protocol = std::str::from_utf8(&protocol)
                .map_err(|_| Refused::Malformed("a bad :protocol"))?;
            req.extensions_mut()
                .insert(hyper::ext::Protocol::from(protocol));
        }
        Ok(req)
    }

    /// The fields of a trailer block: no pseudo-field may be among them (§8.1).
    pub(crate) fn into_trailers(self) -> Result<HeaderMap, Refused> {
        if self.size > self.limit {
            return Err(Refused::TooLarge);
        }
        if let Some(why) = self.malformed {
            return Err(Refused::Malformed(why));
        }
        let pseudo = [
            &self.method,
            &self.scheme,
            &self.authority,
            &self.path,
            &self.protocol,
        ];
        if pseudo.iter().any(|p| p.is_some()) {
            return Err(Refused::Malformed("a pseudo-field in trailers"));
        }
        Ok(self.headers)
    }
}

/// §8.2.2: fields that describe the connection, not the message, are malformed in HTTP/2.
pub(crate) fn is_connection_specific(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// §8.2.1: no NUL, CR or LF (nor other controls), and no whitespace at either end.
fn field_value(value: Bytes) -> Result<HeaderValue, &'static str> {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if edge(value.first()) || edge(value.last()) {
        return Err("a field value with whitespace at an end");
    }
    HeaderValue::from_maybe_shared(value).map_err(|_| "a control character in a field value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&'static str, &'static str)]) -> Fields {
        let mut f = Fields::new(16 << 10);
        for &(name, value) in list {
            let name = match name.strip_prefix(':') {
                Some(p) => Name::Pseudo(match p {
                    "method" => Pseudo::Method,
                    "scheme" => Pseudo::Scheme,
                    "authority" => Pseudo::Authority,
                    "path" => Pseudo::Path,
                    "protocol" => Pseudo::Protocol,
                    _ => Pseudo::Status,
                }),
                None if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                    Name::Invalid(Bytes::from_static(name.as_bytes()))
                }
                None => Name::Field(HeaderName::from_static(name)),
            };
            f.push(name, Bytes::from_static(value.as_bytes()));
        }
        f
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a.test"),
        (":path", "/x?y=1"),
    ];

    fn malformed(list: &[(&'static str, &'static str)]) -> &'static str {
        match fields(list).into_request(true) {
            Err(Refused::Malformed(why)) => why,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_get_becomes_a_request_with_its_target_and_fields() {
        let mut list = GET.to_vec();
        list.push(("accept", "*/*"));
        let req = fields(&list).into_request(false).expect("request");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "https://a.test/x?y=1");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()["accept"], "*/*");
    }

    #[test]
    fn pseudo_fields_must_come_first_once_and_be_known() {
        let mut late = GET.to_vec();
        late.insert(1, ("accept", "*/*"));
        assert_eq!(malformed(&late), "a pseudo-field after a regular field");
        let mut twice = GET.to_vec();
        twice.insert(0, (":path", "/"));
        assert_eq!(malformed(&twice), "a pseudo-field twice");
        let mut status = GET.to_vec();
        status.insert(0, (":status", "200"));
        assert_eq!(malformed(&status), ":status in a request");
        assert_eq!(malformed(&GET[1..]), "no :method");
        assert_eq!(malformed(&[GET[0], GET[2], GET[3]]), "no :scheme");
        assert_eq!(malformed(&GET[..3]), "no :path");
    }

    #[test]
    fn connection_specific_fields_uppercase_names_and_bad_values_are_malformed() {
        for bad in [
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
        ] {
            let mut list = GET.to_vec();
            list.push(bad);
            malformed(&list);
        }
        let mut te = GET.to_vec();
        te.push(("te", "trailers"));
        fields(&te)
            .into_request(false)
            .expect("TE: trailers is allowed");
        let mut upper = GET.to_vec();
        upper.push(("X-Up", "1"));
        malformed(&upper);
        let mut space = GET.to_vec();
        space.push(("x-a", " padded"));
        assert_eq!(malformed(&space), "a field value with whitespace at an end");
        let mut ctl = GET.to_vec();
        ctl.push(("x-a", "a\rb"));
        assert_eq!(malformed(&ctl), "a control character in a field value");
    }

    #[test]
    fn connect_takes_authority_alone_and_protocol_only_when_offered() {
        let req = fields(&[(":method", "CONNECT"), (":authority", "db:5432")])
            .into_request(false)
            .expect("CONNECT");
        assert_eq!(req.uri().authority().map(|a| a.as_str()), Some("db:5432"));
        malformed(&[(":method", "CONNECT"), (":authority", "a"), (":path", "/")]);
        let ws = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/chat"),
        ];
        let req = fields(&ws).into_request(true).expect("extended CONNECT");
        assert!(req.extensions().get::<hyper::ext::Protocol>().is_some());
        assert!(matches!(
            fields(&ws).into_request(false),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn a_list_over_the_limit_is_too_large_and_trailers_have_no_pseudo_fields() {
        let mut f = Fields::new(100);
        for _ in 0..3 {
            f.push(
                Name::Field(header::ACCEPT),
                Bytes::from_static(b"0123456789"),
            );
        }
        assert_eq!(f.into_request(false).err(), Some(Refused::TooLarge));
        let trailers = fields(&[("grpc-status", "0")])
            .into_trailers()
            .expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert!(matches!(
            fields(&GET).into_trailers(),
            Err(Refused::Malformed(_))
        ));
    }
}
