//! Reading any JSON into typed views in one pass: a value of the wrong type reads as absent.
//!
//! The planner never trusts its input, and it used to read a `serde_json::Value` with
//! `as_str`, `as_bool`, `as_i64`, `as_array`, `as_object`, so that a field of the wrong
//! type counted as missing. [`Lenient`] keeps exactly that reading while skipping, not
//! building, everything the planner does not read. Duplicate keys are the one thing it
//! refuses: serde keeps the last of two `securityContext`s where Go's decoder merges
//! them into one, so a pod with duplicates in the fields podid reads could be read one
//! way here and another way by the API server.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A view read from JSON of one type; every other type gives [`FromJson::other`].
pub trait FromJson<'de>: Sized {
    /// From a JSON object; the default skips it.
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        drain_map(map)?;
        Ok(Self::other())
    }
    /// From a JSON array; the default skips it.
    fn from_array<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        drain_seq(seq)?;
        Ok(Self::other())
    }
    /// From a JSON string.
    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        Self::other()
    }
    /// From `true` or `false`.
    fn from_bool(_: bool) -> Option<Self> {
        Self::other()
    }
    /// From an integer that fits an `i64` (as `Value::as_i64` reads it).
    fn from_i64(_: i64) -> Option<Self> {
        Self::other()
    }
    /// What a value of another type (or `null`) reads as.
    fn other() -> Option<Self> {
        None
    }
}

/// `Some` when the JSON value had the type `T` reads, else `T::other()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: FromJson<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData)).map(Lenient)
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: FromJson<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::from_array(seq)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(T::from_str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // A string with escapes: serde_json hands it over unescaped in a scratch buffer.
        Ok(T::from_str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(T::from_str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| T::other(), T::from_i64))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(T::other())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(T::other())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(T::other())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
    Ok(())
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

/// Skips a value of the wrong type by descending into it, so that the deserializer's
/// nesting limit applies (serde_json: 128 levels, then "not JSON", as a `Value` parse
/// answered); `IgnoredAny` would skip any depth.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        drain_map(map).map(|()| Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        drain_seq(seq).map(|()| Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
}

/// Reads a JSON object with a `#[derive(Deserialize)]` struct (whose `duplicate field`
/// check then applies); other types read as `T::other()`.
pub fn object<'de, T: Deserialize<'de>, A: MapAccess<'de>>(map: A) -> Result<Option<T>, A::Error> {
    T::deserialize(MapAccessDeserializer::new(map)).map(Some)
}

// === impl FromJson for plain types ===

impl<'de: 'a, 'a> FromJson<'de> for Cow<'a, str> {
    fn from_str(s: Cow<'de, str>) -> Option<Self> {
        Some(s)
    }
}

impl<'de> FromJson<'de> for bool {
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

impl<'de> FromJson<'de> for i64 {
    fn from_i64(i: i64) -> Option<Self> {
        Some(i)
    }
}

/// A list keeps the elements of the type `T` reads (or `T::other()` gives) and drops the rest.
impl<'de, T: FromJson<'de>> FromJson<'de> for Vec<T> {
    fn from_array<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Lenient(item)) = seq.next_element::<Lenient<T>>()? {
            out.extend(item);
        }
        Ok(Some(out))
    }
}

/// A `metadata.labels` / `metadata.annotations` map: string values only, as the planner
/// reads them; a key given twice is an error.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrMap(pub BTreeMap<String, String>);

impl<'de> FromJson<'de> for StrMap {
    fn from_object<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let Lenient(value) = map.next_value::<Lenient<Cow<'de, str>>>()?;
            if seen.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            seen.insert(key, value.map(Cow::into_owned));
        }
        let strings = seen.into_iter().filter_map(|(k, v)| Some((k, v?)));
        Ok(Some(Self(strings.collect())))
    }
}

// === strict full value ===

/// A whole `serde_json::Value` that refuses duplicate keys at any depth: for the rare
/// paths that compare whole objects (reinvocation of an already injected pod).
#[derive(Debug)]
pub struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}
