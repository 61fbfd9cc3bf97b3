//! The filter and attribute-path grammar (RFC 7644 §3.4.2.2, §3.5.2), shared by [`super::parse`]
//! and [`crate::path::PatchPath::parse`].
//!
//! A recursive-descent parser over winnow's token parsers. Precedence is encoded by the call
//! structure (`or` → `and` → unary), each `(`, `not (` and `[` costs one level of [`MAX_DEPTH`] and
//! each comparison or `pr` one of [`MAX_TERMS`], so a hostile filter is rejected in time linear in
//! its length and with bounded recursion. Lookahead never exceeds one token, so nothing is parsed
//! twice.

use std::fmt;

use winnow::Parser;
use winnow::ascii::Caseless;
use winnow::error::EmptyError;
use winnow::token::{literal, take_while};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use super::{MAX_DEPTH, MAX_TERMS};

/// Where and why the input stopped following the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Byte offset into the input.
    pub offset: usize,
    /// One-based character column.
    pub column: usize,
    pub problem: Problem,
    /// A short excerpt of what was found at `offset`.
    pub found: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The grammar wanted this here.
    Expected(&'static str),
    /// A bound was exceeded.
    TooComplex(&'static str),
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Expected(what) => write!(
                f,
                "at column {} (byte {}): expected {what}, found {}",
                self.column, self.offset, self.found
            ),
            Problem::TooComplex(why) => {
                write!(f, "at column {} (byte {}): {why}", self.column, self.offset)
            }
        }
    }
}

type Parsed<T> = Result<T, SyntaxError>;

/// The expectation reported after a complete comparison or `pr`.
const AFTER_EXPRESSION: &str = "`and`, `or` or the end of the filter";
const OPERATORS: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)";
const VALUE: &str = "a value (a \"quoted string\", a number, true, false or null)";

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '$'
}

// RFC 7643 §2.1: nameChar = "-" / "_" / DIGIT / ALPHA
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_urn_char(c: char) -> bool {
    is_name_char(c)
        || matches!(
            c,
            ':' | '.' | '$' | '+' | '%' | '=' | '@' | '!' | '*' | ',' | ';'
        )
}

/// Characters that end a bare (unquoted) value.
fn ends_bare_value(c: char) -> bool {
    is_space(c) || matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// A parser positioned somewhere in `src`.
pub(crate) struct Grammar<'i> {
    src: &'i str,
    rest: &'i str,
    depth: usize,
    terms: usize,
}

impl<'i> Grammar<'i> {
    pub fn new(src: &'i str) -> Self {
        Grammar {
            src,
            rest: src,
            depth: 0,
            terms: 0,
        }
    }

    /// A whole filter: `FILTER` surrounded by optional whitespace and nothing else.
    pub fn filter(mut self) -> Parsed<Filter> {
        self.skip_space();
        let filter = self.or_expr(false)?;
        self.skip_space();
        self.expect_end(AFTER_EXPRESSION)?;
        Ok(filter)
    }

    /// The filter inside `[` `]` of a PATCH path, up to and including the `]`.
    pub fn bracketed_value_filter(&mut self) -> Parsed<Filter> {
        self.enclosed(('[', "`[`"), (']', "`and`, `or` or `]`"), true)
    }

    /// Byte offset of the next unread character.
    pub fn offset(&self) -> usize {
        self.src.len() - self.rest.len()
    }

