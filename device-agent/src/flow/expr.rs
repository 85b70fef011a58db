//! Expressions inside template placeholders: integer arithmetic on the
//! number variables (`{media.number + 1}`, `{(item.number - 1) * 2}`) and one
//! element of a list variable (`{media_ids[1]}`, `{tags[-1]}`), for the
//! positions a flow must compute (the n-th picture of a grid whose first cell
//! is the camera).
//!
//! The rules: `+ - * / %` on whole numbers with the usual precedence and
//! parentheses; only the number variables ([`NUMBERS`]) take part in
//! arithmetic and only the list variables ([`LISTS`]) can be indexed, both
//! checked when the file loads. Indexes count from 1, as `*.number` and a
//! selector's `nth` do; a negative index counts from the end (-1 is the
//! last). Overflow, division by zero and an index past the list's end fail
//! the step; nothing wraps around or is clamped.

use std::fmt;

/// The variables whose values are whole numbers.
pub(crate) const NUMBERS: &[&str] = &[
    "recipient.count",
    "recipient.number",
    "item.number",
    "media.number",
    "tag.number",
    "marketing.step",
];

/// The variables whose values are lists (joined with `,` when used whole).
pub(crate) const LISTS: &[&str] = &["media_ids", "visible_to_tags", "tags"];

/// How deep parentheses and indexes may nest: an expression is a position,
/// not a program.
const MAX_DEPTH: usize = 8;
/// The longest expression read.
const MAX_LEN: usize = 200;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A whole number.
    Number(i64),
    /// A number variable.
    Variable(String),
    /// One element of a list variable: `list[index]`.
    Index(String, Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// `a op b`.
    Binary(Op, Box<Expr>, Box<Expr>),
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (whole numbers, rounding toward zero)
    Div,
    /// `%`
    Rem,
}

/// Why an expression could not be worked out for a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A variable had no value (the caller reports which).
    #[error("a variable has no value")]
    NoValue,
    /// A number variable's value is not a whole number.
    #[error("`{name}` is {value:?}, not a whole number")]
    NotANumber {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// An index past either end of a list.
    #[error(
        "`{name}[{index}]`: the list has {len} element(s) (indexes count from 1; -1 is the last)"
    )]
    OutOfRange {
        /// The list variable.
        name: String,
        /// The index asked for.
        index: i64,
        /// How many elements the list has.
        len: usize,
    },
    /// A result too large, or a division by zero.
    #[error("`{expr}` {reason}")]
    Arithmetic {
        /// The expression.
        expr: String,
        /// What went wrong.
        reason: &'static str,
    },
}

impl Expr {
    /// Whether `text` (what stood between a placeholder's braces) is meant
    /// as an expression rather than a plain variable name.
    pub(crate) fn looks_like(text: &str) -> bool {
        text.chars()
            .any(|c| matches!(c, '+' | '-' | '*' | '/' | '%' | '[' | ']' | '(' | ')'))
    }

