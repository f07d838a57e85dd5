//! Sharing a desired count among the members that carry it out: worker
//! processes (concurrency actuator) or supervisors (process actuator).

use std::collections::BTreeMap;

/// Shares `total` among `members` as evenly as possible (the first ones by
/// id get one more), each getting at least `floor_each`. The result's sum
/// is `total`, or `floor_each × members` when that is more.
pub fn share(total: u32, members: &[String], floor_each: u32) -> BTreeMap<String, u32> {
    let mut ids: Vec<&String> = members.iter().collect();
    ids.sort();
    ids.dedup();
    let n = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return BTreeMap::new();
    }
    let (each, extra) = (total / n, total % n);
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let bonus = u32::from(u32::try_from(i).unwrap_or(u32::MAX) < extra);
            (id.clone(), (each + bonus).max(floor_each))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        let s = share(10, &ids(&["c", "a", "b"]), 1);
        assert_eq!(s.values().sum::<u32>(), 10);
        assert_eq!(s["a"], 4);
        assert_eq!(s["b"], 3);
        assert_eq!(s["c"], 3);
    }

    #[test]
    fn every_member_gets_its_floor() {
        let s = share(1, &ids(&["a", "b"]), 1);
        assert_eq!((s["a"], s["b"]), (1, 1));
        let s = share(1, &ids(&["a", "b"]), 0);
        assert_eq!((s["a"], s["b"]), (1, 0));
        assert!(share(5, &[], 1).is_empty());
    }
}
