//! The attacker published statistics must withstand, as a reusable linear program.
//!
//! An attacker who reads every published cell of a family of linked tables (and of its
//! sub-periods) knows, for each measure, a system of linear equalities over unknown non-negative
//! finest values: each published cell is the sum of the finest cells it covers, and a flow of a
//! quarter or year is the sum of the same cell's months or quarters. What they can learn about a
//! withheld cell is the interval between the least and the greatest value of its sum under those
//! equalities — two linear programs. [`System`] is that attacker: the auditor calls it on each
//! withheld value, and the tests call the same code on the tables a consumer reads.
//!
//! Solver: `microlp` (pure Rust, the maintained fork of `minilp`, the solver behind `good_lp`'s
//! default backend), used directly — `good_lp`'s modelling layer would add a dependency for a
//! problem this regular. Problems are small: variables are only the finest cells no published
//! cell pins down, which [`System::pin`] substitutes away before any program is built.

use std::collections::{BTreeMap, HashMap};

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::disclosure::is_primary;
use super::family::{Family, intersects};

/// A term of a linear expression: (unknown, coefficient).
pub(super) type Term = (usize, f64);

/// What an attacker knows: unknowns `x ≥ 0`, and equalities `Σ coefficient × x = rhs`.
#[derive(Debug, Default, Clone)]
pub(super) struct System {
    unknowns: usize,
    equalities: Vec<(Vec<Term>, f64)>,
    /// Unknowns whose value a published cell gives directly.
    pinned: HashMap<usize, f64>,
}

/// The interval an attacker can narrow a value to (`f64::INFINITY` above when unbounded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Interval {
    /// The least value consistent with what is published.
    pub(super) low: f64,
    /// The greatest.
    pub(super) high: f64,
}

/// What the published cells say is impossible: they contradict each other under the attacker's
/// assumptions (additivity), which happens when a structure changed kind or département inside a
/// period (see `aggregates::Placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inconsistent;

impl System {
    /// A new unknown (a finest cell's value, `≥ 0`).
    pub(super) fn unknown(&mut self) -> usize {
        self.unknowns += 1;
        self.unknowns - 1
    }

    /// The attacker learns `unknown = value` (a finest cell is published).
    pub(super) fn pin(&mut self, unknown: usize, value: f64) {
        self.pinned.insert(unknown, value);
    }

    /// The attacker learns `Σ terms = rhs`.
    pub(super) fn equal(&mut self, terms: Vec<Term>, rhs: f64) {
        self.equalities.push((terms, rhs));
    }

    /// Substitutes pinned unknowns and solves for one solution, from which every question is
    /// then a warm start (a constraint added to a copy of it, a few dual simplex steps).
    pub(super) fn prepare(&self) -> Result<Prepared, Inconsistent> {
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut equalities = Vec::new();
        for (terms, rhs) in &self.equalities {
            let (terms, rhs) = reduce(&self.pinned, &mut index, terms, *rhs);
            if terms.is_empty() {
                if rhs.abs() > TOLERANCE * rhs.abs().max(1.0) {
                    return Err(Inconsistent);
                }
                continue;
            }
            equalities.push((terms, rhs));
        }
        let mut problem = Problem::new(OptimizationDirection::Minimize);
        let vars: Vec<_> = (0..index.len()).map(|_| problem.add_var(0.0, (0.0, f64::INFINITY))).collect();
        for (terms, rhs) in &equalities {
            let expr: Vec<_> = terms.iter().map(|&(i, c)| (vars[i], c)).collect();
            problem.add_constraint(expr.as_slice(), ComparisonOp::Eq, *rhs);
        }
        let base = match problem.solve() {
            Ok(microlp::SolveOutcome::Solution(solution)) => Some(solution),
            _ if equalities.is_empty() => None,
            _ => return Err(Inconsistent),
        };
        let constrained = equalities.iter().flat_map(|(terms, _)| terms.iter().map(|(i, _)| *i)).collect();
        Ok(Prepared { pinned: self.pinned.clone(), index, equalities, vars, base, constrained })
    }

    /// The interval of `Σ objective` over every solution (two programs solved from scratch;
    /// [`Prepared::protects`] answers the audit's question faster).
    #[cfg(test)]
    pub(super) fn range(&self, objective: &[Term]) -> Result<Interval, Inconsistent> {
        self.prepare()?.range(objective)
    }
}

