//! Consolidated statistics on a hub: aggregate cells maintained as records arrive or leave, and
//! the predefined tables consumers may read, every cell through disclosure control.
//!
//! Cells are keyed by their finest coordinates and hold one contribution per structure (its
//! summed values and how many records it has there), so a query costs the number of cells, never
//! the number of records, and the disclosure rules (structures per cell, dominance) can be
//! evaluated exactly:
//!
//! | table | cell key | values |
//! |---|---|---|
//! | indicators | month, département, kind | etp, employees, hours, hires, exits (total, durable, transition, positive, other) |
//! | needs | start month, département, ROME fiche, contract | needs, open positions |
//! | profiles | département, ROME domaine, age band | profiles |
//!
//! Each record stores the key of the cell it is counted in, so it is uncounted from that very
//! cell. Cells are written in the same commit as the records they count.
//!
//! The module is split by what each part does: `aggregates` keeps the cells as records come and
//! go; `tables` reads them into the predefined tables; `disclosure` holds the rules that decide
//! what a table may show; `family` settles linked tables together; `audit` is the attacker they
//! are checked against; `revisions` is what an earlier revision of a period tells that attacker.

mod aggregates;
mod audit;
mod catalogue;
mod disclosure;
mod family;
pub(crate) mod introductions;
mod revisions;
mod tables;
mod world;

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod break_pair_tests;
#[cfg(test)]
mod break_world_tests;
#[cfg(test)]
mod cells_tests;
#[cfg(test)]
mod revision_tests;
#[cfg(test)]
mod tests;

pub(crate) use aggregates::StatsDelta;
pub(crate) use catalogue::Table;
pub(crate) use disclosure::sub_periods;
pub(crate) use disclosure::{DOMINANCE_PERCENT, MIN_STRUCTURES};
pub(crate) use revisions::Snapshot;
pub use tables::check_table_request;
pub(crate) use tables::{Families, parse_period};
pub(crate) use world::{Published, Root, World};
