use serde_json::{Map, Value, json};

use super::*;
use crate::error::ScimType;
use crate::schema::{ENTERPRISE_USER_SCHEMA, Registry, ResourceKind};

fn parsed(input: &str) -> Filter {
    parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
}

fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare { path, op, value }
}

fn s(v: &str) -> CompValue {
    CompValue::String(v.into())
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn barbara() -> Map<String, Value> {
    object(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Bjensen",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [{"type": "work", "locality": "Hollywood", "primary": true}],
        "phoneNumbers": [],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\""
        },
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    }))
}

fn user_matches(filter: &str) -> bool {
    matches(
        &parsed(filter),
        &barbara(),
        ResourceKind::User,
        Registry::standard(),
    )
}

fn assert_user_matches(yes: &[&str], no: &[&str]) {
    for f in yes {
        assert!(user_matches(f), "{f:?} should match Barbara");
    }
    for f in no {
        assert!(!user_matches(f), "{f:?} should not match Barbara");
    }
}

fn filter_error(input: &str) -> String {
    let e = parse(input).expect_err(input);
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input:?}");
    assert_eq!(e.status, 400);
    e.detail
}

// ---- grammar ----

#[test]
fn simple_comparison() {
    assert_eq!(
        parsed(r#"userName eq "bjensen""#),
        cmp(AttrPath::simple("userName"), CompareOp::Eq, s("bjensen"))
    );
}

#[test]
fn operators_keywords_and_names_ignore_case() {
    assert_eq!(
        parsed(r#"USERNAME EQ "x""#),
        cmp(AttrPath::simple("USERNAME"), CompareOp::Eq, s("x"))
    );
    assert_eq!(
        parsed("title PR"),
        Filter::Present(AttrPath::simple("title"))
    );
    assert_eq!(
        parsed(r#"a eq 1 AND NOT (b Pr) Or c Gt TRUE"#),
        or(
            and(
                cmp(
                    AttrPath::simple("a"),
                    CompareOp::Eq,
                    CompValue::Number(1.into())
                ),
                Filter::Not(Box::new(Filter::Present(AttrPath::simple("b")))),
            ),
            cmp(AttrPath::simple("c"), CompareOp::Gt, CompValue::Bool(true)),
        )
    );
    assert!(user_matches(r#"USERNAME EQ "BJENSEN@example.com""#));
    assert!(user_matches(r#"name.FamilyName eq "jensen""#));
    assert!(user_matches(r#"emails.Value eq "BABS@JENSEN.ORG""#));
}

#[test]
fn every_operator_parses() {
    for (word, op) in [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        assert_eq!(
            parsed(&format!("x {word} \"v\"")),
            cmp(AttrPath::simple("x"), op, s("v"))
        );
    }
}

#[test]
fn literals() {
    let value = |f: &str| match parsed(f) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("a eq true"), CompValue::Bool(true));
    assert_eq!(value("a eq False"), CompValue::Bool(false));
    assert_eq!(value("a eq null"), CompValue::Null);
    assert_eq!(value("a eq -12"), CompValue::Number((-12).into()));
    assert_eq!(
        value("a eq 1.5e3"),
        CompValue::Number(serde_json::Number::from_f64(1500.0).expect("finite"))
    );
    assert_eq!(value(r#"a eq "say \"hi\"\n""#), s("say \"hi\"\n"));
    assert_eq!(value(r#"a eq "é""#), s("é"));
    assert_eq!(
        value("a eq 18446744073709551615"),
        CompValue::Number(u64::MAX.into())
    );
    assert_eq!(
        value("a eq -9223372036854775808"),
        CompValue::Number(i64::MIN.into())
    );
    // Not JSON numbers, so bare strings.
    for word in ["01", "-", "1.", ".5", "1e", "1e999", "+1", "0x10", "1.5e+"] {
        assert_eq!(value(&format!("a eq {word}")), s(word), "{word}");
    }
}

#[test]
fn precedence_not_over_and_over_or() {
    let a = || Filter::Present(AttrPath::simple("a"));
    let b = || Filter::Present(AttrPath::simple("b"));
    let c = || Filter::Present(AttrPath::simple("c"));
    assert_eq!(parsed("a pr or b pr and c pr"), or(a(), and(b(), c())));
    assert_eq!(parsed("a pr and b pr or c pr"), or(and(a(), b()), c()));
    assert_eq!(parsed("(a pr or b pr) and c pr"), and(or(a(), b()), c()));
    assert_eq!(parsed("a pr and b pr and c pr"), and(and(a(), b()), c()));
    assert_eq!(
        parsed("not (a pr) and b pr"),
        and(Filter::Not(Box::new(a())), b())
    );
    assert_eq!(
        parsed("not(a pr or b pr)"),
        Filter::Not(Box::new(or(a(), b())))
    );
    assert_eq!(parsed("  ((a pr))  "), a());
}

#[test]
fn value_path_and_sub_attributes() {
    assert_eq!(
        parsed(r#"emails[type eq "work" and value co "@example.com"]"#),
        Filter::ValuePath {
            attr: AttrPath::simple("emails"),
            filter: Box::new(and(
                cmp(AttrPath::simple("type"), CompareOp::Eq, s("work")),
                cmp(AttrPath::simple("value"), CompareOp::Co, s("@example.com")),
            )),
        }
    );
    assert_eq!(
        parsed("name.familyName pr"),
        Filter::Present(AttrPath::with_sub("name", "familyName"))
    );
    assert_eq!(parsed("members[$ref pr]").to_string(), "members[$ref pr]");
}

#[test]
fn urn_qualified_paths() {
    let urn = ENTERPRISE_USER_SCHEMA;
    assert_eq!(
        parsed(&format!("{urn}:employeeNumber eq \"701984\"")),
        cmp(
            AttrPath {
                urn: Some(urn.into()),
                attr: "employeeNumber".into(),
                sub_attr: None
            },
            CompareOp::Eq,
            s("701984")
        )
    );
    assert_eq!(
        parsed(&format!("{urn}:manager.value pr")),
        Filter::Present(AttrPath {
            urn: Some(urn.into()),
            attr: "manager".into(),
            sub_attr: Some("value".into())
        })
    );
    assert_user_matches(
        &[
            &format!("{urn}:employeeNumber eq \"701984\""),
            &format!("{urn}:manager.value eq \"26118915-6090-4610-87e4-49d8ca9f808d\""),
            // Unqualified extension attributes are found under the URN key too.
            "employeeNumber sw \"70\"",
            "manager.displayName pr",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"bjensen@example.com\"",
            "urn:ietf:params:scim:schemas:core:2.0:User:id pr",
        ],
        &[
            &format!("{urn}:employeeNumber eq \"1\""),
            &format!("{urn}:costCenter pr"),
        ],
    );
}

#[test]
fn entra_value_path_with_sub_attribute_desugars() {
    assert_eq!(
        parsed(r#"emails[type eq "work"].value eq "a@b.com""#),
        Filter::ValuePath {
            attr: AttrPath::simple("emails"),
            filter: Box::new(and(
                cmp(AttrPath::simple("type"), CompareOp::Eq, s("work")),
                cmp(AttrPath::simple("value"), CompareOp::Eq, s("a@b.com")),
            )),
        }
    );
    // The work email, not any email: the home address must not match with type work.
    assert_user_matches(
        &[r#"emails[type eq "work"].value eq "bjensen@example.com""#],
        &[r#"emails[type eq "work"].value eq "babs@jensen.org""#],
    );
}

#[test]
fn unquoted_values_from_the_postman_collection() {
    assert_eq!(
        parsed("name.FamilyName eq Employee"),
        cmp(
            AttrPath::with_sub("name", "FamilyName"),
            CompareOp::Eq,
            s("Employee")
        )
    );
    assert_eq!(
        parsed("meta.Created gt 2015-10-10T14:38:21.86-07:00"),
        cmp(
            AttrPath::with_sub("meta", "Created"),
            CompareOp::Gt,
            s("2015-10-10T14:38:21.86-07:00")
        )
    );
    assert_user_matches(
        &[
            "name.FamilyName eq Jensen and (emails.Value co example.com or emails.Value co example.org)",
            "userName sw B",
            "meta.Created gt 2009-10-10T14:38:21.86-07:00",
        ],
        &[
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
        ],
    );
}

#[test]
fn error_positions_say_where_and_what() {
    // The column the parser stopped at, and what it expected there.
    for (input, column, expected) in [
        (r#"userName eq"#, "column 12", "value"),
        (r#"userName xx "a""#, "column 10", "operator"),
        (r#"(userName eq "a""#, "column 17", "`)`"),
        (r#"userName eq "a" nand b pr"#, "column 17", "`and`, `or`"),
        (r#"emails[type eq "work"] pr"#, "column 24", "`and`, `or`"),
        ("é eq 1", "column 1 (byte 0)", "attribute name"),
    ] {
        let detail = filter_error(input);
        assert!(
            detail.contains(column) && detail.contains(expected),
            "{detail}"
        );
    }
    let detail = filter_error(r#"userName eq "unterminated"#);
    assert!(detail.contains("closing"), "{detail}");
    for bad in [
        "",
        "   ",
        "a",
        "a eq",
        "a pr b",
        "not a pr",
        "a[b pr",
        "a[b[c pr]]",
        "a.b.c pr",
        "a[b.c pr]",
        "a.b[c pr]",
        "urn:x pr",
        "a eq \"\\q\"",
        "(a pr",
    ] {
        filter_error(bad);
    }
}

#[test]
fn depth_and_term_bounds() {
    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    parsed(&nested(MAX_DEPTH));
    let detail = filter_error(&nested(MAX_DEPTH + 1));
    assert!(detail.contains("nested"), "{detail}");
    let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
    parsed(&nots(MAX_DEPTH));
    filter_error(&nots(MAX_DEPTH + 1));
    let terms = |n: usize| vec!["a pr"; n].join(" and ");
    parsed(&terms(MAX_TERMS));
    let detail = filter_error(&terms(MAX_TERMS + 1));
    assert!(detail.contains("too many terms"), "{detail}");
    // A huge input fails fast rather than overflowing the stack.
    filter_error(&"(".repeat(100_000));
}

#[test]
fn attributes_named_like_keywords() {
    assert_eq!(
        parsed("not eq 1"),
        cmp(
            AttrPath::simple("not"),
            CompareOp::Eq,
            CompValue::Number(1.into())
        )
    );
    assert_eq!(
        parsed("and pr and or pr"),
        and(
            Filter::Present(AttrPath::simple("and")),
            Filter::Present(AttrPath::simple("or"))
        )
    );
}

// ---- printing ----

#[test]
fn printing_is_canonical_and_reads_back() {
    for (input, printed) in [
        (r#"USERNAME EQ "x""#, r#"USERNAME eq "x""#),
        ("a pr and (b pr or c pr)", "a pr and (b pr or c pr)"),
        ("(a pr and b pr) or c pr", "a pr and b pr or c pr"),
        ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
        ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
        ("not(a pr)", "not (a pr)"),
        (
            "name.FamilyName eq Employee",
            r#"name.FamilyName eq "Employee""#,
        ),
        (
            r#"emails[type eq "work"].value eq "a@b""#,
            r#"emails[type eq "work" and value eq "a@b"]"#,
        ),
        (
            r#"emails[type eq "w" or type eq "h"].value pr"#,
            r#"emails[(type eq "w" or type eq "h") and value pr]"#,
        ),
        ("a eq NULL", "a eq null"),
        ("a eq 1.50", "a eq 1.5"),
    ] {
        let filter = parsed(input);
        assert_eq!(filter.to_string(), printed, "{input:?}");
        assert_eq!(parsed(printed), filter, "{printed:?}");
    }
}

// ---- evaluation ----

#[test]
fn case_exactness_follows_the_schema() {
    assert_user_matches(
        &[
            r#"userName eq "BJensen@Example.com""#,
            r#"displayName co "babs""#,
            r#"externalId eq "Bjensen""#,
            r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
        ],
        &[
            r#"externalId eq "bjensen""#,
            r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
        ],
    );
}

#[test]
fn string_operators() {
    assert_user_matches(
        &[
            r#"userName sw "bjen""#,
            r#"userName ew "EXAMPLE.COM""#,
            r#"userName co "sen@""#,
            r#"userName gt "a""#,
            r#"userName lt "c""#,
            r#"userName ge "bjensen@example.com""#,
            r#"userName le "bjensen@example.com""#,
            r#"userName ne "someone""#,
        ],
        &[
            r#"userName sw "jen""#,
            r#"userName gt "c""#,
            r#"userName ne "BJENSEN@example.com""#,
        ],
    );
}

#[test]
fn non_ascii_strings_fold_case() {
    let r = object(json!({"userName": "Ÿvonne@Exâmple.com"}));
    let m = |f: &str| matches(&parsed(f), &r, ResourceKind::User, Registry::standard());
    assert!(m(r#"userName eq "ÿvonne@exÂmple.com""#));
    assert!(m(r#"userName co "EXÂ""#));
    assert!(!m(r#"userName co "exa""#));
}

#[test]
fn multi_valued_any_value_matches() {
    assert_user_matches(
        &[
            r#"emails.value eq "babs@jensen.org""#,
            r#"emails eq "babs@jensen.org""#,
            r#"emails.type eq "home""#,
            r#"emails[type eq "home" and value ew "jensen.org"]"#,
            r#"emails[not (type eq "home")]"#,
            r#"emails[primary eq true]"#,
        ],
        &[
            r#"emails[type eq "home" and primary eq true]"#,
            r#"emails.value eq "nobody@example.com""#,
            r#"phoneNumbers[type eq "work"]"#,
            r#"emails.value ne "babs@jensen.org""#,
        ],
    );
}

#[test]
fn presence() {
    assert_user_matches(
        &[
            "userName pr",
            "name pr",
            "name.givenName pr",
            "emails pr",
            "emails.type pr",
            "meta.lastModified pr",
            "active pr",
        ],
        &[
            "title pr",
            "nickName pr",
            "phoneNumbers pr",
            "name.middleName pr",
            "emails.display pr",
            "x509Certificates pr",
        ],
    );
}

#[test]
fn null_comparisons_mean_absence() {
    assert_user_matches(
        &["title eq null", "nickName eq null", "userName ne null"],
        &["userName eq null", "title ne null"],
    );
}

#[test]
fn date_times_compare_as_instants() {
    assert_user_matches(
        &[
            r#"meta.lastModified gt "2011-05-13T04:42:33Z""#,
            // The same instant, written in another offset.
            r#"meta.lastModified eq "2011-05-12T21:42:34-07:00""#,
            r#"meta.lastModified ge "2011-05-13T06:42:34+02:00""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34.001Z""#,
        ],
        &[
            r#"meta.lastModified gt "2011-05-13T06:42:33+01:00""#,
            r#"meta.created gt "2011-01-01T00:00:00Z""#,
        ],
    );
}

#[test]
fn booleans_accept_entra_strings() {
    assert_user_matches(
        &[
            r#"addresses[primary EQ "True"]"#,
            r#"active eq "TRUE""#,
            "active eq true",
            r#"active ne "False""#,
        ],
        &[
            r#"active eq "False""#,
            r#"addresses[primary eq "false"]"#,
            "active gt false",
            r#"active eq "yes""#,
        ],
    );
    // A boolean stored as a string (before dialect normalisation) still compares as a boolean.
    let r = object(json!({"active": "False"}));
    assert!(matches(
        &parsed("active eq false"),
        &r,
        ResourceKind::User,
        Registry::standard()
    ));
}

#[test]
fn ordering_on_booleans_is_an_invalid_filter() {
    let registry = Registry::standard();
    for bad in [
        "active gt true",
        r#"emails[primary ge "True"]"#,
        "x509Certificates.value lt \"a\"",
        "name lt \"a\"",
    ] {
        let e = validate(&parsed(bad), ResourceKind::User, registry).expect_err(bad);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
    }
    for good in [
        "active eq true",
        "userName gt \"a\"",
        "meta.lastModified gt \"2011-05-13T04:42:33Z\"",
        "unknown gt 1",
    ] {
        validate(&parsed(good), ResourceKind::User, registry).expect(good);
    }
}

#[test]
fn numbers_compare_numerically_and_as_text_against_strings() {
    let r = object(json!({"externalId": "1234", "custom": 10, "ratio": 2.5}));
    let m = |f: &str| matches(&parsed(f), &r, ResourceKind::User, Registry::standard());
    assert!(m("externalId eq 1234"));
    assert!(m("custom gt 9.5") && m("custom le 10") && !m("custom lt 10"));
    assert!(m("ratio gt 2") && !m("ratio eq 2"));
}

#[test]
fn unknown_attributes_compare_ignoring_case_and_never_fail() {
    let r = object(json!({"Office": "Sales", "tags": ["Blue", "Green"]}));
    let m = |f: &str| matches(&parsed(f), &r, ResourceKind::User, Registry::standard());
    assert!(m(r#"office eq "sales""#));
    assert!(m(r#"tags eq "green""#));
    assert!(m(r#"tags[value sw "bl"]"#));
    assert!(!m(r#"nothing eq "x""#));
    assert!(m(r#"nothing ne "x""#));
}

#[test]
fn groups_use_the_group_schema() {
    let g = object(json!({
        "id": "g1",
        "displayName": "Engineering",
        "members": [{"value": "u1", "display": "Ann"}, {"value": "u2"}]
    }));
    let m = |f: &str| matches(&parsed(f), &g, ResourceKind::Group, Registry::standard());
    assert!(m(r#"displayName eq "engineering""#));
    assert!(m(r#"members[value eq "u2"]"#));
    assert!(m(r#"members.value eq "u1""#));
    // members.value is caseExact false (RFC 7643 §8.7.1); member ids are UUIDs, whose hex
    // digits are case-insensitive anyway.
    assert!(m(r#"members[value eq "U2"]"#));
    assert!(!m(r#"members[value eq "u3"]"#));
}

#[test]
fn matches_element_evaluates_relative_paths() {
    let registry = Registry::standard();
    let emails = registry
        .resolve(ResourceKind::User, &AttrPath::simple("emails"))
        .expect("emails")
        .attr;
    let work = json!({"value": "A@corp.com", "type": "work", "primary": "True"});
    let filter = parsed(r#"x[type eq "WORK" and value co "@corp.com" and primary eq true]"#);
    let Filter::ValuePath { filter, .. } = filter else {
        panic!("value path")
    };
    assert!(matches_element(&filter, &work, emails));
    assert!(!matches_element(
        &parsed(r#"type eq "home""#),
        &work,
        emails
    ));
    // A simple value is its own `value`.
    assert!(matches_element(
        &parsed(r#"value eq "x""#),
        &json!("x"),
        emails
    ));
}

// ---- SQL pushdown ----

#[test]
fn indexed_predicates() {
    let user = |f: &str| indexed(&parsed(f), ResourceKind::User);
    let group = |f: &str| indexed(&parsed(f), ResourceKind::Group);
    let eq = |column, value: &str| IndexedPredicate::Eq(column, value.into());
    assert_eq!(
        user(r#"USERNAME eq "a""#),
        Some((eq(IndexedColumn::UserName, "a"), true))
    );
    assert_eq!(
        user("externalId eq 42"),
        Some((eq(IndexedColumn::ExternalId, "42"), true))
    );
    assert_eq!(
        user(r#"urn:ietf:params:scim:schemas:core:2.0:User:id eq "x""#),
        Some((eq(IndexedColumn::Id, "x"), true))
    );
    assert_eq!(
        group(r#"displayName eq "Eng""#),
        Some((eq(IndexedColumn::DisplayName, "Eng"), true))
    );
    assert_eq!(user(r#"displayName eq "Eng""#), None);
    assert_eq!(group(r#"userName eq "a""#), None);
    let since = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00+02:00")
        .expect("date")
        .with_timezone(&chrono::Utc);
    assert_eq!(
        user(r#"meta.lastModified gt "2024-01-01T00:00:00+02:00""#),
        Some((IndexedPredicate::LastModifiedGt(since), true))
    );
    assert_eq!(
        user(
            r#"userName eq "a" and externalId eq "b" and meta.lastModified le "2024-01-01T00:00:00+02:00""#
        ),
        Some((
            IndexedPredicate::And(vec![
                eq(IndexedColumn::UserName, "a"),
                eq(IndexedColumn::ExternalId, "b"),
                IndexedPredicate::LastModifiedLe(since),
            ]),
            true
        ))
    );
    assert_eq!(
        user(r#"userName eq "a" and title pr"#),
        Some((eq(IndexedColumn::UserName, "a"), false))
    );
    assert_eq!(
        user(r#"userName eq "a" or externalId eq "b""#),
        Some((
            IndexedPredicate::Or(vec![
                eq(IndexedColumn::UserName, "a"),
                eq(IndexedColumn::ExternalId, "b"),
            ]),
            true
        ))
    );
    for none in [
        r#"userName eq "a" or title pr"#,
        r#"userName ne "a""#,
        r#"not (userName eq "a")"#,
        r#"emails[value eq "a"]"#,
        "userName eq true",
        r#"meta.lastModified gt "yesterday""#,
        &format!("{ENTERPRISE_USER_SCHEMA}:userName eq \"a\""),
    ] {
        assert_eq!(user(none), None, "{none}");
    }
}

// ---- property: print → parse round-trip ----

pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::super::ast::{AttrPath, CompValue, CompareOp, Filter};

    pub fn name() -> impl Strategy<Value = String> + Clone {
        "[a-zA-Z$][a-zA-Z0-9_-]{0,8}"
    }

    fn urn() -> impl Strategy<Value = String> + Clone {
        "urn:[a-zA-Z0-9]{1,5}(:[a-zA-Z0-9.-]{1,6}){0,4}"
    }

    /// A top-level attribute path, optionally URN-qualified and with a sub-attribute.
    pub fn attr_path() -> impl Strategy<Value = AttrPath> + Clone {
        (
            proptest::option::of(urn()),
            name(),
            proptest::option::of(name()),
        )
            .prop_map(|(urn, attr, sub_attr)| AttrPath {
                urn,
                attr,
                sub_attr,
            })
    }

    fn op() -> impl Strategy<Value = CompareOp> {
        proptest::sample::select(CompareOp::ALL.to_vec())
    }

    fn value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<u64>().prop_map(|n| CompValue::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", serde_json::Number::from_f64)
                .prop_map(CompValue::Number),
            any::<String>().prop_map(CompValue::String),
        ]
    }

    fn leaf(path: impl Strategy<Value = AttrPath> + Clone) -> impl Strategy<Value = Filter> {
        prop_oneof![
            (path.clone(), op(), value()).prop_map(|(path, op, value)| Filter::Compare {
                path,
                op,
                value
            }),
            path.prop_map(Filter::Present),
        ]
    }

    fn combine(leaf: impl Strategy<Value = Filter> + 'static) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    /// A filter relative to one value of a multi-valued attribute (inside `[ ]`).
    pub fn value_filter() -> impl Strategy<Value = Filter> {
        combine(leaf(name().prop_map(AttrPath::simple)))
    }

    /// Any filter the grammar can produce.
    pub fn filter() -> impl Strategy<Value = Filter> {
        let value_path = ((proptest::option::of(urn()), name()), value_filter()).prop_map(
            |((urn, attr), filter)| Filter::ValuePath {
                attr: AttrPath {
                    urn,
                    attr,
                    sub_attr: None,
                },
                filter: Box::new(filter),
            },
        );
        combine(prop_oneof![3 => leaf(attr_path()), 1 => value_path])
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn printed_filters_parse_back_equal(filter in strategies::filter()) {
        let printed = filter.to_string();
        let reparsed = parse(&printed);
        proptest::prop_assert_eq!(reparsed.as_ref().ok(), Some(&filter), "printed: {} / {:?}", printed, reparsed);
    }

    #[test]
    fn arbitrary_input_never_panics_and_printing_is_stable(input in "\\PC{0,80}") {
        if let Ok(filter) = parse(&input) {
            let printed = filter.to_string();
            proptest::prop_assert_eq!(parse(&printed).ok(), Some(filter));
        }
    }
}

// ---- property: SQL pushdown agrees with in-memory evaluation ----

mod pushdown {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::super::*;
    use crate::schema::{Registry, ResourceKind};

    const WORDS: [&str; 5] = ["a", "A", "b", "é", "É"];
    const TIMES: [&str; 3] = [
        "2024-01-01T00:00:00Z",
        "2024-01-01T02:00:00+02:00",
        "2024-06-01T00:00:00Z",
    ];

    /// What a store does with a predicate: exact columns compared as-is, the others lower-cased.
    fn store_eval(p: &IndexedPredicate, row: &Map<String, Value>) -> bool {
        let text = |key: &str| {
            row.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let modified = || {
            let meta = row
                .get("meta")
                .and_then(|m| m.get("lastModified"))
                .and_then(Value::as_str);
            meta.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        match p {
            IndexedPredicate::Eq(column, value) => {
                let stored = match column {
                    IndexedColumn::Id => text("id"),
                    IndexedColumn::ExternalId => text("externalId"),
                    IndexedColumn::UserName => text("userName"),
                    IndexedColumn::DisplayName => text("displayName"),
                    IndexedColumn::LastModified => return false,
                };
                if column.case_exact() {
                    stored == *value
                } else {
                    stored.to_lowercase() == value.to_lowercase()
                }
            }
            IndexedPredicate::LastModifiedGt(t) => modified().is_some_and(|m| m > *t),
            IndexedPredicate::LastModifiedGe(t) => modified().is_some_and(|m| m >= *t),
            IndexedPredicate::LastModifiedLt(t) => modified().is_some_and(|m| m < *t),
            IndexedPredicate::LastModifiedLe(t) => modified().is_some_and(|m| m <= *t),
            IndexedPredicate::And(items) => items.iter().all(|i| store_eval(i, row)),
            IndexedPredicate::Or(items) => items.iter().any(|i| store_eval(i, row)),
        }
    }

    fn row() -> impl Strategy<Value = Map<String, Value>> {
        let word = || proptest::sample::select(WORDS.to_vec());
        (
            word(),
            word(),
            word(),
            word(),
            proptest::sample::select(TIMES.to_vec()),
            any::<bool>(),
        )
            .prop_map(|(id, external, user, display, time, titled)| {
                let mut v = json!({
                    "id": id, "externalId": external, "userName": user, "displayName": display,
                    "meta": {"lastModified": time}
                });
                if titled && let Some(o) = v.as_object_mut() {
                    o.insert("title".into(), json!("t"));
                }
                match v {
                    Value::Object(m) => m,
                    _ => Map::new(),
                }
            })
    }

    fn leaf() -> impl Strategy<Value = String> {
        let word = proptest::sample::select(WORDS.to_vec());
        let attr =
            proptest::sample::select(vec!["id", "externalId", "USERNAME", "displayName", "title"]);
        let op = proptest::sample::select(vec!["gt", "ge", "lt", "le", "eq"]);
        prop_oneof![
            (attr, word).prop_map(|(a, w)| format!("{a} eq \"{w}\"")),
            (op, proptest::sample::select(TIMES.to_vec()))
                .prop_map(|(o, t)| format!("meta.lastModified {o} \"{t}\"")),
            Just("title pr".to_owned()),
        ]
    }

    fn filter_text() -> impl Strategy<Value = String> {
        leaf().prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Exact predicates give the same answer as `matches`; inexact ones never lose a match.
        #[test]
        fn indexed_predicates_agree_with_matches(
            text in filter_text(),
            row in row(),
            group in any::<bool>(),
        ) {
            let kind = if group { ResourceKind::Group } else { ResourceKind::User };
            let filter = parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Some((predicate, exact)) = indexed(&filter, kind) else { return Ok(()) };
            let in_memory = matches(&filter, &row, kind, Registry::standard());
            let in_store = store_eval(&predicate, &row);
            if exact {
                prop_assert_eq!(in_store, in_memory, "{} → {:?}", text, predicate);
            } else {
                prop_assert!(in_store || !in_memory, "{} → {:?} lost a match", text, predicate);
            }
        }
    }
}

#[test]
fn agent_owners_filter_by_value() {
    let agent = object(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
        "id": "a1",
        "name": "helper-bot",
        "owners": [{"value": "u1"}, {"value": "U2", "display": "Bob"}],
    }));
    let registry = Registry::standard();
    let matches = |f: &str| eval::matches(&parsed(f), &agent, ResourceKind::Agent, registry);
    assert!(matches("owners.value eq \"u1\""));
    assert!(matches("owners[value eq \"u2\"]"));
    assert!(matches("name eq \"HELPER-BOT\""));
    assert!(!matches("owners.value eq \"u3\""));
}
