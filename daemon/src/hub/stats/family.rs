//! Linked tables of one period, settled together so a cell has one status wherever it shows.

use std::collections::HashMap;

use passerelle_proto::v1::Cell;

use super::disclosure::*;

/// The dimensions of the finest table of a family: every other indicators table of a regional
/// hub is one of its margins (région and network are constant there).
pub(super) fn family_dims() -> Vec<String> {
    vec!["departement".to_string(), "kind".to_string()]
}

/// Linked tables of one period: by nothing, by département, by kind, by département × kind.
/// They share cells — the département margins, the kind margins, the grand total — and a
/// consumer may read all of them, so a cell withheld in one must be withheld in all, or the
/// others give it back. [`Family::settle`] runs complementary suppression in each table and
/// spreads every withheld cell to the tables sharing it, until nothing changes (suppression only
/// grows, so this ends).
#[derive(Debug, Default, Clone)]
pub(super) struct Family {
    pub(super) tables: Vec<((bool, bool), Vec<Cell>)>,
}

impl Family {
    /// (with département, with kind), in the order the tables are kept.
    pub(super) const SHAPES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

    pub(super) fn table(&self, with_dep: bool, with_kind: bool) -> &[Cell] {
        self.tables
            .iter()
            .find(|(shape, _)| *shape == (with_dep, with_kind))
            .map_or(&[], |(_, c)| c.as_slice())
    }

    /// A cell's (département, kind) coordinates, `*` for "all".
    pub(super) fn coords(cell: &Cell, (with_dep, with_kind): (bool, bool)) -> (String, String) {
        let mut values = cell.key.iter();
        let dep = if with_dep { values.next().cloned().unwrap_or_default() } else { "*".into() };
        let kind = if with_kind { values.next().cloned().unwrap_or_default() } else { "*".into() };
        (dep, kind)
    }

    pub(super) fn settle(&mut self) {
        loop {
            for ((with_dep, with_kind), cells) in &mut self.tables {
                secondary_suppression(cells, usize::from(*with_dep) + usize::from(*with_kind));
            }
            // Every coordinate's strongest status across the tables that show it.
            let mut withheld: HashMap<(String, String), (Option<String>, Option<String>)> = HashMap::new();
            for (shape, cells) in &self.tables {
                for cell in cells {
                    let entry = withheld.entry(Self::coords(cell, *shape)).or_default();
                    if cell_hidden(cell) && entry.0.is_none() {
                        entry.0 = Some(cell.suppressed.clone());
                    }
                    if exits_hidden(cell) && entry.1.is_none() {
                        let reason = cell
                            .measures
                            .iter()
                            .find(|m| m.name == "exits_total")
                            .map(|m| m.suppressed.clone())
                            .unwrap_or_default();
                        entry.1 = Some(reason);
                    }
                }
            }
            let mut changed = false;
            for (shape, cells) in &mut self.tables {
                for cell in cells.iter_mut() {
                    let Some((whole, exits)) = withheld.get(&Self::coords(cell, *shape)) else { continue };
                    if let Some(reason) = whole
                        && !cell_hidden(cell)
                    {
                        hide_cell(cell, reason);
                        changed = true;
                    } else if let Some(reason) = exits
                        && !exits_hidden(cell)
                    {
                        hide_exits(cell, reason);
                        changed = true;
                    }
                }
            }
            if !changed {
                return;
            }
        }
    }
}
