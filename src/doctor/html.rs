//! Just enough HTML reading for `doctor`: start tags and their attributes (for subresources,
//! links and forms), and cookies from `Set-Cookie`. Lenient: a page that does not parse
//! yields fewer tags, never an error.

/// A start tag: its lower-case name and attributes (names lower-case, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
}

impl Tag {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every start tag in `html`, in order (comments, end tags and text skipped).
pub(crate) fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.find("-->").map_or("", |j| &after[j + 3..]);
            continue;
        }
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if name_len == 0 {
            continue;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        let (attrs, used) = attributes(&rest[name_len..]);
        rest = &rest[name_len + used..];
        out.push(Tag { name, attrs });
    }
    out
}

/// Attributes up to the closing `>`; returns them and the bytes used.
fn attributes(s: &str) -> (Vec<(String, String)>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'>' {
            return (attrs, (i + 1).min(bytes.len()));
        }
        let start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = s[i + 1..].find(q as char).map_or(s.len(), |j| i + 1 + j);
                    value = unescape(&s[i + 1..end]);
                    i = (end + 1).min(s.len());
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && bytes[i] != b'>' && !bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = unescape(&s[start..i]);
                }
            }
        }
        if name.is_empty() {
            i += 1;
            continue;
        }
        attrs.push((name, value));
    }
}

/// The entities URLs and tokens carry in attribute values.
fn unescape(v: &str) -> String {
    v.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
}

/// One `Set-Cookie`, with the attributes `doctor` judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetCookie {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) path: Option<String>,
}

/// Parses one `Set-Cookie` value (RFC 6265 §5.2); `None` without `name=`.
pub(crate) fn set_cookie(v: &str) -> Option<SetCookie> {
    let mut parts = v.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let mut c = SetCookie {
        name: name.trim().to_owned(),
        value: value.trim().to_owned(),
        secure: false,
        http_only: false,
        same_site: None,
        domain: None,
        path: None,
    };
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        let v = v.trim().to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "secure" => c.secure = true,
            "httponly" => c.http_only = true,
            "samesite" => c.same_site = Some(v),
            "domain" => c.domain = Some(v),
            "path" => c.path = Some(v),
            _ => {}
        }
    }
    Some(c)
}

/// RFC 6265 §5.1.3: whether `host` is the cookie's domain or below it.
pub(crate) fn domain_matches(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// RFC 6265 §5.1.4: whether a request for `path` carries a cookie with `cookie_path`.
pub(crate) fn path_matches(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_quoted_attributes_are_read_and_comments_skipped() {
        let t = tags(
            r#"<!-- <img src="http://x/"> --><p>hi</p><IMG SRC='http://a/b.png' alt=x><form method=post action="/post?a=1&amp;b=2"><input type="hidden" name="csrf" value="t0k"></form>"#,
        );
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["p", "img", "form", "input"]);
        assert_eq!(t[1].attr("src"), Some("http://a/b.png"));
        assert_eq!(t[2].attr("action"), Some("/post?a=1&b=2"));
        assert_eq!(t[3].attr("value"), Some("t0k"));
    }

    #[test]
    fn set_cookie_attributes_are_read_case_insensitively() {
        let c = set_cookie("session=abc.def; Domain=.app.test; path=/; HttpOnly; SameSite=Lax")
            .unwrap();
        assert_eq!(c.name, "session");
        assert!(c.http_only && !c.secure);
        assert_eq!(c.same_site.as_deref(), Some("Lax"));
        assert!(domain_matches("www.app.test", c.domain.as_deref().unwrap()));
        assert!(!domain_matches("app.example", "app.test"));
        assert!(path_matches("/app/x", "/app") && !path_matches("/apple", "/app"));
    }
}
