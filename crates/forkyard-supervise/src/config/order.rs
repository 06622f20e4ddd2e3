//! Dependencies between units: expanded from services to units, put in start order, and
//! followed to pick what a selection needs.
//!
//! Why this module exists: a service with 40,000 `instances` is 40,000 units, and a
//! dependency on it is 40,000 edges. Everything here works through name indices, in time
//! proportional to units plus edges (a heap adds a logarithm to the ordering, to keep its
//! order stable), so that `up --check` of such a file takes a fraction of a second rather
//! than the minutes a scan per unit would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::model::Unit;

/// Where to find units by name, and by the service they belong to.
pub(super) struct Index<'a> {
    by_name: HashMap<&'a str, usize>,
    by_service: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Index<'a> {
    pub(super) fn new(units: &'a [Unit]) -> Index<'a> {
        let mut by_name = HashMap::with_capacity(units.len());
        let mut by_service: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, u) in units.iter().enumerate() {
            by_name.insert(u.name.as_str(), i);
            by_service.entry(u.service.as_str()).or_default().push(i);
        }
        Index { by_name, by_service }
    }

    /// The positions of the units a name means: all of a service's, or one unit's.
    pub(super) fn named(&self, name: &str) -> &[usize] {
        match self.by_service.get(name) {
            Some(all) => all,
            None => self.by_name.get_key_value(name).map_or(&[], |(_, i)| std::slice::from_ref(i)),
        }
    }

    /// The position of the unit called `name`.
    fn unit(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

/// Which units `roots` need: themselves and everything they depend on, directly or not.
pub(super) fn needed(units: &[Unit], index: &Index<'_>, roots: &[usize]) -> Vec<bool> {
    let mut keep = vec![false; units.len()];
    let mut stack: Vec<usize> = Vec::with_capacity(roots.len());
    for &r in roots {
        if !keep[r] {
            keep[r] = true;
            stack.push(r);
        }
    }
    while let Some(i) = stack.pop() {
        for (dep, _) in &units[i].depends_on {
            if let Some(j) = index.unit(dep) {
                if !keep[j] {
                    keep[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    keep
}

/// Rewrites service-level dependencies to unit names (every instance of a multi-instance
/// service), then orders units so that each comes after what it depends on. The order is
/// stable: at each step, the first unit (in the given order) whose dependencies have all
/// been placed (Kahn's algorithm, with the ready units in a heap by position). On a cycle,
/// returns it as a list of service names.
pub(super) fn expand_and_order(mut units: Vec<Unit>) -> Result<Vec<Unit>, Vec<String>> {
    let mut by_service: HashMap<String, Vec<String>> = HashMap::new();
    for u in &units {
        by_service.entry(u.service.clone()).or_default().push(u.name.clone());
    }
    for u in &mut units {
        u.depends_on = u
            .depends_on
            .iter()
            .flat_map(|(svc, c)| by_service.get(svc).into_iter().flatten().map(move |n| (n.clone(), *c)))
            .collect();
    }
    let order = {
        let index = Index::new(&units);
        // waiting[i]: dependencies of unit i not placed yet; dependents[j]: who waits on j.
        let mut waiting = vec![0usize; units.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for (i, u) in units.iter().enumerate() {
            for (dep, _) in &u.depends_on {
                if let Some(j) = index.unit(dep) {
                    waiting[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> =
            waiting.iter().enumerate().filter(|(_, w)| **w == 0).map(|(i, _)| Reverse(i)).collect();
        let mut order = Vec::with_capacity(units.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    ready.push(Reverse(k));
                }
            }
        }
        if order.len() < units.len() {
            return Err(find_cycle(&units, &index, &waiting));
        }
        order
    };
    let mut slots: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// A cycle among the units that could not be placed (`waiting` above zero), as service
/// names: from the first such unit, follow the first dependency that is also stuck until a
/// unit comes round again.
fn find_cycle(units: &[Unit], index: &Index<'_>, waiting: &[usize]) -> Vec<String> {
    let stuck = |i: usize| waiting[i] > 0;
    let Some(start) = (0..units.len()).find(|&i| stuck(i)) else { return Vec::new() };
    let mut path = vec![start];
    let mut on_path: HashMap<usize, usize> = HashMap::from([(start, 0)]);
    loop {
        let last = path[path.len() - 1];
        let next = units[last].depends_on.iter().find_map(|(d, _)| index.unit(d).filter(|&j| stuck(j)));
        let Some(next) = next else {
            return path.iter().map(|&i| units[i].service.clone()).collect();
        };
        if let Some(&at) = on_path.get(&next) {
            let mut cycle: Vec<String> = path[at..].iter().map(|&i| units[i].service.clone()).collect();
            cycle.push(units[next].service.clone());
            cycle.dedup();
            return cycle;
        }
        on_path.insert(next, path.len());
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CommandLine, Condition};

    fn unit(name: &str, deps: &[&str]) -> Unit {
        Unit {
            depends_on: deps.iter().map(|d| (d.to_string(), Condition::Started)).collect(),
            ..Unit::new(name, CommandLine::Shell("true".into()), "/".into())
        }
    }

    fn names(units: &[Unit]) -> Vec<&str> {
        units.iter().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn the_first_ready_unit_goes_first() {
        // As the old scan did: api waits for db, so cache and db go first, then api, web.
        let units = vec![unit("api", &["db"]), unit("cache", &[]), unit("db", &[]), unit("web", &["api"])];
        let ordered = expand_and_order(units).expect("no cycle");
        assert_eq!(names(&ordered), ["cache", "db", "api", "web"]);
    }

    #[test]
    fn a_service_dependency_means_every_instance() {
        let mut units = vec![unit("web", &["db"])];
        for i in 1..=3 {
            units.push(Unit { name: format!("db.{i}"), instance: Some(i), ..unit("db", &[]) });
        }
        let ordered = expand_and_order(units).expect("no cycle");
        assert_eq!(names(&ordered), ["db.1", "db.2", "db.3", "web"]);
        let deps: Vec<&str> = ordered[3].depends_on.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(deps, ["db.1", "db.2", "db.3"]);
    }

    #[test]
    fn a_cycle_is_named_from_its_first_unit() {
        // x depends on the cycle a -> b -> c -> a without being in it.
        let units = vec![unit("x", &["a"]), unit("a", &["b"]), unit("b", &["c"]), unit("c", &["a"]), unit("ok", &[])];
        assert_eq!(expand_and_order(units), Err(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    }

    #[test]
    fn many_instances_are_ordered() {
        let mut units = vec![unit("web", &["db"])];
        let n = 5000;
        for i in 1..=n {
            units.push(Unit { name: format!("db.{i}"), instance: Some(i), ..unit("db", &[]) });
        }
        let ordered = expand_and_order(units).expect("no cycle");
        assert_eq!(ordered.len(), n as usize + 1);
        assert_eq!(ordered[n as usize].name, "web");
    }
}
