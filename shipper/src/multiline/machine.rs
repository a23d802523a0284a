//! The state machine behind a detector, in Fluent Bit's multiline model.
//!
//! A machine is a set of named states, each with an ordered list of rules `(regex, next
//! state)`. Every stream starts in `start_state`. A line that matches a rule of the current
//! state moves the stream to that rule's next state and belongs to the trace in progress;
//! a line that matches none ends the trace and is tried again from `start_state`, where it
//! may begin the next trace. A state without rules is terminal: the trace is known to be
//! complete as soon as it gets there.
//!
//! One addition to Fluent Bit's rules: a rule may be negated (it matches the lines its
//! regex does not), which is how the custom "start only" and "continuation only" detectors
//! are written without look-around (the `regex` crate has none, by design: linear time).

use regex::Regex;

/// Index of a state in [`Machine::states`].
pub(super) type StateId = usize;

/// The state every stream starts in, and returns to when a trace ends.
pub(super) const START: StateId = 0;

/// The name of [`START`] in rule tables, as in Fluent Bit and fluent-plugin-detect-exceptions.
pub(super) const START_NAME: &str = "start_state";

/// One rule of a state: when `regex` matches (or, if `negate`, does not), go to `to`.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) regex: Regex,
    pub(super) negate: bool,
    pub(super) to: StateId,
}

/// A compiled rule table.
#[derive(Debug)]
pub(super) struct Machine {
    /// Rules per state, tried in order; `states[START]` is `start_state`.
    states: Vec<Vec<Rule>>,
}

/// One line of a rule table: from any of these states, on a match, go to that state.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleSpec {
    pub(super) from: &'static [&'static str],
    pub(super) pattern: &'static str,
    pub(super) to: &'static str,
}

/// Shorthand for the rule tables of the built-in detectors.
pub(super) const fn rule(from: &'static [&'static str], pattern: &'static str, to: &'static str) -> RuleSpec {
    RuleSpec { from, pattern, to }
}

impl Machine {
    /// Build a machine from `(from states, compiled regex, negate, to state)` rules, naming
    /// states by string; the first state is always [`START_NAME`].
    pub(super) fn new<'a>(rules: impl IntoIterator<Item = (&'a [&'a str], Regex, bool, &'a str)>) -> Machine {
        let mut names: Vec<&str> = vec![START_NAME];
        let id = |name: &'a str, names: &mut Vec<&'a str>| -> StateId {
            names.iter().position(|n| *n == name).unwrap_or_else(|| {
                names.push(name);
                names.len() - 1
            })
        };
        let mut states: Vec<Vec<Rule>> = Vec::new();
        for (from, regex, negate, to) in rules {
            let to = id(to, &mut names);
            for from in from {
                let from = id(from, &mut names);
                states.resize_with(names.len(), Vec::new);
                states[from].push(Rule { regex: regex.clone(), negate, to });
            }
        }
        // States only ever named as targets have no rules: they are the terminal ones.
        states.resize_with(names.len(), Vec::new);
        Machine { states }
    }

    /// The state after `text` when the stream is in `from`: `Some` if a rule of `from`
    /// matches.
    pub(super) fn step(&self, from: StateId, text: &str) -> Option<StateId> {
        self.states[from].iter().find(|rule| rule.regex.is_match(text) != rule.negate).map(|rule| rule.to)
    }

    /// A trace that reaches `state` is complete: no line can continue it.
    pub(super) fn is_terminal(&self, state: StateId) -> bool {
        state != START && self.states[state].is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(rules: &[(&'static [&'static str], &str, bool, &'static str)]) -> Machine {
        Machine::new(rules.iter().map(|(from, pattern, negate, to)| {
            (*from, Regex::new(pattern).expect("test pattern"), *negate, *to)
        }))
    }

    #[test]
    fn first_matching_rule_of_the_current_state_wins() {
        let m = machine(&[
            (&["start_state"], "^a", false, "one"),
            (&["one"], "^b", false, "two"),
            (&["one", "two"], "^b|^c", false, "one"),
        ]);
        let one = m.step(START, "a").expect("a starts");
        assert_eq!(m.step(START, "b"), None, "rules of other states do not apply");
        let two = m.step(one, "b").expect("b continues");
        assert_ne!(two, one);
        assert_eq!(m.step(one, "c"), Some(one));
        assert_eq!(m.step(two, "b"), Some(one));
        assert!(!m.is_terminal(START) && !m.is_terminal(one) && !m.is_terminal(two));
    }

    #[test]
    fn negated_rules_and_terminal_states() {
        let m = machine(&[(&["start_state"], "^x", true, "body"), (&["body"], "^end$", false, "done")]);
        let body = m.step(START, "anything").expect("negated rule matches other lines");
        assert_eq!(m.step(START, "xyz"), None);
        let done = m.step(body, "end").expect("end matches");
        assert!(m.is_terminal(done));
        assert!(!m.is_terminal(body));
    }
}
