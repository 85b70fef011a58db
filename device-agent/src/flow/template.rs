//! Text templates: the strings of a flow file that take values from the task,
//! such as `"{to.name}"` or `"照片, {media.device_name}"`.
//!
//! A template is literal text with `{variable}` placeholders; `{{` and `}}`
//! stand for literal braces. A placeholder may also hold a small expression
//! (see [`super::expr`]): integer arithmetic on number variables
//! (`{media.number + 1}`) or an element of a list variable
//! (`{media_ids[-1]}`). Templates are parsed when a flow file is loaded,
//! so a typo in a variable name is a load error, not a failure in the middle
//! of a task; [`crate::flow`] checks every variable against what the flow's
//! task kind and loop provide.

use std::fmt;

use super::expr::{EvalError, Expr};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Text copied as it is.
    Literal(String),
    /// A `{name}` placeholder.
    Variable(String),
    /// A `{media.number + 1}` placeholder.
    Expr(Expr),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    parts: Vec<Part>,
    /// The source text, for messages.
    source: String,
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("`{0}` has a `{{` that is never closed (write `{{{{` for a literal brace)")]
    Unclosed(String),
    /// A `}` that closes nothing.
    #[error("`{0}` has a `}}` that closes nothing (write `}}}}` for a literal brace)")]
    StrayClose(String),
    /// `{}` or a name with characters a variable cannot have.
    #[error("`{template}` has a bad variable name `{{{name}}}`")]
    BadName {
        /// The template.
        template: String,
        /// What stood between the braces.
        name: String,
    },
    /// An expression between the braces that does not parse or cannot work.
    #[error("`{template}`: `{{{expr}}}` {reason}")]
    BadExpr {
        /// The template.
        template: String,
        /// What stood between the braces.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a template could not be filled in for a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The task has no value for a variable (an optional field it left out).
    #[error("the task gives no value for `{{{0}}}`")]
    Missing(String),
    /// An expression could not be worked out with the task's values.
    #[error(transparent)]
    Eval(EvalError),
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::StrayClose(source.to_owned())),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed(source.to_owned()));
                    }
                    let name = name.trim().to_owned();
                    let part = if valid_name(&name) {
                        Part::Variable(name)
                    } else if Expr::looks_like(&name) {
                        Part::Expr(Expr::parse(&name).map_err(|reason| TemplateError::BadExpr {
                            template: source.to_owned(),
                            expr: name.clone(),
                            reason,
                        })?)
                    } else {
                        return Err(TemplateError::BadName {
                            template: source.to_owned(),
                            name,
                        });
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            parts,
            source: source.to_owned(),
        })
    }

    /// The variables the template uses, in order (repeats included), those
    /// of its expressions too.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .flat_map(|part| -> Box<dyn Iterator<Item = &str> + '_> {
                match part {
                    Part::Variable(name) => Box::new(std::iter::once(name.as_str())),
                    Part::Expr(expr) => Box::new(expr.variables().into_iter()),
                    Part::Literal(_) => Box::new(std::iter::empty()),
                }
            })
    }

    /// Fills in the template; `lookup` gives a variable's value, or `None`
    /// when the task has none (an optional field it left out).
    pub fn render(
        &self,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => return Err(RenderError::Missing(name.clone())),
                },
                Part::Expr(expr) => {
                    let mut missing = None;
                    let value = expr.eval(&mut |name: &str| {
                        let value = lookup(name);
                        if value.is_none() {
                            missing.get_or_insert_with(|| name.to_owned());
                        }
                        value
                    });
                    match (value, missing) {
                        (_, Some(name)) => return Err(RenderError::Missing(name)),
                        (Ok(value), None) => out.push_str(&value),
                        (Err(error), None) => return Err(RenderError::Eval(error)),
                    }
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Whether `name` can be a variable: dotted lower-case words, e.g. `to.name`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "to.name" => Some("张三".to_owned()),
            "item.text" => Some("你好 {world}".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn placeholders_are_filled_and_braces_escaped() {
        let template = Template::parse("给{to.name}：{{{item.text}}}").unwrap();
        assert_eq!(
            template.variables().collect::<Vec<_>>(),
            ["to.name", "item.text"]
        );
        assert_eq!(template.render(values).unwrap(), "给张三：{你好 {world}}");
        let plain = Template::parse("发送").unwrap();
        assert_eq!(plain.variables().count(), 0);
        assert_eq!(plain.render(values).unwrap(), "发送");
        assert_eq!(Template::parse("").unwrap().render(values).unwrap(), "");
        assert_eq!(
            Template::parse("{ to.name }")
                .unwrap()
                .render(values)
                .unwrap(),
            "张三"
        );
    }

    #[test]
    fn a_value_the_task_lacks_is_named() {
        let template = Template::parse("{greeting}!").unwrap();
        assert_eq!(
            template.render(values).unwrap_err(),
            RenderError::Missing("greeting".to_owned())
        );
        assert_eq!(
            template.render(values).unwrap_err().to_string(),
            "the task gives no value for `{greeting}`"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert_eq!(
            Template::parse("{to.name").unwrap_err(),
            TemplateError::Unclosed("{to.name".to_owned())
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err(),
            TemplateError::StrayClose("a}b".to_owned())
        );
        for bad in [
            "{}",
            "{To.Name}",
            "{to..name}",
            "{to name}",
            "{.x}",
            "{to.name!}",
        ] {
            assert!(
                matches!(Template::parse(bad), Err(TemplateError::BadName { .. })),
                "{bad}"
            );
        }
        let message = Template::parse("{x").unwrap_err().to_string();
        assert!(message.contains("never closed"), "{message}");
    }
}
