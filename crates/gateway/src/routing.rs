//! Choosing the upstream target for a model. Today: the first target whose model patterns match.
//! Aliases, weights, health and failover build on [`plan`] (issue: providers and routing).

use crate::state::Target;

/// The target that serves `model`, if any.
pub fn plan<'a>(targets: &'a [Target], model: &str) -> Option<&'a Target> {
    targets
        .iter()
        .find(|t| t.models.is_empty() || t.models.iter().any(|p| matches_pattern(p, model)))
}

/// Glob match where `*` stands for any run of characters (possibly empty); nothing else is
/// special. Model names are short, so the simple backtracking walk is plenty.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn glob_patterns() {
        assert!(matches_pattern("gpt-4o", "gpt-4o"));
        assert!(!matches_pattern("gpt-4o", "gpt-4o-mini"));
        assert!(matches_pattern("gpt-*", "gpt-4o-mini"));
        assert!(matches_pattern("gpt-*", "gpt-"));
        assert!(!matches_pattern("gpt-*", "claude-3"));
        assert!(matches_pattern("o*", "o3-mini"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("*-mini", "gpt-4o-mini"));
        assert!(!matches_pattern("*-mini", "gpt-4o"));
        assert!(matches_pattern("a*b*c", "a-x-b-y-c"));
        assert!(!matches_pattern("a*b*c", "a-x-c-y-b"));
        assert!(!matches_pattern("ab*ba", "aba"));
    }
}