/// Moves pinned unknowns of `terms` to the right-hand side and numbers the others densely.
fn reduce(
    pinned: &HashMap<usize, f64>,
    index: &mut HashMap<usize, usize>,
    terms: &[Term],
    rhs: f64,
) -> (Vec<Term>, f64) {
    let mut rhs = rhs;
    let mut out: Vec<Term> = Vec::new();
    for &(x, c) in terms {
        if let Some(v) = pinned.get(&x) {
            rhs -= c * v;
        } else {
            let next = index.len();
            let i = *index.entry(x).or_insert(next);
            match out.iter_mut().find(|(j, _)| *j == i) {
                Some(term) => term.1 += c,
                None => out.push((i, c)),
            }
        }
    }
    (out, rhs)
}

/// A [`System`] reduced and solved once.
pub(super) struct Prepared {
    pinned: HashMap<usize, f64>,
    index: HashMap<usize, usize>,
    equalities: Vec<(Vec<Term>, f64)>,
    vars: Vec<microlp::Variable>,
    /// One solution (`None` when nothing constrains the free unknowns).
    base: Option<microlp::Solution>,
    /// The reduced unknowns some equality mentions.
    constrained: std::collections::HashSet<usize>,
}

impl Prepared {
    /// `Σ objective` as reduced terms and a constant, and whether terms naming an unknown the
    /// system never saw (free: any value `≥ 0`) let it grow (`.2`) or fall (`.3`) unbounded.
    fn objective(&self, objective: &[Term]) -> (Vec<Term>, f64, bool, bool) {
        let mut constant = 0.0;
        let mut out: Vec<Term> = Vec::new();
        let (mut up, mut down) = (false, false);
        for &(x, c) in objective {
            if let Some(v) = self.pinned.get(&x) {
                constant += c * v;
            } else if let Some(i) = self.index.get(&x) {
                match out.iter_mut().find(|(j, _)| *j == *i) {
                    Some(term) => term.1 += c,
                    None => out.push((*i, c)),
                }
            } else if c > 0.0 {
                up = true;
            } else if c < 0.0 {
                down = true;
            }
        }
        (out, constant, up, down)
    }

    /// Whether the value `value` of `Σ objective` keeps its protection range: some solution
    /// puts it at or below `value × (1 − p)`, and some at or above `value × (1 + p)`.
    pub(super) fn protects(&self, objective: &[Term], value: i64, percent: u32) -> bool {
        if value <= 0 {
            return true;
        }
        let (terms, constant, unseen, _) = self.objective(objective);
        // An unknown no equality mentions (and no pin) can grow without bound: the upper end is
        // open; and every unknown can be 0 unless an equality says otherwise.
        let free = |t: &[Term]| t.iter().any(|(i, c)| *c > 0.0 && !self.constrained.contains(i));
        if terms.iter().all(|(i, _)| !self.constrained.contains(i)) && (unseen || !terms.is_empty()) {
            return constant <= low_end(value, percent);
        }
        let Some(base) = &self.base else {
            return constant <= low_end(value, percent) && (unseen || free(&terms));
        };
        let reach = |op: ComparisonOp, bound: f64| -> bool {
            let expr: Vec<_> = terms.iter().map(|&(i, c)| (self.vars[i], c)).collect();
            matches!(
                base.clone().add_constraint(expr.as_slice(), op, bound - constant),
                Ok(microlp::SolveOutcome::Solution(_))
            )
        };
        let low = reach(ComparisonOp::Le, low_end(value, percent));
        let high = unseen || free(&terms) || reach(ComparisonOp::Ge, high_end(value, percent));
        low && high
    }

