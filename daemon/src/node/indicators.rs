//! Monthly indicator reports: one per period, re-submission replaces and bumps the version.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{ImportResponse, IndicatorFields, IndicatorReport, IndicatorRow};
use passerelle_proto::validate::{self, FieldError, RowError};
use prost::Message;

use super::{Node, check_size, required, row_line};
use crate::error::{Error, Result};
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
        let seq = self.log_change(&mut batch, Dataset::Indicators, &period);
        self.commit_change(batch, seq)?;
        Ok(report)
    }

    /// Records many monthly reports in one atomic, durable commit: all or none, every invalid row
    /// reported with its line. A month already reported is replaced; a month twice is an error.
    pub fn import_indicators(&self, rows: Vec<IndicatorRow>) -> Result<ImportResponse> {
        check_size(rows.len())?;
        let mut valid = Vec::with_capacity(rows.len());
        let mut errors = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let line = row_line(row.line, i);
            let checked = required("fields", row.fields).and_then(|fields| {
                validate::indicator_fields(&fields)?;
                let month = validate::month("period", &fields.period)?;
                Ok((month, fields))
            });
            match checked {
                Ok((month, fields)) => valid.push((line, month, fields)),
                Err(Error::Invalid(error)) => errors.push(RowError { line, error }),
                Err(other) => return Err(other),
            }
        }
        errors
            .extend(validate::distinct_periods(valid.iter().map(|(line, _, f)| (*line, f.period.as_str()))));
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(Error::InvalidRows(errors));
        }
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let (mut created, mut replaced) = (0, 0);
        let mut keys = Vec::with_capacity(valid.len());
        let mut last_seq = self.head_seq();
        for (_, month, fields) in valid {
            let key = keys::month(month);
            let previous: Option<IndicatorReport> = self.load(Tree::Indicators, &key)?;
            if previous.is_some() {
                replaced += 1;
            } else {
                created += 1;
            }
            let period = fields.period.clone();
            let report = IndicatorReport {
                siret: self.structure.siret.clone(),
                fields: Some(fields),
                version: previous.map_or(1, |p| p.version + 1),
                submitted_at_ms: now,
            };
            batch.put(Tree::Indicators, key, report.encode_to_vec());
            last_seq = self.log_change_at(&mut batch, last_seq + 1, Dataset::Indicators, &period);
            keys.push(period);
        }
        if !keys.is_empty() {
            self.commit_change(batch, last_seq)?;
        }
        Ok(ImportResponse { created, replaced, keys })
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