    /// Parses `text`; the error says what is wrong, for a load error.
    pub fn parse(text: &str) -> Result<Expr, String> {
        if text.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} bytes"));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            depth: 0,
        };
        let expr = parser.sum()?;
        match parser.tokens.get(parser.at) {
            None => Ok(expr),
            Some(token) => Err(format!("has `{token}` where the expression should end")),
        }
    }

    /// The variables the expression uses.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::Number(_) => {}
            Expr::Variable(name) => out.push(name),
            Expr::Index(name, index) => {
                out.push(name);
                index.collect(out);
            }
            Expr::Negate(inner) => inner.collect(out),
            Expr::Binary(_, a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Works the expression out; `lookup` gives variable values.
    pub fn eval(
        &self,
        lookup: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<String, EvalError> {
        match self {
            Expr::Index(name, index) => {
                let index = index.number(lookup)?;
                let list = lookup(name).ok_or(EvalError::NoValue)?;
                let elements: Vec<&str> = if list.is_empty() {
                    Vec::new()
                } else {
                    list.split(',').map(str::trim).collect()
                };
                let len = elements.len();
                let position = match index {
                    1.. => usize::try_from(index - 1).ok(),
                    ..=-1 => index
                        .checked_neg()
                        .and_then(|back| usize::try_from(back).ok())
                        .and_then(|back| len.checked_sub(back)),
                    0 => None,
                };
                position
                    .and_then(|at| elements.get(at))
                    .map(|element| (*element).to_owned())
                    .ok_or_else(|| EvalError::OutOfRange {
                        name: name.clone(),
                        index,
                        len,
                    })
            }
            _ => self.number(lookup).map(|n| n.to_string()),
        }
    }

    /// Works out an arithmetic expression.
    fn number(&self, lookup: &mut dyn FnMut(&str) -> Option<String>) -> Result<i64, EvalError> {
        let overflow = |expr: &Expr| EvalError::Arithmetic {
            expr: expr.to_string(),
            reason: "is too large",
        };
        match self {
            Expr::Number(n) => Ok(*n),
            Expr::Variable(name) => {
                let value = lookup(name).ok_or(EvalError::NoValue)?;
                value.trim().parse().map_err(|_| EvalError::NotANumber {
                    name: name.clone(),
                    value,
                })
            }
            // The parser never puts an index inside arithmetic.
            Expr::Index(..) => Err(EvalError::Arithmetic {
                expr: self.to_string(),
                reason: "is a list element, not a number",
            }),
            Expr::Negate(inner) => inner
                .number(lookup)?
                .checked_neg()
                .ok_or_else(|| overflow(self)),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.number(lookup)?, b.number(lookup)?);
                let result = match op {
                    Op::Add => a.checked_add(b),
                    Op::Sub => a.checked_sub(b),
                    Op::Mul => a.checked_mul(b),
                    Op::Div | Op::Rem if b == 0 => {
                        return Err(EvalError::Arithmetic {
                            expr: self.to_string(),
                            reason: "divides by zero",
                        })
                    }
                    Op::Div => a.checked_div(b),
                    Op::Rem => a.checked_rem(b),
                };
                result.ok_or_else(|| overflow(self))
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Variable(name) => f.write_str(name),
            Expr::Index(name, index) => write!(f, "{name}[{index}]"),
            Expr::Negate(inner) => write!(f, "-{inner}"),
            Expr::Binary(op, a, b) => {
                let op = match op {
                    Op::Add => "+",
                    Op::Sub => "-",
                    Op::Mul => "*",
                    Op::Div => "/",
                    Op::Rem => "%",
                };
                write!(f, "({a} {op} {b})")
            }
        }
    }
}

