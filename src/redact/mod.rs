//! Redaction (SPEC.md "Redaction"): finds confidential spans in what a client sends and masks,
//! pseudonymizes or refuses them before anything leaves; restores pseudonyms in the answer.
//!
//! A pure library: no I/O after [`Rules::load`], no async, no axum.
//!
//! ```text
//! startup:      Rules::load("redaction/")                     -> Arc<Rules>
//! per contract: ContractMatcher::new(&ContractRedaction{..})   -> cached, shared
//! per request:  let mut s = rules.session(&matcher);
//!               s.redact_json(&mut body_part)? / s.redact_strings(strings)? / s.redact_text(t)?
//!               s.counts(), s.total()                          -> log and X-Mamori-Redactions
//!               let map = s.pseudonyms();                      -> Arc, shared by the answer's streams
//! per stream:   let mut r = map.stream();  r.push(delta)…  r.finish()
//!               (map.stream_json_escaped() for tool-call argument fragments)
//! ```
//!
//! Sources, in the order they win when spans overlap (the outermost span wins; see `session.rs`):
//! author tags, tagged fields, detectors (`redaction/*.toml`), the contract's terms, and values
//! already redacted elsewhere in the same request (so `氏名：山田由美` also hides a later
//! `山田由美さん`).
//!
//! Placeholders look like `[PERSON_NAME_1_K7QX]`: an upper-case ASCII word that says what the value
//! is, a number per word, and a 4-character tag drawn at random per session. Why this shape:
//! - models copy bracketed upper-case identifiers verbatim, and do not translate them the way
//!   they may translate `[氏名_1]` when asked for English;
//! - the word keeps the prompt meaningful (`[PERSON_NAME_1_K7QX]様` is still a salutation);
//! - the session tag means a user who types `[PERSON_NAME_1]` (or pastes a placeholder from an
//!   earlier answer) never gets a real value substituted: only placeholders minted in this
//!   session are restored, and a minted one cannot already be in the request except by a
//!   one-in-923,521 guess of its tag;
//! - it contains no `"`, `\` or control characters, so it is safe inside JSON strings.
//!
//! Invariant: plaintext of a redacted value never appears in an error, a `Debug` output, a log
//! line or a panic message. [`Refused`] carries labels, tag names and line numbers only; the types
//! holding values ([`Session`], [`Pseudonyms`], [`Restorer`], [`ContractRedaction`]) print counts.
mod clean;
mod contract;
mod finder;
mod keywords;
mod markup;
mod normalize;
mod restore;
mod rules;
mod scan;
mod session;
mod sql;
#[cfg(test)]
mod tests;
mod validate;

pub use contract::{ContractMatcher, ContractRedaction};
pub use restore::{Pseudonyms, Restorer};
pub use rules::{Action, Rules, DEFAULT_CLEAN_TEXTS};
pub use session::{json_strings_mut, Session};

use crate::refusal::Code;
use std::fmt;

/// Why a request must not be sent. Carries no plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the confidential tag {tag} on line {line} {problem}; nothing was sent. Close every confidential tag with its own closing tag and send again")]
    TagUnclosed {
        /// The configured tag (e.g. `<機密>`), not the text around it.
        tag: String,
        problem: TagProblem,
        /// 1-based line of the tag within the text that held it.
        line: usize,
    },
    #[error("the request contains {label} content, which this gateway does not send to AI services; nothing was sent. Remove it and send again")]
    Blocked { label: String },
}

impl Refused {
    /// The stable refusal code of SPEC.md.
    pub fn code(&self) -> Code {
        match self {
            Refused::TagUnclosed { .. } => Code::ConfidentialTagUnclosed,
            Refused::Blocked { .. } => Code::ConfidentialContentBlocked,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagProblem {
    /// Opened and never closed.
    NotClosed,
    /// A closing tag with no opening one before it.
    CloseWithoutOpen,
    /// Closed by another pair's closing tag (`<機密>…</confidential>`).
    ClosedByOther { close: String },
}

impl fmt::Display for TagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagProblem::NotClosed => write!(f, "is not closed"),
            TagProblem::CloseWithoutOpen => write!(f, "closes nothing (no opening tag before it)"),
            TagProblem::ClosedByOther { close } => {
                write!(f, "is closed by {close}, which does not match it")
            }
        }
    }
}
