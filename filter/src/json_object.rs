//! Provider payload structs read from JSON objects only.
//!
//! `#[derive(Deserialize)]` on a struct accepts two JSON forms: an object (fields by name) and
//! an array (fields by position, in declaration order). serde_json's `deserialize_struct`
//! instantiates both readers for every struct type, and the array form is about half of that
//! code (29 KB of `.wasm` for 38 types), for a form no provider sends. A struct that derives
//! with `#[serde(remote = "Self")]` and is named in [`object_only!`] gets a `Deserialize` that
//! asks for a map instead: only the object reader is compiled. An array where such a struct is expected is now refused like a
//! string or a number there always was: `invalid type: sequence, expected struct Name`.
//!
//! The derive's own code still does the reading (field names, aliases, defaults, duplicates,
//! borrowed strings); this module only hands it the object. Pure: no host access.

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A struct read from a JSON object by its derived reader (see [`object_only!`]).
pub trait FromObject<'de>: Sized {
    /// What the struct is, for error messages (`struct Name`, as the derive names it).
    const EXPECTING: &'static str;

    /// Reads the struct from the members of an object.
    fn from_object<A: MapAccess<'de>>(map: MapAccessDeserializer<A>) -> Result<Self, A::Error>;
}

/// The one visitor of every [`FromObject`] struct: it takes a map and nothing else.
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_object(MapAccessDeserializer::new(map))
    }
}

/// Reads a [`FromObject`] struct: `deserialize_map`, so the deserializer never offers an array.
pub fn deserialize<'de, T: FromObject<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// Implements [`serde::Deserialize`] (objects only) for structs that derive it with
/// `#[serde(remote = "Self")]`, which turns the derive into an inherent `deserialize` function.
/// A struct with a lifetime is written `Name<'a>`.
macro_rules! object_only {
    ($($name:ident $(<$lt:lifetime>)?),+ $(,)?) => {$(
        impl<'de $(: $lt, $lt)?> $crate::json_object::FromObject<'de> for $name $(<$lt>)? {
            const EXPECTING: &'static str = concat!("struct ", stringify!($name));

            fn from_object<A: serde::de::MapAccess<'de>>(
                map: serde::de::value::MapAccessDeserializer<A>,
            ) -> Result<Self, A::Error> {
                // The derive's reader (inherent, from `remote = "Self"`).
                $name::deserialize(map)
            }
        }

        impl<'de $(: $lt, $lt)?> serde::Deserialize<'de> for $name $(<$lt>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::json_object::deserialize(d)
            }
        }
    )+};
}
pub(crate) use object_only;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::borrow::Cow;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(remote = "Self", default)]
    struct Counts {
        #[serde(alias = "in")]
        input: Option<u64>,
        output: Option<u64>,
        inner: Option<Inner>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(remote = "Self")]
    struct Inner {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(remote = "Self")]
    struct Borrowed<'a> {
        #[serde(borrow, default)]
        text: Cow<'a, str>,
    }

    object_only!(Counts, Inner, Borrowed<'a>);

    /// The same structs with the plain derive, as the reference.
    mod plain {
        use serde::Deserialize;

        #[derive(Deserialize, Debug, Default, PartialEq)]
        #[serde(default)]
        pub struct Counts {
            #[serde(alias = "in")]
            pub input: Option<u64>,
            pub output: Option<u64>,
            pub inner: Option<Inner>,
        }

        #[derive(Deserialize, Debug, PartialEq)]
        pub struct Inner {
            pub name: String,
            #[serde(default)]
            pub tags: Vec<String>,
        }
    }

    fn outcome<'a, T: Deserialize<'a> + fmt::Debug>(json: &'a str) -> String {
        match serde_json::from_str::<T>(json) {
            Ok(v) => format!("{v:?}").replace("plain::", ""),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn objects_read_exactly_as_the_plain_derive_reads_them() {
        let cases = [
            r#"{}"#,
            r#"{"input":1,"output":2}"#,
            r#"{"in":7}"#,
            r#"{"input":1,"in":2}"#,
            r#"{"input":1,"input":2}"#,
            r#"{"input":"x"}"#,
            r#"{"input":-1}"#,
            r#"{"input":1.5}"#,
            r#"{"input":null,"unknown":[1,{"a":2}]}"#,
            r#"{"inner":{"name":"n","tags":["a","b"]}}"#,
            r#"{"inner":{"tags":[]}}"#,
            r#"{"inner":{"name":"n","name":"m"}}"#,
            r#"{"inner":{"name":5}}"#,
            r#"{"inner":"text"}"#,
            r#"{"inner":null}"#,
            r#"{"input":1"#,
            r#"{"input":1} x"#,
            r#""text""#,
            r#"12"#,
            r#"null"#,
            r#"true"#,
        ];
        for json in cases {
            assert_eq!(
                outcome::<Counts>(json),
                outcome::<plain::Counts>(json),
                "{json}"
            );
        }
    }

    #[test]
    fn an_array_where_a_struct_is_expected_is_refused() {
        let e = serde_json::from_str::<Counts>("[1,2]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type: sequence, expected struct Counts at line 1 column 0"
        );
        let e = serde_json::from_str::<Counts>(r#"{"inner":["n"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type: sequence, expected struct Inner at line 1 column 9"
        );
        // The plain derive read the array by position.
        assert_eq!(
            serde_json::from_str::<plain::Counts>("[1,2]").unwrap(),
            plain::Counts {
                input: Some(1),
                output: Some(2),
                inner: None
            }
        );
    }

    #[test]
    fn borrowed_strings_are_still_borrowed() {
        let v: Borrowed<'_> = serde_json::from_str(r#"{"text":"plain"}"#).unwrap();
        assert!(matches!(v.text, Cow::Borrowed("plain")));
        let v: Borrowed<'_> = serde_json::from_str(r#"{"text":"esc\"aped"}"#).unwrap();
        assert_eq!(v.text, "esc\"aped");
    }
}
