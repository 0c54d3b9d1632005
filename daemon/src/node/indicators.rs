//! Monthly indicator reports: one per period, re-submission replaces and bumps the version.

use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{IndicatorFields, IndicatorReport};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;

use super::{Node, required};
use crate::error::Result;
use crate::store::{Tree, WriteBatch, keys};

impl Node {
    /// Records the report of a month, replacing any earlier version of it.
    pub fn submit_indicators(&self, fields: Option<IndicatorFields>) -> Result<IndicatorReport> {
        let fields = required("fields", fields)?;
        validate::indicator_fields(&fields)?;
        let key = keys::month(validate::month("period", &fields.period)?);
        let _writer = self.write_lock();
        let previous: Option<IndicatorReport> = self.load(Tree::Indicators, &key)?;
        let report = IndicatorReport {
            siret: self.structure.siret.clone(),
            fields: Some(fields),
            version: previous.map_or(1, |p| p.version + 1),
            submitted_at_ms: now_unix_ms(),
        };
        let mut batch = WriteBatch::new();
        batch.put(Tree::Indicators, key, report.encode_to_vec());
        let period = report.fields.as_ref().map(|f| f.period.clone()).unwrap_or_default();
        let seq = self.log_change(&mut batch, passerelle_proto::datasets::INDICATORS, &period);
        self.commit_change(batch, seq)?;
        Ok(report)
    }

    /// Lists reports by period, within `from..=to` when given.
    pub fn list_indicators(&self, from: Option<&str>, to: Option<&str>) -> Result<Vec<IndicatorReport>> {
        let from = from.map(|m| validate::month("from", m)).transpose()?;
        let to = to.map(|m| validate::month("to", m)).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(FieldError::new("to", t.to_string(), format!("must not be before from {f}")).into());
        }
        let start = from.map(keys::month).unwrap_or_default();
        let end = to.map(|t| (t.ordinal() + 1).to_be_bytes());
        self.store
            .scan(Tree::Indicators, &start, end.as_ref().map(|e| e.as_slice()), usize::MAX)?
            .into_iter()
            .map(|(_, raw)| super::decode(Tree::Indicators, &raw))
            .collect()
    }
}