    /// The interval of `Σ objective` (for diagnostics and tests).
    pub(super) fn range(&self, objective: &[Term]) -> Result<Interval, Inconsistent> {
        let (terms, constant, up, down) = self.objective(objective);
        if terms.is_empty() {
            let high = if up { f64::INFINITY } else { constant };
            let low = if down { f64::NEG_INFINITY } else { constant };
            return Ok(Interval { low, high });
        }
        let solve = |direction| -> Result<f64, Inconsistent> {
            let mut problem = Problem::new(direction);
            let mut coefficient = vec![0.0; self.vars.len()];
            for &(i, c) in &terms {
                coefficient[i] += c;
            }
            let vars: Vec<_> =
                coefficient.iter().map(|c| problem.add_var(*c, (0.0, f64::INFINITY))).collect();
            for (eq, rhs) in &self.equalities {
                let expr: Vec<_> = eq.iter().map(|&(i, c)| (vars[i], c)).collect();
                problem.add_constraint(expr.as_slice(), ComparisonOp::Eq, *rhs);
            }
            match problem.solve() {
                Ok(microlp::SolveOutcome::Solution(solution)) => Ok(solution.objective()),
                Err(microlp::Error::Unbounded) => Ok(match direction {
                    OptimizationDirection::Maximize => f64::INFINITY,
                    OptimizationDirection::Minimize => f64::NEG_INFINITY,
                }),
                // Only with a time limit, which is never set.
                Ok(microlp::SolveOutcome::Interrupted(_)) | Err(_) => Err(Inconsistent),
            }
        };
        let low = if down { f64::NEG_INFINITY } else { solve(OptimizationDirection::Minimize)? + constant };
        let high = if up { f64::INFINITY } else { solve(OptimizationDirection::Maximize)? + constant };
        Ok(Interval { low, high })
    }
}

/// `value × (1 − p)`, with the solver's slack.
fn low_end(value: i64, percent: u32) -> f64 {
    let v = value as f64;
    v * (1.0 - f64::from(percent) / 100.0) + TOLERANCE * v.max(1.0)
}

/// `value × (1 + p)`, with the solver's slack.
fn high_end(value: i64, percent: u32) -> f64 {
    let v = value as f64;
    v * (1.0 + f64::from(percent) / 100.0) - TOLERANCE * v.max(1.0)
}

/// A withheld value the attacker narrows past the protection range.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Leak {
    /// Where: the family itself (empty), a sub-period's by child indices from it, or the
    /// `r`-th earlier revision (`[EARLIER + r]`: one of its withheld values, or what changed
    /// since it).
    pub(super) node: Vec<usize>,
    /// The cell's coordinates over the family's dimensions (`*` for "all").
    pub(super) coords: Vec<String>,
    /// The measure (stored order).
    pub(super) measure: usize,
    /// Its true value.
    pub(super) value: i64,
    /// What the attacker narrows it to.
    pub(super) interval: Interval,
}

/// Every primary-withheld value of `family` (and of its sub-periods, for flows) that an attacker reading
/// all of their published cells narrows past `family.rule.percent`. One linear system per
/// measure; for flows it spans the sub-periods with their additivity. If the published cells
/// contradict that additivity (a structure changed kind or département within the period, so
/// its quarter is counted under its latest month's attributes), the measure is audited within
/// the period alone, and the contradiction is logged.
pub(super) fn attack(family: &Family) -> Vec<Leak> {
    let measures = family.rule.flows.len();
    let mut leaks = Vec::new();
    for measure in 0..measures {
        let linked = !family.children.is_empty();
        match attack_measure(family, measure, linked) {
            Ok(found) => leaks.extend(found),
            Err(Inconsistent) if linked => {
                tracing::debug!(measure, "published sub-periods do not add up; audited within the period");
                match attack_measure(family, measure, false) {
                    Ok(found) => leaks.extend(found),
                    Err(Inconsistent) => {
                        tracing::warn!(measure, "statistics audit: inconsistent published cells")
                    }
                }
            }
            Err(Inconsistent) => tracing::warn!(measure, "statistics audit: inconsistent published cells"),
        }
        // A stock's link is given with its true residual, stronger than what the attacker
        // knows: it must not excuse (`keeps`) what the period alone would expose.
        if linked && !family.rule.flows[measure] {
            match attack_measure(family, measure, false) {
                Ok(found) => {
                    for leak in found {
                        if !leaks
                            .iter()
                            .any(|l| l.node == leak.node && l.coords == leak.coords && l.measure == measure)
                        {
                            leaks.push(leak);
                        }
                    }
                }
                Err(Inconsistent) => {
                    tracing::warn!(measure, "statistics audit: inconsistent published cells")
                }
            }
        }
    }
    leaks
}

