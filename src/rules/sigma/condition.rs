//! A Sigma `condition`: search identifiers joined by `and`, `or`, `not` and parentheses,
//! and the quantifiers `1 of X*`, `all of X*`, `1 of them`, `all of them`. Parsed once,
//! against the rule's search names, so a name that does not exist is a load error.

/// A parsed condition over the rule's searches, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Search(usize),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    /// Evaluate with `hit(i)` telling whether search `i` matched.
    pub fn eval(&self, hit: &mut impl FnMut(usize) -> bool) -> bool {
        match self {
            Condition::Search(i) => hit(*i),
            Condition::Not(c) => !c.eval(hit),
            Condition::And(cs) => cs.iter().all(|c| c.eval(hit)),
            Condition::Or(cs) => cs.iter().any(|c| c.eval(hit)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    One,
    All,
    Of,
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '|' => return Err("`|` aggregations are not supported (correlation rules)".into()),
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(match word.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "1" => Token::One,
                    "all" => Token::All,
                    "of" => Token::Of,
                    _ => Token::Word(word),
                });
            }
        }
    }
    Ok(out)
}

/// Parse `text` against the rule's search names.
pub fn parse(text: &str, names: &[String]) -> Result<Condition, String> {
    let tokens = tokens(text)?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        names,
    };
    let c = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(c),
        Some(t) => Err(format!("unexpected {t:?} in condition `{text}`")),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    names: &'a [String],
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Condition::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Condition::And(parts)
        })
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Condition, String> {
        match self.next().cloned() {
            Some(Token::Open) => {
                let c = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(c),
                    _ => Err("a `(` is not closed".into()),
                }
            }
            Some(q @ (Token::One | Token::All)) => {
                if self.next() != Some(&Token::Of) {
                    return Err("`1`/`all` must be followed by `of`".into());
                }
                let Some(Token::Word(pattern)) = self.next().cloned() else {
                    return Err(
                        "`of` must be followed by a search name, a pattern or `them`".into(),
                    );
                };
                let chosen = self.matching(&pattern)?;
                let parts: Vec<Condition> = chosen.into_iter().map(Condition::Search).collect();
                Ok(if q == Token::One {
                    Condition::Or(parts)
                } else {
                    Condition::And(parts)
                })
            }
            Some(Token::Word(name)) => self
                .names
                .iter()
                .position(|n| *n == name)
                .map(Condition::Search)
                .ok_or_else(|| {
                    format!("the condition names `{name}`, which is no search of the rule")
                }),
            other => Err(format!("unexpected {other:?} in the condition")),
        }
    }

    /// The searches `them` or a name pattern (`selection_*`) stands for.
    fn matching(&self, pattern: &str) -> Result<Vec<usize>, String> {
        let chosen: Vec<usize> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                pattern == "them"
                    || match pattern.strip_suffix('*') {
                        Some(prefix) => n.starts_with(prefix),
                        None => *n == pattern,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        if chosen.is_empty() {
            return Err(format!("`{pattern}` names no search of the rule"));
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn eval(condition: &str, searches: &[&str], hits: &[bool]) -> bool {
        parse(condition, &names(searches))
            .unwrap()
            .eval(&mut |i| hits[i])
    }

    /// The Sigma specification's condition examples.
    #[test]
    fn conditions_of_the_specification() {
        let s = ["selection", "filter", "keywords"];
        assert!(eval("selection and not filter", &s, &[true, false, false]));
        assert!(!eval("selection and not filter", &s, &[true, true, false]));
        assert!(eval("selection or keywords", &s, &[false, false, true]));
        assert!(eval(
            "(selection or keywords) and not filter",
            &s,
            &[false, false, true]
        ));
        // `and` binds tighter than `or`.
        assert!(eval(
            "keywords or selection and filter",
            &s,
            &[false, false, true]
        ));
        let q = ["selection_a", "selection_b", "filter_main_x"];
        assert!(eval("1 of selection_*", &q, &[false, true, false]));
        assert!(!eval("all of selection_*", &q, &[false, true, false]));
        assert!(eval("all of them", &q, &[true, true, true]));
        assert!(eval("1 of them", &q, &[false, false, true]));
        assert!(eval(
            "1 of selection_* and not 1 of filter_main_*",
            &q,
            &[true, false, false]
        ));
    }

    #[test]
    fn unknown_names_and_aggregations_are_refused() {
        let n = names(&["selection"]);
        assert!(parse("selection and filter", &n)
            .unwrap_err()
            .contains("`filter`"));
        assert!(parse("1 of filter*", &n).unwrap_err().contains("filter*"));
        assert!(parse("selection | count() > 5", &n)
            .unwrap_err()
            .contains("aggregations"));
        assert!(parse("(selection", &n).is_err());
    }
}
