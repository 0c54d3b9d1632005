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
use super::world::Context;

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
    /// Where: the family itself (0) or a published node of its context (`i`: `held[i - 1]`).
    pub(super) node: usize,
    /// The cell's coordinates over the family's dimensions (`*` for "all").
    pub(super) coords: Vec<String>,
    /// The measure (stored order).
    pub(super) measure: usize,
    /// Its true value (for a difference between two revisions: that difference).
    pub(super) value: i64,
    /// What the attacker narrows it to.
    pub(super) interval: Interval,
}

/// Every primary-withheld value of `family` and of the published nodes of its context, and
/// every sensitive difference between two revisions of one period, that an attacker reading
/// all of their published cells narrows past `family.rule.percent`. One linear system per
/// measure; for flows it spans the sums of sub-periods. If the published cells contradict that
/// additivity (a structure changed kind or département within the period, so its quarter is
/// counted under its latest month's attributes), the measure is audited without the sums, and
/// the contradiction is logged.
pub(super) fn attack(family: &Family, context: &Context<'_>) -> Vec<Leak> {
    let measures = family.rule.flows.len();
    let mut leaks = Vec::new();
    let linked = context.kids.iter().any(|k| !k.is_empty());
    for measure in 0..measures {
        match attack_measure(family, context, measure, linked) {
            Ok(found) => leaks.extend(found),
            Err(Inconsistent) if linked => {
                tracing::debug!(measure, "published sub-periods do not add up; audited without the sums");
                match attack_measure(family, context, measure, false) {
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
            match attack_measure(family, context, measure, false) {
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

fn attack_measure(
    family: &Family,
    context: &Context<'_>,
    measure: usize,
    linked: bool,
) -> Result<Vec<Leak>, Inconsistent> {
    let nodes = context.held.len() + 1;
    let values = |n: usize| if n == 0 { &family.values } else { &context.held[n - 1].values };
    let tables =
        |n: usize| if n == 0 { family.tables.as_slice() } else { context.held[n - 1].tables.as_slice() };
    let mut system = System::default();
    for _ in 0..context.classes {
        system.unknown();
    }
    // A finest cell of a node: its class's unknown (shared with the revisions of its period
    // that count it alike), or one of its own.
    let unknowns: Vec<BTreeMap<&Vec<String>, usize>> = (0..nodes)
        .map(|n| {
            values(n)
                .keys()
                .map(|k| {
                    let shared = context.class.get(n).and_then(|c| c.get(k)).copied();
                    (k, shared.unwrap_or_else(|| system.unknown()))
                })
                .collect()
        })
        .collect();
    let members = |n: usize, at: &[String]| -> Vec<Term> {
        unknowns[n].iter().filter(|(k, _)| intersects(k, at)).map(|(_, x)| (*x, 1.0)).collect()
    };
    let sum = |n: usize, at: &[String]| -> i64 {
        values(n)
            .iter()
            .filter(|(k, _)| intersects(k, at))
            .map(|(_, v)| v.get(measure).copied().unwrap_or(0))
            .sum()
    };
    let flow = family.rule.flows[measure];
    // A mover's figures in a sub-period (see `world::Move`): each its own unknown, at most
    // what its sub-period's cell holds, as the attacker who knows it moved has it.
    let moved: Vec<usize> =
        if linked && flow { context.moves.iter().map(|_| system.unknown()).collect() } else { Vec::new() };
    let mover = |i: usize| context.moves[i].values.get(measure).copied().unwrap_or(0);
    let mut parts: BTreeMap<(usize, &Vec<String>), Vec<usize>> = BTreeMap::new();
    for (i, m) in context.moves.iter().enumerate().filter(|_| !moved.is_empty()) {
        parts.entry((m.kid, &m.from)).or_default().push(i);
    }
    for ((kid, from), these) in &parts {
        let Some(&cell) = unknowns[*kid].get(*from) else { continue };
        let mut terms: Vec<Term> = these.iter().map(|&i| (moved[i], -1.0)).collect();
        terms.push((cell, 1.0));
        terms.push((system.unknown(), -1.0));
        system.equal(terms, 0.0);
    }
    // A finest cell whose revisions differ: its unchanged structures' part plus its changed
    // structures' parts, each ≥ 0 (see `world::Split`).
    let at = |v: &Vec<i64>| v.get(measure).copied().unwrap_or(0);
    for split in &context.splits {
        let mut terms: Vec<Term> = vec![(split.class, 1.0)];
        terms.extend(split.stable.map(|x| (x, -1.0)));
        terms.extend(split.parts.iter().map(|&x| (x, -1.0)));
        let parts: i64 = split
            .parts
            .iter()
            .filter_map(|x| context.pieces.iter().find(|p| p.unknown == *x))
            .map(|p| at(&p.values))
            .sum();
        let stable = if split.stable.is_some() { at(&split.stable_truth) } else { 0 };
        system.equal(terms, (at(&split.truth) - stable - parts) as f64);
    }
    if linked {
        // A period's finest cell is the sum of the same cell in the sub-period revisions it
        // counted.
        for n in 0..nodes {
            let kids = &context.kids[n];
            if kids.is_empty() {
                continue;
            }
            let mut keys: Vec<&Vec<String>> = unknowns[n].keys().copied().collect();
            for &m in kids {
                keys.extend(unknowns[m].keys().copied());
            }
            keys.sort();
            keys.dedup();
            let truth = |m: usize, key: &Vec<String>| -> i64 {
                values(m).get(key).and_then(|v| v.get(measure)).copied().unwrap_or(0)
            };
            let mut broken = false;
            for key in keys {
                // Only where it holds: a cell a structure moved into or out of within the
                // period is not the sum of its sub-periods, and dropping the link there (not
                // the whole measure's) keeps every other cell linked, as the attacker does.
                let mut total: i64 = kids.iter().map(|&m| truth(m, key)).sum();
                let mut terms: Vec<Term> =
                    kids.iter().filter_map(|&m| unknowns[m].get(key).map(|x| (*x, 1.0))).collect();
                for (i, m) in context.moves.iter().enumerate().filter(|(_, m)| m.node == n && flow) {
                    let Some(&y) = moved.get(i) else { break };
                    if &m.to == key {
                        terms.push((y, 1.0));
                        total += mover(i);
                    } else if &m.from == key {
                        terms.push((y, -1.0));
                        total -= mover(i);
                    }
                }
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
                    system.equal(terms, total as f64 - k * truth(n, key) as f64);
                    continue;
                }
                if total != truth(n, key) {
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
                let mut margins: Vec<&Vec<String>> = tables(n).iter().flat_map(|t| t.coords.iter()).collect();
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
    // What was public before this publication: every other node's cells, the sums and the
    // shared cells.
    let mut before = system.clone();
    let finest_shape = |shape: &[bool]| shape.iter().all(|k| *k);
    let mut withheld: Vec<(usize, &Vec<String>)> = Vec::new();
    for n in 0..nodes {
        for table in tables(n) {
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
    let prepared = system.prepare()?;
    let mut prior: Option<Prepared> = None;
    let mut leaks = Vec::new();
    // Whether what the attacker narrows `terms` (true value `value`) to was open before this
    // publication and is not now.
    let mut exposes = |terms: &[Term], value: i64| -> Result<Option<Interval>, Inconsistent> {
        if value == 0 || prepared.protects(terms, value.abs(), family.rule.percent) {
            return Ok(None);
        }
        let interval = prepared.range(terms)?;
        if nodes > 1 {
            let prior = match &mut prior {
                Some(prior) => prior,
                None => prior.insert(before.prepare()?),
            };
            if keeps(value.abs(), interval, prior.range(terms)?, family.rule.percent) {
                return Ok(None);
            }
        }
        Ok(Some(interval))
    };
    for (n, at) in withheld {
        let value = sum(n, at);
        if value <= 0 {
            continue;
        }
        if let Some(interval) = exposes(&members(n, at), value)? {
            leaks.push(Leak { node: n, coords: at.clone(), measure, value, interval });
        }
    }
    // A mover's figures in the sub-periods where it counted elsewhere: one structure's, each
    // month's and their sum.
    let mut by_mover: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for (i, m) in context.moves.iter().enumerate().filter(|_| !moved.is_empty()) {
        by_mover.entry((m.node, m.siret.as_str())).or_default().push(i);
    }
    for ((node, _), these) in by_mover {
        let mut asked: Vec<Vec<usize>> = vec![these.clone()];
        if these.len() > 1 {
            asked.extend(these.iter().map(|&i| vec![i]));
        }
        for group in asked {
            let value: i64 = group.iter().map(|&i| mover(i)).sum();
            if value <= 0 {
                continue;
            }
            let terms: Vec<Term> = group.iter().map(|&i| (moved[i], 1.0)).collect();
            if let Some(interval) = exposes(&terms, value)? {
                let mut cells: Vec<&Vec<String>> =
                    group.iter().flat_map(|&i| [&context.moves[i].to, &context.moves[i].from]).collect();
                cells.sort();
                cells.dedup();
                for at in cells {
                    leaks.push(Leak { node, coords: at.clone(), measure, value, interval });
                }
            }
        }
    }
    // A changed structure's part in the revisions that count it alike: one structure's figures.
    for piece in &context.pieces {
        let value = at(&piece.values);
        if value <= 0 {
            continue;
        }
        if let Some(interval) = exposes(&[(piece.unknown, 1.0)], value)? {
            leaks.push(Leak { node: 0, coords: piece.key.clone(), measure, value, interval });
        }
    }
    // What changed between two revisions of one period, where few structures or persons
    // changed: the difference is their contribution, protected like a withheld cell.
    for (older, newer, cells) in &context.pairs {
        for at in cells {
            let delta = sum(*newer, at) - sum(*older, at);
            if delta == 0 {
                continue;
            }
            let sign = delta.signum() as f64;
            let mut terms: Vec<Term> = members(*newer, at).into_iter().map(|(x, c)| (x, sign * c)).collect();
            terms.extend(members(*older, at).into_iter().map(|(x, c)| (x, -sign * c)));
            if let Some(interval) = exposes(&terms, delta)? {
                leaks.push(Leak { node: *newer, coords: at.clone(), measure, value: delta, interval });
            }
        }
    }
    Ok(leaks)
}

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
/// (an empty cell's absence is public). The tests' attacker's verdict.
#[cfg(test)]
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