fn attack_measure(family: &Family, measure: usize, linked: bool) -> Result<Vec<Leak>, Inconsistent> {
    // The family and, for a linked flow, every sub-period below it, with their paths.
    let mut nodes: Vec<(Vec<usize>, &Family)> = vec![(Vec::new(), family)];
    if linked {
        let mut i = 0;
        while i < nodes.len() {
            let (path, node) = (nodes[i].0.clone(), nodes[i].1);
            for (c, child) in node.children.iter().enumerate() {
                nodes.push(([path.as_slice(), &[c]].concat(), child));
            }
            i += 1;
        }
    }
    let mut system = System::default();
    let unknowns: Vec<BTreeMap<&Vec<String>, usize>> =
        nodes.iter().map(|(_, node)| node.values.keys().map(|k| (k, system.unknown())).collect()).collect();
    let members = |n: usize, at: &[String]| -> Vec<Term> {
        unknowns[n].iter().filter(|(k, _)| intersects(k, at)).map(|(_, x)| (*x, 1.0)).collect()
    };
    let flow = family.rule.flows[measure];
    if linked {
        // A period's finest cell is the sum of the same cell in its sub-periods.
        for (n, (path, _)) in nodes.iter().enumerate() {
            let kids: Vec<usize> = (0..nodes.len())
                .filter(|&m| nodes[m].0.len() == path.len() + 1 && nodes[m].0.starts_with(path))
                .collect();
            if kids.is_empty() {
                continue;
            }
            let mut keys: Vec<&Vec<String>> = unknowns[n].keys().copied().collect();
            for &m in &kids {
                keys.extend(unknowns[m].keys().copied());
            }
            keys.sort();
            keys.dedup();
            let truth = |m: usize, key: &Vec<String>| -> i64 {
                nodes[m].1.values.get(key).and_then(|v| v.get(measure)).copied().unwrap_or(0)
            };
            let mut broken = false;
            for key in keys {
                // Only where it holds: a cell a structure moved into or out of within the
                // period is not the sum of its sub-periods, and dropping the link there (not
                // the whole measure's) keeps every other cell linked, as the attacker does.
                let sum: i64 = kids.iter().map(|&m| truth(m, key)).sum();
                let mut terms: Vec<Term> =
                    kids.iter().filter_map(|&m| unknowns[m].get(key).map(|x| (*x, 1.0))).collect();
                if !flow {
                    // A stock's period value is the sum of its structures' averages: `k` times
                    // it is the sum of its `k` sub-periods' up to rounding (exactly, for
                    // structures that reported throughout — which the published structure
                    // counts can prove). The attacker is given the true residual: more than
                    // they know, never less.
                    let k = kids.len() as f64;
                    if let Some(x) = unknowns[n].get(key) {
                        terms.push((*x, -k));
                    }
                    system.equal(terms, sum as f64 - k * truth(n, key) as f64);
                    continue;
                }
                if sum != truth(n, key) {
                    broken = true;
                    continue;
                }
                if let Some(x) = unknowns[n].get(key) {
                    terms.push((*x, -1.0));
                }
                system.equal(terms, 0.0);
            }
            if broken {
                // A move within the period keeps the margins it did not cross (a département's
                // total when the structure changed kind only): link every table cell that holds.
                let sum = |m: usize, at: &[String]| -> i64 {
                    nodes[m]
                        .1
                        .values
                        .iter()
                        .filter(|(k, _)| intersects(k, at))
                        .map(|(_, v)| v.get(measure).copied().unwrap_or(0))
                        .sum()
                };
                let mut margins: Vec<&Vec<String>> =
                    nodes[n].1.tables.iter().flat_map(|t| t.coords.iter()).collect();
                margins.sort();
                margins.dedup();
                for at in margins {
                    if kids.iter().map(|&m| sum(m, at)).sum::<i64>() != sum(n, at) {
                        continue;
                    }
                    let mut terms: Vec<Term> = kids.iter().flat_map(|&m| members(m, at)).collect();
                    terms.extend(members(n, at).into_iter().map(|(x, c)| (x, -c)));
                    system.equal(terms, 0.0);
                }
            }
        }
    }
    // Earlier revisions of this period: a finest cell no structure changed in since is the
    // same unknown (the attacker is granted knowing which changed); the others are unknowns of
    // their own, whose difference with this revision's is what changed.
    let earlier: Vec<BTreeMap<&Vec<String>, usize>> = family
        .earlier
        .iter()
        .map(|e| {
            e.values
                .keys()
                .map(|k| {
                    let shared = (!e.changed.contains(k)).then(|| unknowns[0].get(k).copied()).flatten();
                    (k, shared.unwrap_or_else(|| system.unknown()))
                })
                .collect()
        })
        .collect();
    let earlier_members = |r: usize, at: &[String]| -> Vec<Term> {
        earlier[r].iter().filter(|(k, _)| intersects(k, at)).map(|(_, x)| (*x, 1.0)).collect()
    };
    // What was public before this period: its sub-periods' cells and the links.
    let mut before = system.clone();
    let finest_shape = |shape: &[bool]| shape.iter().all(|k| *k);
    let mut withheld: Vec<(usize, &Vec<String>)> = Vec::new();
    for (n, (_, node)) in nodes.iter().enumerate() {
        for table in &node.tables {
            for (cell, at) in table.cells.iter().zip(&table.coords) {
                let Some(shown) = cell.measures.get(measure) else { continue };
                match shown.value {
                    Some(v) => {
                        let terms = members(n, at);
                        for known in if n == 0 { vec![&mut system] } else { vec![&mut system, &mut before] } {
                            match terms.as_slice() {
                                [(x, _)] if finest_shape(&table.shape) => known.pin(*x, v as f64),
                                _ => known.equal(terms.clone(), v as f64),
                            }
                        }
                    }
                    None if is_primary(&shown.suppressed) && !withheld.contains(&(n, at)) => {
                        withheld.push((n, at))
                    }
                    None => {}
                }
            }
        }
    }
    // And the earlier revisions' cells: public before this one, their primary suppressions
    // still to protect.
    let mut withheld_earlier: Vec<(usize, &Vec<String>)> = Vec::new();
    for (r, e) in family.earlier.iter().enumerate() {
        for table in &e.tables {
            for (cell, at) in table.cells.iter().zip(&table.coords) {
                let Some(shown) = cell.measures.get(measure) else { continue };
                match shown.value {
                    Some(v) => {
                        let terms = earlier_members(r, at);
                        for known in [&mut system, &mut before] {
                            match terms.as_slice() {
                                [(x, _)] if finest_shape(&table.shape) => known.pin(*x, v as f64),
                                _ => known.equal(terms.clone(), v as f64),
                            }
                        }
                    }
                    None if is_primary(&shown.suppressed) && !withheld_earlier.contains(&(r, at)) => {
                        withheld_earlier.push((r, at))
                    }
                    None => {}
                }
            }
        }
    }
    let prepared = system.prepare()?;
    let mut prior: Option<Prepared> = None;
    let mut leaks = Vec::new();
    for (n, at) in withheld {
        let (path, node) = &nodes[n];
        let value: i64 = node
            .values
            .iter()
            .filter(|(k, _)| intersects(k, at))
            .map(|(_, v)| v.get(measure).copied().unwrap_or(0))
            .sum();
        if value <= 0 {
            continue;
        }
        let terms = members(n, at);
        if !prepared.protects(&terms, value, family.rule.percent) {
            let interval = prepared.range(&terms)?;
            if nodes.len() > 1 {
                let prior = match &mut prior {
                    Some(prior) => prior,
                    None => prior.insert(before.prepare()?),
                };
                if keeps(value, interval, prior.range(&terms)?, family.rule.percent) {
                    continue;
                }
            }
            leaks.push(Leak { node: path.clone(), coords: at.clone(), measure, value, interval });
        }
    }
    let sum = |values: &BTreeMap<Vec<String>, Vec<i64>>, at: &[String]| -> i64 {
        values
            .iter()
            .filter(|(k, _)| intersects(k, at))
            .map(|(_, v)| v.get(measure).copied().unwrap_or(0))
            .sum()
    };
    for (r, at) in withheld_earlier {
        let value = sum(&family.earlier[r].values, at);
        let terms = earlier_members(r, at);
        if value <= 0 || prepared.protects(&terms, value, family.rule.percent) {
            continue;
        }
        let interval = prepared.range(&terms)?;
        let prior = match &mut prior {
            Some(prior) => prior,
            None => prior.insert(before.prepare()?),
        };
        if !keeps(value, interval, prior.range(&terms)?, family.rule.percent) {
            leaks.push(Leak { node: vec![EARLIER + r], coords: at.clone(), measure, value, interval });
        }
    }
    // What changed since each earlier revision, where few structures or persons changed: the
    // difference of the two revisions is their contribution, protected like a withheld cell.
    for (r, e) in family.earlier.iter().enumerate() {
        for at in &e.sensitive {
            let delta = sum(&family.values, at) - sum(&e.values, at);
            if delta == 0 {
                continue;
            }
            let sign = delta.signum() as f64;
            let mut terms: Vec<Term> = members(0, at).into_iter().map(|(x, c)| (x, sign * c)).collect();
            terms.extend(earlier_members(r, at).into_iter().map(|(x, c)| (x, -sign * c)));
            let interval = prepared.range(&terms)?;
            if !protects(delta.abs(), interval, family.rule.percent) {
                leaks.push(Leak {
                    node: vec![EARLIER + r],
                    coords: at.clone(),
                    measure,
                    value: delta,
                    interval,
                });
            }
        }
    }
    Ok(leaks)
}

