//! One table per set of named switches ([`super::Fault`], [`super::Variant`]).
//!
//! Each switch is declared once, with its command-line name and its one-line description;
//! the enum, `ALL`, the name and description lookups, `Display` and `FromStr` (with an error
//! that lists the valid names) all come from that one table, so nothing can drift apart.

/// `named_switches! { Enum, Unknown, "word"; Variant => "name", "description"; ... }`
macro_rules! named_switches {
    (
        $(#[$doc:meta])* $enum:ident, $unknown:ident, $word:literal;
        $($variant:ident => $name:literal, $description:literal;)+
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $enum {
            $(#[doc = $description] $variant,)+
        }

        impl $enum {
            /// Every switch, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)+];

            /// The kebab-case name used on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)+
                }
            }

            /// One line: what it does.
            pub fn description(self) -> &'static str {
                match self {
                    $($enum::$variant => $description,)+
                }
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        #[doc = concat!("Error of `", stringify!($enum), "::from_str`: the name is not a known ", $word, ".")]
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("unknown {} `{name}`; valid {}s: {}", $word, $word, $enum::valid_names())]
        pub struct $unknown {
            /// The name that was given.
            pub name: String,
        }

        impl $enum {
            fn valid_names() -> String {
                $enum::ALL
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::str::FromStr for $enum {
            type Err = $unknown;

            /// Names are matched without regard to case or surrounding space.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $enum::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| $unknown { name: s.to_owned() })
            }
        }
    };
}

pub(crate) use named_switches;
