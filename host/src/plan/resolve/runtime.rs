//! `[runtime]`: variables expanded in file order against the earlier ones and the environment
//! snapshot.

use super::Resolver;
use crate::config::values;

impl Resolver<'_> {
    pub(super) fn runtime(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(sec) = self.delivery().section("runtime").cloned() else {
            return out;
        };
        for e in &sec.entries {
            let value = {
                let env = &self.env;
                let so_far = &out;
                values::expand_vars(&e.value, &|name| {
                    so_far
                        .get(name)
                        .and_then(|v| v.as_str().map(str::to_string))
                        .or_else(|| env.get(name).cloned())
                })
            };
            out.insert(e.key.clone(), serde_json::Value::String(value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::World;

    #[test]
    fn runtime_expands_in_file_order_against_earlier_keys_and_the_snapshot() {
        let plan = World::new()
            .with_delivery("\n[runtime]\nA = x\nB = $A/y\nC = ${HOME}/c\nD = $$A $UNSET.\n")
            .plan();
        let r: Vec<(&str, &str)> = plan
            .runtime
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert_eq!(
            r,
            [("A", "x"), ("B", "x/y"), ("C", "/home/op/c"), ("D", "$A .")]
        );
    }
}
