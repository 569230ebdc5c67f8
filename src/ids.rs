//! Record ids: `INC-<n>`, `PRB-<n>`, `CHG-<n>`. Each number comes from a persistent
//! store counter and is never reused; the text form is what the API, the audit log and
//! people use.

/// Declares a record id type: a `u64` shown and parsed as `<PREFIX>-<n>` (n ≥ 1),
/// serialized as that text.
macro_rules! record_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(into = "String", try_from = "String")]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                s.strip_prefix(concat!($prefix, "-"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n > 0)
                    .map($name)
                    .ok_or_else(|| {
                        format!(concat!("expected ", $what, " like ", $prefix, "-1, got {:?}"), s)
                    })
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
    };
}

pub(crate) use record_id;
