//! Every unknown key in a file at once. `deny_unknown_fields` stops at the first one, which
//! makes fixing a config a loop of one typo per run. When that happens the file is read a
//! second time through a wrapper that sees each struct's field list (serde hands it to
//! `deserialize_struct`), notes every key outside it with its line, skips its value and goes
//! on. The raw types stay the one list of known keys; nothing here repeats them.

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, IntoDeserializer, MapAccess,
    SeqAccess, Visitor,
};
use serde_saphyr::Spanned;

use super::model::Problem;

/// The first key of the map serde-saphyr synthesizes for a `Spanned<T>`: its keys are not
/// the user's, and its `value` is the user's node at the same path.
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

/// Every key of `text` that no field of `T` takes, each with its path, line and a "did you
/// mean" when a known key is close; then the first other error past them (a wrong type), if
/// any.
pub(super) fn unknown_keys<'de, T: Deserialize<'de>>(
    text: &'de str,
) -> (Vec<Problem>, Option<serde_saphyr::Error>) {
    let found = RefCell::new(Vec::new());
    let last_str = RefCell::new(String::new());
    let ctx = Ctx {
        path: String::new(),
        found: &found,
        last_str: &last_str,
    };
    let rest = serde_saphyr::with_deserializer_from_str(text, |de| {
        T::deserialize(Collect { de, ctx }).map(drop)
    });
    (found.into_inner(), rest.err())
}

/// A problem for `key` at `path`, which is not one of `fields`.
fn unknown(path: String, key: &str, line: Option<u64>, fields: &[&str]) -> Problem {
    let close = fields
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f), *f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min();
    let hint = match close {
        Some((_, f)) => format!("did you mean `{f}`?"),
        None => format!("known keys here: {}", fields.join(", ")),
    };
    Problem {
        line,
        key: path,
        message: format!("unknown field `{key}`; {hint}"),
    }
}

fn join(path: &str, key: &str) -> String {
    match path.is_empty() {
        true => key.to_owned(),
        false => format!("{path}.{key}"),
    }
}

/// Where the wrapper is, and where it writes what it finds.
#[derive(Clone)]
struct Ctx<'a> {
    path: String,
    found: &'a RefCell<Vec<Problem>>,
    /// The last string any visitor saw: the key of a plain map, for the path.
    last_str: &'a RefCell<String>,
}

impl<'a> Ctx<'a> {
    fn at(&self, path: String) -> Ctx<'a> {
        Ctx {
            path,
            ..self.clone()
        }
    }
}

/// A deserializer that hands every visitor a [`Wrap`].
struct Collect<'a, D> {
    de: D,
    ctx: Ctx<'a>,
}

/// How a mapping's keys are treated.
#[derive(Clone, Copy)]
enum Keys {
    /// A struct's: anything outside the list is noted and skipped.
    Struct(&'static [&'static str]),
    /// A plain map's (or a hand-written visitor's): passed on, each one named in the path.
    Plain,
}

/// A visitor that wraps whatever it is given (maps, sequences, nested deserializers).
struct Wrap<'a, V> {
    visitor: V,
    ctx: Ctx<'a>,
    keys: Keys,
}

struct Seed<'a, S> {
    seed: S,
    ctx: Ctx<'a>,
}

struct Map<'a, A> {
    map: A,
    ctx: Ctx<'a>,
    keys: Keys,
    /// The path of the value about to be read; `None` for serde-saphyr's own values (a
    /// `Spanned` location), which are passed on untouched.
    next: Option<String>,
    /// Set by the `Spanned` marker: the keys that follow are serde-saphyr's, not the user's.
    spanned: bool,
}

struct Seq<'a, A> {
    seq: A,
    ctx: Ctx<'a>,
    index: usize,
}

impl<'de, 'a, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'a, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Collect { de, ctx: self.ctx })
    }
}

impl<'de, 'a, A: MapAccess<'de>> MapAccess<'de> for Map<'a, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let fields = match self.keys {
            Keys::Struct(fields) => fields,
            Keys::Plain => return self.next_plain_key(seed),
        };
        while let Some(key) = self.map.next_key::<Spanned<String>>()? {
            let key_path = join(&self.ctx.path, &key.value);
            if fields.contains(&key.value.as_str()) {
                self.next = Some(key_path);
                return seed.deserialize(key.value.into_deserializer()).map(Some);
            }
            let line = Some(key.referenced.line()).filter(|l| *l > 0);
            let problem = unknown(key_path, &key.value, line, fields);
            self.ctx.found.borrow_mut().push(problem);
            self.map.next_value::<IgnoredAny>()?;
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.next.take() {
            Some(path) => self.map.next_value_seed(Seed {
                seed,
                ctx: self.ctx.at(path),
            }),
            None => self.map.next_value_seed(seed),
        }
    }
}