/// [`Leak::node`] of a value of the `r`-th earlier revision: `EARLIER + r`.
pub(super) const EARLIER: usize = usize::MAX / 2;

/// Rounding slack of the solver on values that are integers in their unit.
const TOLERANCE: f64 = 1e-6;

/// Whether publishing a period narrows a withheld value no further than its protection range
/// allows, given what its sub-periods had already published (`before`): a quarter's withheld
/// flow is at least the sum of its published months whatever the quarter shows, so the quarter
/// is held to keep the part of the range its months left open, not to reopen what they closed.
pub(super) fn keeps(value: i64, after: Interval, before: Interval, percent: u32) -> bool {
    let slack = TOLERANCE * (value as f64).abs().max(1.0);
    let low_ok = after.low <= low_end(value, percent) || after.low <= before.low + slack;
    let high_ok = after.high >= high_end(value, percent) || after.high >= before.high - slack;
    value <= 0 || (low_ok && high_ok)
}

/// Whether an attacker's interval for a withheld value `value` covers the protection range
/// `[value × (1 − p), value × (1 + p)]` (`p` in percent). A value of 0 needs no protection
/// (an empty cell's absence is public).
pub(super) fn protects(value: i64, interval: Interval, percent: u32) -> bool {
    value <= 0 || (interval.low <= low_end(value, percent) && interval.high >= high_end(value, percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook case: a row of three cells and its total; one withheld cell is recomputed
    /// exactly, two withheld cells only bound each other.
    #[test]
    fn one_withheld_cell_in_a_line_is_recomputed_and_two_are_not() {
        let mut s = System::default();
        let x: Vec<usize> = (0..3).map(|_| s.unknown()).collect();
        s.equal(x.iter().map(|&i| (i, 1.0)).collect(), 30.0);
        s.pin(x[0], 10.0);
        s.pin(x[1], 12.0);
        let exact = s.range(&[(x[2], 1.0)]).expect("consistent");
        assert!((exact.low - 8.0).abs() < 1e-9 && (exact.high - 8.0).abs() < 1e-9, "{exact:?}");
        assert!(!protects(8, exact, 15));

        let mut s = System::default();
        let x: Vec<usize> = (0..3).map(|_| s.unknown()).collect();
        s.equal(x.iter().map(|&i| (i, 1.0)).collect(), 30.0);
        s.pin(x[0], 10.0);
        let bounded = s.range(&[(x[2], 1.0)]).expect("consistent");
        assert_eq!((bounded.low, bounded.high), (0.0, 20.0));
        assert!(protects(8, bounded, 15));
        assert!(!protects(18, bounded, 15), "20 < 18 × 1.15: the upper end is too close");
    }

    #[test]
    fn contradictions_and_unbounded_values_are_reported() {
        let mut s = System::default();
        let a = s.unknown();
        s.pin(a, 3.0);
        s.equal(vec![(a, 1.0)], 4.0);
        assert_eq!(s.range(&[(a, 1.0)]), Err(Inconsistent));

        let mut s = System::default();
        let (a, b) = (s.unknown(), s.unknown());
        s.equal(vec![(a, 1.0), (b, -1.0)], 0.0);
        let open = s.range(&[(a, 1.0)]).expect("consistent");
        assert_eq!((open.low, open.high), (0.0, f64::INFINITY));
    }
}