    pub fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    pub fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    pub fn expect_end(&self, expected: &'static str) -> Parsed<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            self.fail(expected)
        }
    }

    pub fn fail<T>(&self, expected: &'static str) -> Parsed<T> {
        Err(self.error(Problem::Expected(expected)))
    }

    fn error(&self, problem: Problem) -> SyntaxError {
        let offset = self.offset();
        let found = if self.rest.is_empty() {
            "the end of the input".to_owned()
        } else {
            let excerpt: String = self.rest.chars().take(12).collect();
            let more = if excerpt.len() < self.rest.len() {
                "…"
            } else {
                ""
            };
            format!("`{excerpt}{more}`")
        };
        SyntaxError {
            offset,
            column: self.src[..offset].chars().count() + 1,
            problem,
            found,
        }
    }

    /// Skip whitespace; whether there was any.
    pub fn skip_space(&mut self) -> bool {
        let skipped: Result<&str, EmptyError> =
            take_while(0.., is_space).parse_next(&mut self.rest);
        skipped.is_ok_and(|s| !s.is_empty())
    }

    fn expect_char(&mut self, c: char, expected: &'static str) -> Parsed<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(expected)
        }
    }

    /// A case-insensitive keyword followed by whitespace or `(`; consumed only when it matches.
    fn keyword(&mut self, word: &'static str) -> bool {
        let mut rest = self.rest;
        let matched: Result<&str, EmptyError> = literal(Caseless(word)).parse_next(&mut rest);
        if matched.is_ok() && rest.starts_with(|c: char| is_space(c) || c == '(') {
            self.rest = rest;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        self.within(
            self.depth <= MAX_DEPTH,
            "too deeply nested: at most 32 levels of `(`, `not (` and `[` are allowed",
        )
    }

    fn count_term(&mut self) -> Parsed<()> {
        self.terms += 1;
        self.within(
            self.terms <= MAX_TERMS,
            "too many terms: at most 256 comparisons are allowed in one filter",
        )
    }

    /// `Ok` while a bound holds; else the filter is too complex, for the reason `why`.
    fn within(&self, holds: bool, why: &'static str) -> Parsed<()> {
        if holds {
            Ok(())
        } else {
            Err(self.error(Problem::TooComplex(why)))
        }
    }

    // RFC 7644 §3.4.2.2, Table 5: `or` binds loosest, then `and`, then `not`; both are
    // left-associative.
    fn or_expr(&mut self, in_value_filter: bool) -> Parsed<Filter> {
        self.chain("or", in_value_filter, Self::and_expr, Filter::Or)
    }

    fn and_expr(&mut self, in_value_filter: bool) -> Parsed<Filter> {
        self.chain("and", in_value_filter, Self::unary, Filter::And)
    }

    /// `operand *(keyword operand)`, folded to the left with `join`.
    fn chain(
        &mut self,
        keyword: &'static str,
        in_value_filter: bool,
        operand: fn(&mut Self, bool) -> Parsed<Filter>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Parsed<Filter> {
        let mut left = operand(self, in_value_filter)?;
        loop {
            let before = self.rest;
            self.skip_space();
            if !self.keyword(keyword) {
                self.rest = before;
                return Ok(left);
            }
            self.skip_space();
            let right = operand(self, in_value_filter)?;
            left = join(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self, in_value_filter: bool) -> Parsed<Filter> {
        let before = self.rest;
        if self.keyword("not") {
            self.skip_space();
            if self.peek() == Some('(') {
                let inner = self.parenthesised(in_value_filter)?;
                return Ok(Filter::Not(Box::new(inner)));
            }
            // An attribute that happens to be called "not".
            self.rest = before;
        }
        if self.peek() == Some('(') {
            return self.parenthesised(in_value_filter);
        }
        self.attr_expr(in_value_filter)
    }

    fn parenthesised(&mut self, in_value_filter: bool) -> Parsed<Filter> {
        self.enclosed(('(', "`(`"), (')', "`and`, `or` or `)`"), in_value_filter)
    }

    /// A filter between `open` and `close` (each with what an error says was expected), one
    /// level deeper.
    fn enclosed(
        &mut self,
        (open, expected_open): (char, &'static str),
        (close, expected_close): (char, &'static str),
        in_value_filter: bool,
    ) -> Parsed<Filter> {
        self.expect_char(open, expected_open)?;
        self.enter()?;
        self.skip_space();
        let inner = self.or_expr(in_value_filter)?;
        self.skip_space();
        self.expect_char(close, expected_close)?;
        self.depth -= 1;
        Ok(inner)
    }

    /// `attrPath op value`, `attrPath pr`, or `attrPath "[" valFilter "]"`, plus Entra's
    /// `attrPath "[" valFilter "]" "." subAttr op value`.
    fn attr_expr(&mut self, in_value_filter: bool) -> Parsed<Filter> {
        // Inside `[ ]` paths are sub-attributes of one value: a bare name, no URN, no dot.
        let path = if in_value_filter {
            AttrPath::simple(self.attr_name()?)
        } else {
            self.attr_path()?
        };
        if self.peek() != Some('[') {
            return self.comparison(path);
        }
        if in_value_filter {
            return self.fail("an operator; `[ ]` cannot be nested");
        }
        if path.sub_attr.is_some() {
            return self.fail("an operator; `[ ]` follows an attribute, not a sub-attribute");
        }
        let filter = self.bracketed_value_filter()?;
        if !self.eat('.') {
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(filter),
            });
        }
        // Entra: `emails[type eq "work"].value eq "a@b.com"` means one email that is both.
        let sub = AttrPath::simple(self.attr_name()?);
        let compare = self.comparison(sub)?;
        Ok(Filter::ValuePath {
            attr: path,
            filter: Box::new(Filter::And(Box::new(filter), Box::new(compare))),
        })
    }

    /// What follows an attribute path: ` pr` or ` op value`.
    fn comparison(&mut self, path: AttrPath) -> Parsed<Filter> {
        if !self.skip_space() {
            return self.fail("a space and then an operator");
        }
        let op_start = self.rest;
        let word: Result<&str, EmptyError> =
            take_while(1.., |c: char| c.is_ascii_alphabetic()).parse_next(&mut self.rest);
        let Ok(word) = word else {
            return self.fail(OPERATORS);
        };
        if word.eq_ignore_ascii_case("pr") {
            if self.peek().is_some_and(|c| !ends_bare_value(c)) {
                self.rest = op_start;
                return self.fail(OPERATORS);
            }
            self.count_term()?;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            self.rest = op_start;
            return self.fail(OPERATORS);
        };
        if !self.skip_space() && self.peek() != Some('"') {
            return self.fail("a space and then a value");
        }
        let value = self.comp_value()?;
        self.count_term()?;
        Ok(Filter::Compare { path, op, value })
    }

    /// `[URN ":"] ATTRNAME ["." ATTRNAME]`; the URN is everything before the last colon.
    pub fn attr_path(&mut self) -> Parsed<AttrPath> {
        let urn = self.urn_prefix()?;
        let attr = self.attr_name()?;
        let sub_attr = if self.eat('.') {
            Some(self.attr_name()?)
        } else {
            None
        };
        Ok(AttrPath {
            urn,
            attr,
            sub_attr,
        })
    }

    /// When the input starts with `urn:`, the URN up to (not including) the colon that precedes
    /// the attribute name; leaves the input at that attribute name.
    fn urn_prefix(&mut self) -> Parsed<Option<String>> {
        let Some(token) = self.urn_token() else {
            return Ok(None);
        };
        // `urn:` + at least one more character before the attribute's colon.
        match token.rfind(':') {
            Some(colon) if colon > "urn:".len() => {
                let urn = &token[..colon];
                self.rest = &self.rest[colon + 1..];
                Ok(Some(urn.to_owned()))
            }
            _ => self.fail("a schema URN followed by `:` and an attribute name"),
        }
    }

    /// The URN-like token at the start of the input, when it starts with `urn:` (any case).
    pub fn urn_token(&self) -> Option<&'i str> {
        let prefix = self.rest.get(..4)?;
        if !prefix.eq_ignore_ascii_case("urn:") {
            return None;
        }
        let end = self
            .rest
            .find(|c: char| !is_urn_char(c))
            .unwrap_or(self.rest.len());
        Some(&self.rest[..end])
    }

    /// Consume `len` bytes (a token already inspected with [`Self::urn_token`]).
    pub fn advance(&mut self, len: usize) {
        self.rest = self.rest.get(len..).unwrap_or("");
    }

    /// ATTRNAME = ALPHA *(nameChar), and `$ref` (RFC 7643 §2.1).
    pub fn attr_name(&mut self) -> Parsed<String> {
        if !self.peek().is_some_and(is_name_start) {
            return self.fail("an attribute name");
        }
        let name: Result<&str, EmptyError> =
            (take_while(1, is_name_start), take_while(0.., is_name_char))
                .take()
                .parse_next(&mut self.rest);
        match name {
            Ok(name) => Ok(name.to_owned()),
            Err(_) => self.fail("an attribute name"),
        }
    }

    fn comp_value(&mut self) -> Parsed<CompValue> {
        if self.peek() == Some('"') {
            return self.quoted_string().map(CompValue::String);
        }
        let token: Result<&str, EmptyError> =
            take_while(1.., |c: char| !ends_bare_value(c)).parse_next(&mut self.rest);
        let Ok(token) = token else {
            return self.fail(VALUE);
        };
        Ok(bare_value(token))
    }

    /// A JSON string literal (RFC 7644 §3.4.2.2: compValue strings are JSON strings).
    fn quoted_string(&mut self) -> Parsed<String> {
        let bytes = self.rest.as_bytes();
        let mut escaped = false;
        let mut needs_decoding = false;
        let mut end = None;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            match b {
                _ if escaped => escaped = false,
                b'\\' => {
                    escaped = true;
                    needs_decoding = true;
                }
                b'"' => {
                    end = Some(i);
                    break;
                }
                0x00..=0x1f => needs_decoding = true,
                _ => {}
            }
        }
        let Some(end) = end else {
            return self.fail("a closing `\"`");
        };
        let literal = &self.rest[..=end];
        let value = if needs_decoding {
            match serde_json::from_str::<String>(literal) {
                Ok(value) => value,
                Err(_) => {
                    return self.fail("a JSON string (valid escapes, no raw control characters)");
                }
            }
        } else {
            literal[1..end].to_owned()
        };
        self.rest = &self.rest[end + 1..];
        Ok(value)
    }
}

/// An unquoted value. The Microsoft SCIM Postman collection sends `name.FamilyName eq Employee`
/// and `meta.Created gt 2015-10-10T14:38:21.86-07:00`: a bare word that is not `true`, `false`,
/// `null` (any case) or a JSON number is read as a string.
fn bare_value(token: &str) -> CompValue {
    if token.eq_ignore_ascii_case("true") {
        CompValue::Bool(true)
    } else if token.eq_ignore_ascii_case("false") {
        CompValue::Bool(false)
    } else if token.eq_ignore_ascii_case("null") {
        CompValue::Null
    } else if let Some(number) = json_number(token) {
        CompValue::Number(number)
    } else {
        CompValue::String(token.to_owned())
    }
}

/// A JSON number (RFC 8259 §6), read with correctly rounded floats: serde_json's default float
/// parser can be one unit in the last place off, which would break print → parse round-trips.
/// Infinite values (`1e999`) are not numbers.
fn json_number(token: &str) -> Option<serde_json::Number> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    let int_len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let (int, tail) = digits.split_at(int_len);
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    let tail = match tail.strip_prefix('.') {
        Some(frac) => {
            let frac_len = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            if frac_len == 0 {
                return None;
            }
            &frac[frac_len..]
        }
        None => tail,
    };
    if let Some(exp) = tail.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    } else if !tail.is_empty() {
        return None;
    }
    if int_len == digits.len() {
        if let Ok(n) = token.parse::<u64>() {
            return Some(n.into());
        }
        if let Ok(n) = token.parse::<i64>() {
            return Some(n.into());
        }
    }
    token
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

impl CompareOp {
    /// Every comparison operator (RFC 7644 §3.4.2.2).
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator for a keyword, ignoring case (`eq`, `EQ`, `Eq`, …). `pr` is not a
    /// comparison and yields `None`.
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.keyword().eq_ignore_ascii_case(word))
    }

    /// The keyword as printed (lower case).
    pub fn keyword(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}