impl<'de, A: MapAccess<'de>> Map<'_, A> {
    fn next_plain_key<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.ctx.last_str.borrow_mut().clear();
        let key = self.map.next_key_seed(Seed {
            seed,
            ctx: self.ctx.clone(),
        })?;
        let name = std::mem::take(&mut *self.ctx.last_str.borrow_mut());
        self.spanned |= name == SPANNED_MARKER;
        self.next = match (self.spanned, name.as_str()) {
            (false, _) => Some(join(&self.ctx.path, &name)),
            (true, "value") => Some(self.ctx.path.clone()),
            (true, _) => None,
        };
        Ok(key)
    }
}

impl<'de, 'a, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'a, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let ctx = self.ctx.at(format!("{}[{}]", self.ctx.path, self.index));
        self.index += 1;
        self.seq.next_element_seed(Seed { seed, ctx })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// Forwards `deserialize_*` methods to the inner deserializer with the visitor wrapped.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = Wrap { visitor, ctx: self.ctx, keys: Keys::Plain };
            self.de.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, 'a, D: Deserializer<'de>> Deserializer<'de> for Collect<'a, D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_seq(), deserialize_map(),
        deserialize_identifier(), deserialize_ignored_any(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = Wrap {
            visitor,
            ctx: self.ctx,
            keys: Keys::Struct(fields),
        };
        self.de.deserialize_struct(name, fields, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// Forwards `visit_*` methods that carry a plain value.
macro_rules! forward_values {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, 'a, V: Visitor<'de>> Visitor<'de> for Wrap<'a, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_values! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
        visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>),
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        v.clone_into(&mut self.ctx.last_str.borrow_mut());
        self.visitor.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        v.clone_into(&mut self.ctx.last_str.borrow_mut());
        self.visitor.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        v.clone_into(&mut self.ctx.last_str.borrow_mut());
        self.visitor.visit_string(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Collect { de, ctx: self.ctx })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor
            .visit_newtype_struct(Collect { de, ctx: self.ctx })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Seq {
            seq,
            ctx: self.ctx,
            index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Map {
            map,
            ctx: self.ctx,
            keys: self.keys,
            next: None,
            spanned: false,
        })
    }

    // Enums are passed on unwrapped: the config has none with struct variants.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    #[test]
    fn every_unknown_key_is_found_with_its_path_line_and_a_close_name() {
        let yaml = "timeout: {handshake: 5s}\nlog: {fromat: json}\nsites:\n  - names: [a.test]\n    certificate: {cert: c.pem, key: k.pem}\n    hstss: {max_age: 1d}\n    proxy:\n      - path: /api\n        to: 127.0.0.1:1\n        timeoutz: {connect: 1s}\n";
        let found: Vec<_> = unknown_keys::<RawConfig>(yaml)
            .0
            .into_iter()
            .map(|p| (p.key, p.line, p.message))
            .collect();
        let keys: Vec<_> = found.iter().map(|(k, l, _)| (k.as_str(), *l)).collect();
        assert_eq!(
            keys,
            [
                ("timeout", Some(1)),
                ("log.fromat", Some(2)),
                ("sites[0].hstss", Some(6)),
                ("sites[0].proxy[0].timeoutz", Some(10)),
            ],
            "{found:?}"
        );
        assert!(found[0].2.contains("did you mean `timeouts`?"), "{found:?}");
        assert!(found[2].2.contains("did you mean `hsts`?"), "{found:?}");
    }

    #[test]
    fn a_key_like_no_other_lists_the_known_ones() {
        let (found, _) = unknown_keys::<RawConfig>("sites:\n  - names: [a.test]\n    zzzzzz: 1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("known keys here: names,"),
            "{found:?}"
        );
    }

    #[test]
    fn a_wrong_type_past_the_unknown_keys_is_reported_too() {
        let (found, rest) = unknown_keys::<RawConfig>(
            "sites:\n  - names: [a.test]\n    hstss: {}\n    secure_cookies: [1]\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let rest = rest.expect("the wrong type").to_string();
        assert!(rest.contains("line 4"), "{rest}");
    }

    #[test]
    fn a_clean_file_has_none() {
        let yaml = "tls: {policy: modern}\nsites:\n  - names: [a.test]\n    headers: {X-A: b}\n";
        assert!(unknown_keys::<RawConfig>(yaml).0.is_empty());
    }
}