/// A token of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Number(i64),
    Name(String),
    Symbol(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n) => write!(f, "{n}"),
            Token::Name(name) => f.write_str(name),
            Token::Symbol(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            ' ' | '\t' => {}
            '+' | '-' | '*' | '/' | '%' | '(' | ')' | '[' | ']' => tokens.push(Token::Symbol(c)),
            '0'..='9' => {
                let mut end = start + 1;
                while let Some(&(at, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = at + 1;
                    chars.next();
                }
                let digits = &text[start..end];
                let n = digits
                    .parse()
                    .map_err(|_| format!("has the number {digits}, which is too large"))?;
                tokens.push(Token::Number(n));
            }
            'a'..='z' | '_' => {
                let mut end = start + 1;
                while let Some(&(at, d)) = chars.peek() {
                    if !(d.is_ascii_lowercase() || d.is_ascii_digit() || d == '_' || d == '.') {
                        break;
                    }
                    end = at + d.len_utf8();
                    chars.next();
                }
                tokens.push(Token::Name(text[start..end].to_owned()));
            }
            other => {
                return Err(format!(
                    "has `{other}`, which an expression cannot have (it takes whole numbers, number variables, list[index], + - * / % and parentheses)"
                ))
            }
        }
    }
    if tokens.is_empty() {
        return Err("is empty".to_owned());
    }
    Ok(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn symbol(&mut self, symbol: char) -> bool {
        if self.peek() == Some(&Token::Symbol(symbol)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("nests deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    /// `a + b - c`
    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        loop {
            let op = if self.symbol('+') {
                Op::Add
            } else if self.symbol('-') {
                Op::Sub
            } else {
                return Ok(left);
            };
            let right = self.product()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    /// `a * b / c % d`
    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.symbol('*') {
                Op::Mul
            } else if self.symbol('/') {
                Op::Div
            } else if self.symbol('%') {
                Op::Rem
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.symbol('-') {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(match inner {
                Expr::Number(n) => Expr::Number(-n),
                other => Expr::Negate(Box::new(other)),
            });
        }
        let start = self.at;
        let expr = self.primary()?;
        if let Expr::Index(name, _) = &expr {
            let alone = start == 0 && self.at == self.tokens.len();
            if !alone {
                return Err(format!(
                    "uses `{name}[...]`, a list element, inside arithmetic: an index stands alone"
                ));
            }
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(Expr::Number(n))
            }
            Some(Token::Symbol('(')) => {
                self.at += 1;
                self.deeper()?;
                let inner = self.sum()?;
                self.depth -= 1;
                if !self.symbol(')') {
                    return Err("has a `(` that is never closed".to_owned());
                }
                Ok(inner)
            }
            Some(Token::Name(name)) => {
                self.at += 1;
                if self.symbol('[') {
                    if !LISTS.contains(&name.as_str()) {
                        return Err(format!(
                            "indexes `{name}`, which is not a list (lists: {})",
                            LISTS.join(", ")
                        ));
                    }
                    self.deeper()?;
                    let index = self.sum()?;
                    self.depth -= 1;
                    if !self.symbol(']') {
                        return Err("has a `[` that is never closed".to_owned());
                    }
                    return Ok(Expr::Index(name, Box::new(index)));
                }
                if !NUMBERS.contains(&name.as_str()) {
                    let hint = if LISTS.contains(&name.as_str()) {
                        format!(" (it is a list: take one element with `{name}[1]`)")
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "does arithmetic with `{name}`, which is not a number variable{hint} (numbers: {})",
                        NUMBERS.join(", ")
                    ));
                }
                Ok(Expr::Variable(name))
            }
            Some(token) => Err(format!(
                "has `{token}` where a number or a variable should be"
            )),
            None => Err("ends where a number or a variable should be".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "media.number" => Some("3".to_owned()),
            "item.number" => Some("2".to_owned()),
            "tag.number" => Some("not a number".to_owned()),
            "media_ids" => Some("a, b,c".to_owned()),
            "tags" => Some(String::new()),
            _ => None,
        }
    }

    fn eval(text: &str) -> Result<String, EvalError> {
        Expr::parse(text).unwrap().eval(&mut values)
    }

    #[test]
    fn arithmetic_follows_precedence_and_parentheses() {
        assert_eq!(eval("media.number + 1").unwrap(), "4");
        assert_eq!(eval("media.number + 1 * 2").unwrap(), "5");
        assert_eq!(eval("(media.number + 1) * 2").unwrap(), "8");
        assert_eq!(eval("media.number - item.number - 1").unwrap(), "0");
        assert_eq!(eval("-media.number % 2").unwrap(), "-1");
        assert_eq!(eval("7 / 2").unwrap(), "3");
        assert_eq!(eval("--1").unwrap(), "1");
    }

    #[test]
    fn indexes_count_from_one_and_from_the_end() {
        assert_eq!(eval("media_ids[1]").unwrap(), "a");
        assert_eq!(eval("media_ids[media.number]").unwrap(), "c");
        assert_eq!(eval("media_ids[-1]").unwrap(), "c");
        assert_eq!(eval("media_ids[-3]").unwrap(), "a");
        for out in ["media_ids[0]", "media_ids[4]", "media_ids[-4]", "tags[1]"] {
            assert!(
                matches!(eval(out), Err(EvalError::OutOfRange { .. })),
                "{out}"
            );
        }
        let message = eval("media_ids[4]").unwrap_err().to_string();
        assert!(message.contains("3 element(s)"), "{message}");
    }

    #[test]
    fn bad_values_and_arithmetic_fail_rather_than_wrap() {
        assert!(matches!(
            eval("tag.number + 1"),
            Err(EvalError::NotANumber { .. })
        ));
        assert_eq!(eval("recipient.number + 1"), Err(EvalError::NoValue));
        for bad in [
            "1 / 0",
            "1 % (item.number - 2)",
            "9223372036854775807 + 1",
            "-(-9223372036854775807 - 1)",
        ] {
            assert!(
                matches!(eval(bad), Err(EvalError::Arithmetic { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_expressions_are_refused_with_a_reason() {
        for (bad, needle) in [
            ("item.text + 1", "not a number variable"),
            ("media_ids + 1", "take one element"),
            ("to.name[1]", "not a list"),
            ("media_ids[1] + 1", "stands alone"),
            ("1 + media_ids[1]", "stands alone"),
            ("(media_ids[1])", "stands alone"),
            ("media.number +", "ends where"),
            ("(media.number", "never closed"),
            ("media_ids[1", "never closed"),
            ("media.number 1", "should end"),
            ("media.number ^ 2", "cannot have"),
            ("99999999999999999999", "too large"),
            ("((((((((((1))))))))))", "deeper"),
        ] {
            let error = Expr::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    proptest! {
        /// Any text either parses or is refused with a reason; what parses
        /// evaluates to a value or an error, never a panic.
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "[-+*/%()\\[\\] 0-9a-z._]{0,40}") {
            if let Ok(expr) = Expr::parse(&text) {
                let _ = expr.eval(&mut values);
            }
        }

        /// Arithmetic agrees with checked i64 arithmetic.
        #[test]
        fn arithmetic_agrees_with_checked_integers(a in any::<i64>(), b in any::<i64>()) {
            let sum = Expr::parse(&format!("{a} + ({b})"));
            if let Ok(expr) = sum {
                let got = expr.eval(&mut values).ok();
                prop_assert_eq!(got, a.checked_add(b).map(|n| n.to_string()));
            }
        }
    }
}
