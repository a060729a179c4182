//! Name lookup for TLS handshakes: exact names first, then `*.parent` wildcards (one label, as
//! in certificates), then the listener's default: always for clients that send no SNI (such as
//! those connecting to an IP address), and for unknown names unless they are rejected.

use std::collections::HashMap;

/// foldhash, not SipHash: asked on every request and handshake, with keys the config chose,
/// so there is no flood of colliding keys to resist.
type Names<T> = HashMap<String, T, foldhash::quality::RandomState>;

#[derive(Debug, Clone)]
pub(crate) struct NameTable<T> {
    exact: Names<T>,
    wildcard: Names<T>,
    default: Option<T>,
    reject_unknown: bool,
}

impl<T: Clone> NameTable<T> {
    /// `reject_unknown`: a name nothing serves finds nothing, instead of the default.
    pub(crate) fn new(reject_unknown: bool) -> Self {
        NameTable {
            exact: Names::default(),
            wildcard: Names::default(),
            default: None,
            reject_unknown,
        }
    }

    /// Adds `names` (lower-case; `*.parent` for wildcards); the first entry added is also
    /// the default, and a name already added keeps its first entry.
    pub(crate) fn insert(&mut self, names: &[String], value: T) {
        for n in names {
            let (table, key) = match n.strip_prefix("*.") {
                Some(parent) => (&mut self.wildcard, parent),
                None => (&mut self.exact, n.as_str()),
            };
            table.entry(key.to_owned()).or_insert_with(|| value.clone());
        }
        self.default.get_or_insert(value);
    }

    /// What serves `sni` (case-insensitive); `None` asks for the default.
    pub(crate) fn get(&self, sni: Option<&str>) -> Option<&T> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        // Names arrive lower-cased from the Host check; SNI may not be.
        let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
            true => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
            false => std::borrow::Cow::Borrowed(name),
        };
        self.exact
            .get(&*name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .or(self.default.as_ref().filter(|_| !self.reject_unknown))
    }
}

impl<T: Clone> Default for NameTable<T> {
    fn default() -> Self {
        NameTable::new(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_beat_wildcards_and_unknown_names_get_the_default_unless_rejected() {
        let mut t = NameTable::new(false);
        t.insert(&["a.test".into(), "*.w.test".into()], 1);
        t.insert(&["x.w.test".into()], 2);
        assert_eq!(t.get(Some("x.w.test")), Some(&2));
        assert_eq!(t.get(Some("Y.W.test")), Some(&1));
        assert_eq!(t.get(None), Some(&1));
        let mut strict = NameTable::new(true);
        strict.insert(&["a.test".into(), "*.w.test".into()], 1);
        assert_eq!(strict.get(Some("b.test")), None);
        assert_eq!(strict.get(Some("a.b.w.test")), None);
        assert_eq!(strict.get(None), Some(&1));
    }
}
