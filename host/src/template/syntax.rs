//! The `{{ }}` syntax: splitting a source string into literal text and tags, classifying
//! each tag (variable, `env:`, `func:`), and walking the result against a [`Context`].
//! Owns positions (1-based line and column of each tag's `{{`); knows nothing about what
//! the functions do (that is [`super::functions`]).

use super::functions;
use super::{Context, Rendered, TemplateError, TemplateErrorKind, TemplateWarning};

/// A parsed template: literal text and tags, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pos {
    line: u32,
    column: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    /// `{{}}` or `{{   }}`: renders as nothing.
    Empty,
    Var {
        name: String,
        pos: Pos,
    },
    Env {
        name: String,
    },
    Func {
        name: String,
        args: Vec<String>,
        pos: Pos,
    },
}

impl Template {
    /// The variables this template reads, with the 1-based line and column of each tag, so
    /// a caller can check them before rendering.
    pub fn variables(&self) -> impl Iterator<Item = (&str, u32, u32)> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Var { name, pos } => Some((name.as_str(), pos.line, pos.column)),
            _ => None,
        })
    }

    /// The functions this template calls.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Func { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Every reference this template makes, as the renderer will resolve it: the one answer
    /// to "what does this template read or call" (the plugin `template` capability checks
    /// exactly these before rendering this very `Template`).
    pub fn references(&self) -> impl Iterator<Item = Reference<'_>> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Var { name, .. } => Some(Reference::Variable(name)),
            Node::Env { name } => Some(Reference::Env(name)),
            Node::Func { name, .. } => Some(Reference::Function {
                name,
                effect: functions::effect(name),
            }),
            Node::Text(_) | Node::Empty => None,
        })
    }
}

/// One thing a template refers to (see [`Template::references`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    /// `{{ meta.name }}`: a context variable.
    Variable(&'a str),
    /// `{{ env:NAME }}`: an environment variable of the context's snapshot.
    Env(&'a str),
    /// `{{ func:NAME(...) }}`.
    Function { name: &'a str, effect: Effect },
}

/// What a built-in function does besides computing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only the context.
    Pure,
    /// Calls the network (the GitHub API, with the operator's token when one is set).
    Network,
    /// Writes into the test checkout (`tox_run` patches `tox.ini`).
    WritesCheckout,
}

/// Tracks the line and column of a byte offset while scanning forward, so positions cost
/// O(length) in total, not per tag.
struct Cursor<'a> {
    src: &'a str,
    offset: usize,
    line: u32,
    column: u32,
}

impl<'a> Cursor<'a> {
    fn advance_to(&mut self, target: usize) {
        for c in self.src[self.offset..target].chars() {
            if c == '\n' {
                self.line = self.line.saturating_add(1);
                self.column = 1;
            } else {
                self.column = self.column.saturating_add(1);
            }
        }
        self.offset = target;
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

pub(super) fn parse(src: &str) -> Result<Template, TemplateError> {
    let mut nodes = Vec::new();
    let mut cur = Cursor {
        src,
        offset: 0,
        line: 1,
        column: 1,
    };
    let mut rest_start = 0;
    while let Some(rel) = src[rest_start..].find("{{") {
        let open = rest_start + rel;
        if open > rest_start {
            nodes.push(Node::Text(src[rest_start..open].to_string()));
        }
        cur.advance_to(open);
        let pos = cur.pos();
        let body_start = open + 2;
        let Some(close_rel) = src[body_start..].find("}}") else {
            return Err(error(&pos, TemplateErrorKind::UnbalancedBraces));
        };
        let body = &src[body_start..body_start + close_rel];
        nodes.push(classify(body, pos)?);
        rest_start = body_start + close_rel + 2;
    }
    if rest_start < src.len() {
        nodes.push(Node::Text(src[rest_start..].to_string()));
    }
    Ok(Template { nodes })
}

fn error(pos: &Pos, kind: TemplateErrorKind) -> TemplateError {
    TemplateError {
        line: pos.line,
        column: pos.column,
        kind,
    }
}

/// Whitespace anywhere inside a variable or env tag is ignored (upstream: `{{ a b c }}` is
/// `{{abc}}`).
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn classify(body: &str, pos: Pos) -> Result<Node, TemplateError> {
    let key = squeeze(body);
    if key.is_empty() {
        return Ok(Node::Empty);
    }
    if let Some(name) = key.strip_prefix("env:") {
        return Ok(Node::Env {
            name: name.to_string(),
        });
    }
    if key.starts_with("func:") {
        return parse_call(body, pos);
    }
    Ok(Node::Var { name: key, pos })
}

/// `func:NAME(a, b)`: arguments split on `,` and trimmed, whitespace inside an argument
/// kept (upstream squeezed it out, turning `-k not slow` into `-knotslow`).
fn parse_call(body: &str, pos: Pos) -> Result<Node, TemplateError> {
    let text = body.trim().to_string();
    let malformed = |reason: &str| {
        error(
            &pos,
            TemplateErrorKind::MalformedFunction {
                text: text.clone(),
                reason: reason.to_string(),
            },
        )
    };
    let Some(open) = body.find('(') else {
        return Err(malformed("the function name must be followed by `(`"));
    };
    let Some(close) = body.rfind(')').filter(|c| *c > open) else {
        return Err(malformed("the arguments must be closed with `)`"));
    };
    if !body[close + 1..].trim().is_empty() {
        return Err(malformed("unexpected text after `)`"));
    }
    let head = squeeze(&body[..open]);
    let name = head.strip_prefix("func:").unwrap_or(&head).to_string();
    if name.is_empty() {
        return Err(malformed("missing function name"));
    }
    let args: Vec<String> = body[open + 1..close]
        .split(',')
        .map(|a| a.trim().to_string())
        .collect();
    let Some(arity) = functions::arity(&name) else {
        return Err(error(
            &pos,
            TemplateErrorKind::UnknownFunction {
                name,
                known: functions::names().map(str::to_string).collect(),
            },
        ));
    };
    if args.len() != arity {
        return Err(error(
            &pos,
            TemplateErrorKind::WrongArgumentCount {
                name,
                expected: arity,
                got: args.len(),
            },
        ));
    }
    Ok(Node::Func { name, args, pos })
}

pub(super) fn render(t: &Template, ctx: &Context) -> Result<Rendered, TemplateError> {
    let mut text = String::new();
    let mut warnings = Vec::new();
    for node in &t.nodes {
        match node {
            Node::Text(s) => text.push_str(s),
            Node::Empty => {}
            Node::Var { name, pos } => match ctx.vars.get(name) {
                Some(v) => text.push_str(v),
                None if ctx.strict => {
                    return Err(error(
                        pos,
                        TemplateErrorKind::UnknownVariable { name: name.clone() },
                    ));
                }
                None => warnings.push(TemplateWarning {
                    line: pos.line,
                    column: pos.column,
                    name: name.clone(),
                }),
            },
            Node::Env { name } => text.push_str(&ctx.env.get(name).unwrap_or_default()),
            Node::Func { name, args, pos } => {
                let value = functions::call(name, args, ctx).map_err(|message| {
                    error(
                        pos,
                        TemplateErrorKind::FunctionFailed {
                            name: name.clone(),
                            message,
                        },
                    )
                })?;
                text.push_str(&value);
            }
        }
    }
    Ok(Rendered { text, warnings })
}
