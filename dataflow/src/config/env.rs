//! The environment a configuration reads its overlays from: the process environment in production, a fixed
//! set of variables in tests (so a test never has to change the process environment).

use std::collections::BTreeMap;

/// A read-only environment lookup. Every environment overlay and env-held secret is read through one.
#[derive(Clone, Debug)]
pub struct Env {
    /// `None`: the process environment; `Some`: exactly these variables.
    fixed: Option<BTreeMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env { fixed: None }
    }

    /// No variables at all (tests).
    pub fn empty() -> Env {
        Env { fixed: Some(BTreeMap::new()) }
    }

    /// Exactly the given variables, nothing from the process (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Env {
        Env { fixed: Some(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()) }
    }

    /// The value of `name`, `None` when it is unset, empty or not UTF-8.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            None => std::env::var(name).ok(),
            Some(vars) => vars.get(name).cloned(),
        };
        value.filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_environment_hides_the_process_and_empty_values() {
        let env = Env::from_pairs([("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.get("PATH"), None, "the process environment is not consulted");
        assert!(Env::process().get("PATH").is_some());
    }
}
