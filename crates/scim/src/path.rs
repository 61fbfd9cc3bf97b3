//! PATCH paths (RFC 7644 §3.5.2): `PATH = attrPath / valuePath [subAttr]`.

use std::fmt::{self, Display, Formatter};

use crate::error::{ScimError, ScimResult};
use crate::filter::grammar::Grammar;
use crate::filter::{AttrPath, Filter};
use crate::schema::Registry;

/// RFC 7644 §3.5.2: PATH = attrPath / valuePath [subAttr]
///
/// `attr.sub_attr` holds the sub-attribute, whether written `name.givenName` or after a filter
/// (`emails[type eq "work"].value`). A path that is only a schema URN
/// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`, the whole extension object)
/// has `attr.urn = Some(urn)` and an empty `attr.attr`; see [`PatchPath::is_whole_schema`].
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The value filter, with paths relative to one value of `attr`.
    pub filter: Option<Filter>,
}

impl PatchPath {
    /// Parse a PATCH `path`; `invalidPath` with the column, byte offset and what was expected.
    ///
    /// A URN-qualified path is a whole schema when the URN is one the standard
    /// [`Registry`] knows; otherwise its last `:` segment is the attribute.
    pub fn parse(input: &str) -> ScimResult<PatchPath> {
        Self::parse_path(input).map_err(|e| ScimError::invalid_path(format!("invalid path {e}")))
    }

    fn parse_path(input: &str) -> Result<PatchPath, crate::filter::grammar::SyntaxError> {
        let mut g = Grammar::new(input);
        g.skip_space();
        if let Some(urn) = g.urn_token()
            && Registry::standard().schema(urn).is_some()
        {
            g.advance(urn.len());
            g.skip_space();
            g.expect_end("the end of the path after a schema URN")?;
            let attr = AttrPath {
                urn: Some(urn.to_owned()),
                attr: String::new(),
                sub_attr: None,
            };
            return Ok(PatchPath { attr, filter: None });
        }
        let mut attr = g.attr_path()?;
        let mut filter = None;
        if g.peek() == Some('[') {
            if attr.sub_attr.is_some() {
                return g
                    .fail("the end of the path; `[` follows an attribute, not a sub-attribute");
            }
            filter = Some(g.bracketed_value_filter()?);
            if g.eat('.') {
                attr.sub_attr = Some(g.attr_name()?);
            }
        }
        g.skip_space();
        g.expect_end(if filter.is_some() {
            "`.` and a sub-attribute, or the end of the path"
        } else {
            "`[`, `.` or the end of the path"
        })?;
        Ok(PatchPath { attr, filter })
    }

    /// Whether the path names a whole schema extension object rather than an attribute.
    pub fn is_whole_schema(&self) -> bool {
        self.attr.attr.is_empty()
    }
}

impl Display for PatchPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Some(filter) = &self.filter else {
            return write!(f, "{}", self.attr);
        };
        let outer = AttrPath {
            sub_attr: None,
            ..self.attr.clone()
        };
        write!(f, "{outer}[{filter}]")?;
        if let Some(sub) = &self.attr.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::filter::{CompValue, CompareOp};
    use crate::schema::ENTERPRISE_USER_SCHEMA;

    fn parsed(input: &str) -> PatchPath {
        PatchPath::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    #[test]
    fn rfc_and_idp_examples_parse_and_print_back() {
        let enterprise = ENTERPRISE_USER_SCHEMA;
        for input in [
            "members".to_owned(),
            "name.familyName".to_owned(),
            r#"addresses[type eq "work"]"#.to_owned(),
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#.to_owned(),
            r#"emails[type eq "work"].value"#.to_owned(),
            format!("{enterprise}:manager"),
            format!("{enterprise}:manager.value"),
            format!("{enterprise}:employeeNumber"),
            enterprise.to_owned(),
        ] {
            let path = parsed(&input);
            assert_eq!(path.to_string(), input);
            assert_eq!(parsed(&path.to_string()), path);
        }
    }

    #[test]
    fn structure() {
        let p = parsed(r#"emails[type eq "work"].value"#);
        assert_eq!(p.attr, AttrPath::with_sub("emails", "value"));
        assert_eq!(
            p.filter,
            Some(Filter::Compare {
                path: AttrPath::simple("type"),
                op: CompareOp::Eq,
                value: CompValue::String("work".into())
            })
        );
        let p = parsed(&format!("{ENTERPRISE_USER_SCHEMA}:manager.value"));
        assert_eq!(p.attr.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(
            (p.attr.attr.as_str(), p.attr.sub_attr.as_deref()),
            ("manager", Some("value"))
        );
        assert!(!p.is_whole_schema());
        let whole = parsed(ENTERPRISE_USER_SCHEMA);
        assert!(whole.is_whole_schema());
        assert_eq!(whole.attr.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        // Case of the URN does not matter for recognising the schema.
        assert!(parsed(&ENTERPRISE_USER_SCHEMA.to_uppercase()).is_whole_schema());
        assert_eq!(parsed(" Members ").attr, AttrPath::simple("Members"));
    }

    #[test]
    fn invalid_paths_say_where() {
        for (input, column) in [
            ("", 1),
            ("emails[type eq \"work\"", 22),
            ("emails[type eq \"work\"]value", 23),
            ("emails.value[type eq \"work\"]", 13),
            ("name.givenName.x", 15),
            ("emails[type eq \"work\"].value.x", 29),
            ("a b", 3),
            ("urn:x", 1),
        ] {
            let e = PatchPath::parse(input).expect_err(input);
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{input}");
            assert!(
                e.detail.contains(&format!("column {column} ")),
                "{input}: {}",
                e.detail
            );
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::PatchPath;
    use crate::filter::AttrPath;
    use crate::filter::tests::strategies;

    fn patch_path() -> impl Strategy<Value = PatchPath> {
        (
            strategies::attr_path(),
            proptest::option::of(strategies::value_filter()),
        )
            .prop_map(|(attr, filter)| PatchPath { attr, filter })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn printed_paths_parse_back_equal(path in patch_path()) {
            let printed = path.to_string();
            prop_assert_eq!(PatchPath::parse(&printed).ok(), Some(path), "printed: {}", printed);
        }

        #[test]
        fn whole_schema_paths_round_trip(upper in any::<bool>()) {
            let urn = if upper {
                crate::schema::ENTERPRISE_USER_SCHEMA.to_uppercase()
            } else {
                crate::schema::ENTERPRISE_USER_SCHEMA.to_owned()
            };
            let path = PatchPath { attr: AttrPath { urn: Some(urn), attr: String::new(), sub_attr: None }, filter: None };
            prop_assert_eq!(PatchPath::parse(&path.to_string()).ok(), Some(path));
        }
    }
}
