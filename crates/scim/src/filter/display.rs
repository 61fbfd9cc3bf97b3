//! The canonical printed form of filters: lower-case keywords, quoted strings, single spaces, and
//! only the parentheses the AST needs, so that `parse(&f.to_string()) == Ok(f)`.

use std::fmt::{self, Display, Formatter};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};

impl Display for AttrPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (&self.urn, self.attr.is_empty()) {
            // A whole extension (a PATCH path that is only a schema URN).
            (Some(urn), true) => return f.write_str(urn),
            (Some(urn), false) => write!(f, "{urn}:")?,
            (None, _) => {}
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Display for CompValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

/// Binding strength: `or` < `and` < everything else.
fn precedence(filter: &Filter) -> u8 {
    match filter {
        Filter::Or(..) => 1,
        Filter::And(..) => 2,
        _ => 3,
    }
}

/// Print `filter`, in parentheses when it binds more loosely than `min`.
fn operand(f: &mut Formatter<'_>, filter: &Filter, min: u8) -> fmt::Result {
    if precedence(filter) < min {
        write!(f, "({filter})")
    } else {
        write!(f, "{filter}")
    }
}

impl Display for Filter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            // Both are parsed left-associatively, so a right operand of the same kind needs
            // parentheses to come back as the same tree.
            Filter::Or(a, b) => {
                operand(f, a, 1)?;
                f.write_str(" or ")?;
                operand(f, b, 2)
            }
            Filter::And(a, b) => {
                operand(f, a, 2)?;
                f.write_str(" and ")?;
                operand(f, b, 3)
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}
