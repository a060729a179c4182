//! The look of every page candado writes itself (error pages, folder listings, the welcome
//! page, the status page, the LAN onboarding page): one small stylesheet, inline so that a page
//! needs no second request (which could fail too) and works under any path, and the escaping
//! of whatever a page echoes. It imports nothing from the rest of the crate, so that both the
//! HTTP side and `observe` can use it.

/// The stylesheet of candado's own pages, inlined in each one.
pub(crate) const STYLE: &str = include_str!("page.css");

/// A whole page: `title` (escaped here) and `body` (HTML, escaped by the caller) in the shared
/// style.
pub(crate) fn styled_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n",
        escape_html(title)
    )
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_text_cannot_inject_markup() {
        assert_eq!(
            escape_html("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
