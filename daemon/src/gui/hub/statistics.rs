//! **Statistiques**: a published table for a chosen period and dimensions, exactly as a consumer
//! gets it (the hub's own [`crate::hub::Hub::table`], as `StatisticsService.GetTable`), with its
//! suppressed cells shown as suppressed with their reason, never 0; the same table as CSV (the
//! CLI's own writer, [`passerelle_client::text::write_table_csv`]); and charts, each beside a
//! data table of its values: ETP and hours by month (lines), the dynamic-exit rate by
//! département or kind (bars), needs by ROME grand domaine × start month (stacked bars).

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use passerelle_client::text::{reason, shown};
use passerelle_proto::v1::{Cell, GetTableRequest, Table, TableDescriptor};

use super::super::charts::{self, SUPPRESSED, Series};
use super::super::forms::Form;
use super::super::html::{Html, html};
use super::super::pages::{Refusal, layout, refusal};
use super::super::{Ctx, HubConsole, Reply, guard};
use crate::error::Result;
use crate::hub::stats;

/// Months shown by the monthly charts.
const MONTHS_CHARTED: usize = 12;

/// The catalogue a consumer sees.
fn catalogue() -> Vec<TableDescriptor> {
    stats::Table::ALL
        .into_iter()
        .map(stats::Table::descriptor)
        .chain([stats::introductions::descriptor()])
        .collect()
}

/// The request the query string names (table, period, up to two dimensions, needs' range).
fn request_of(query: &Form) -> GetTableRequest {
    let table = query.optional("table").unwrap_or_else(|| "indicators".into());
    GetTableRequest {
        table,
        by: query.all("by").into_iter().filter(|d| !d.is_empty()).map(str::to_string).collect(),
        period: query.get("period").to_string(),
        from: query.optional("from").filter(|v| !v.is_empty()),
        to: query.optional("to").filter(|v| !v.is_empty()),
        revision: None,
    }
}

/// The query string of `request` (for the CSV link).
fn query_of(request: &GetTableRequest) -> String {
    let mut fields = vec![("table", request.table.as_str()), ("period", request.period.as_str())];
    fields.extend(request.by.iter().map(|d| ("by", d.as_str())));
    if let Some(from) = &request.from {
        fields.push(("from", from));
    }
    if let Some(to) = &request.to {
        fields.push(("to", to));
    }
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() || b == b'-' {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A measure's value as a number for a chart (`None`: suppressed).
fn number(cell: &Cell, measure: &str) -> Option<f64> {
    if !cell.suppressed.is_empty() {
        return None;
    }
    let m = cell.measures.iter().find(|m| m.name == measure)?;
    let v = m.value? as f64;
    Some(if m.unit == "count" { v } else { v / 100.0 })
}

/// The grand total of a table (every key `*`).
fn grand_total(table: &Table) -> Option<&Cell> {
    table.cells.iter().find(|c| c.key.iter().all(|k| k == "*"))
}

/// The page: the form, the table, the CSV link and the charts.
pub(crate) async fn show(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let request = request_of(&ctx.query);
    let periods = ctx.hub(|hub| hub.published_periods()).await?;
    let asked = request.clone();
    let table = match ctx.hub(move |hub| hub.table(&asked)).await {
        Ok(table) => table_html(&table, &request),
        Err(e) => match refusal(e)? {
            Refusal::Field(e) => {
                html!("<div class=\"alert\" role=\"alert\"><p>Refusé : {}</p></div>", e.to_string())
            }
            Refusal::Message(m) => html!("<div class=\"alert\" role=\"alert\"><p>Refusé : {}</p></div>", m),
        },
    };
    let charts = charts_html(ctx, &request, &periods).await?;
    let body =
        html!("{}{}<h2 id=\"graphiques\">Graphiques</h2>{}", form_html(&request, &periods), table, charts);
    Ok(layout::page(ctx, "/statistiques", "Statistiques", body))
}

/// The CSV of the same table, byte for byte what `passerelle stats … --format csv` prints.
pub(crate) async fn csv(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let request = request_of(&ctx.query);
    let table = match ctx.hub(move |hub| hub.table(&request)).await {
        Ok(table) => table,
        Err(e) => {
            return Ok(match refusal(e)? {
                Refusal::Field(_) | Refusal::Message(_) => Reply::Text(
                    hyper::StatusCode::BAD_REQUEST,
                    "Tableau refusé : revenez à la page Statistiques pour voir pourquoi.\n",
                ),
            });
        }
    };
    let mut body = Vec::new();
    passerelle_client::text::write_table_csv(&mut body, &table)
        .map_err(|e| crate::Error::io("writing a table as csv", e))?;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    guard::content_type(response.headers_mut(), "text/csv; charset=utf-8");
    let name = format!(
        "attachment; filename=\"{}.csv\"",
        table.table.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    if let Ok(value) = name.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_DISPOSITION, value);
    }
    Ok(Reply::Raw(response))
}

/// The choice of table, period and dimensions (a GET form: nothing changes).
fn form_html(request: &GetTableRequest, periods: &[String]) -> Html {
    let tables = Html::concat(catalogue().iter().map(|t| {
        let on = if t.name == request.table { " selected" } else { "" };
        html!(
            "<option value=\"{}\"{}>{} — {}</option>",
            t.name.as_str(),
            on,
            t.name.as_str(),
            t.description.as_str()
        )
    }));
    let mut dimensions: Vec<String> = catalogue().into_iter().flat_map(|t| t.dimensions).collect();
    dimensions.sort();
    dimensions.dedup();
    let boxes = Html::concat(dimensions.iter().map(|d| {
        let on = if request.by.contains(d) { " checked" } else { "" };
        html!(
            "<label class=\"check\"><input type=\"checkbox\" name=\"by\" value=\"{}\"{}> {}</label>",
            d.as_str(),
            on,
            d.as_str()
        )
    }));
    let options =
        Html::concat(periods.iter().rev().map(|p| html!("<option value=\"{}\"></option>", p.as_str())));
    html!(
        "<form method=\"get\" action=\"/statistiques\" class=\"card\">\
         <div class=\"field\"><label for=\"table\">Tableau</label><select id=\"table\" name=\"table\">{}</select></div>\
         <div class=\"field\"><label for=\"period\">Période (mois, trimestre ou année clôturés : indicateurs, mises en relation)</label>\
         <input id=\"period\" name=\"period\" list=\"periodes\" value=\"{}\"><datalist id=\"periodes\">{}</datalist></div>\
         <div class=\"field\"><label for=\"from\">Besoins : du mois</label><input id=\"from\" name=\"from\" placeholder=\"AAAA-MM\" value=\"{}\">\
         <label for=\"to\">au mois</label><input id=\"to\" name=\"to\" placeholder=\"AAAA-MM\" value=\"{}\"></div>\
         <fieldset class=\"field\"><legend>Dimensions (deux au plus)</legend>{}</fieldset>\
         <button type=\"submit\">Afficher</button></form>",
        tables,
        request.period.as_str(),
        options,
        request.from.as_deref().unwrap_or_default(),
        request.to.as_deref().unwrap_or_default(),
        boxes
    )
}

/// A published table: suppressed values say so and why, never 0.
fn table_html(table: &Table, request: &GetTableRequest) -> Html {
    let names: Vec<String> =
        table.cells.first().map(|c| c.measures.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    let head = Html::concat(
        table
            .by
            .iter()
            .chain(["structures".to_string()].iter())
            .chain(names.iter())
            .chain(["motif du secret statistique".to_string()].iter())
            .map(|h| html!("<th scope=\"col\">{}</th>", h.as_str())),
    );
    let rows = Html::concat(table.cells.iter().map(|cell| {
        let keys = Html::concat(cell.key.iter().map(|k| {
            let k = if k == "*" { "ensemble" } else { k.as_str() };
            html!("<th scope=\"row\">{}</th>", k)
        }));
        let structures = cell.structures.map(|s| s.to_string()).unwrap_or_default();
        let why = reason(cell);
        let values = Html::concat(cell.measures.iter().map(|m| {
            if m.value.is_none() {
                let own = if m.suppressed.is_empty() { why.as_str() } else { m.suppressed.as_str() };
                html!("<td class=\"suppressed\" title=\"{}\">{}</td>", own, SUPPRESSED)
            } else {
                html!("<td class=\"num\">{}</td>", shown(m).as_str())
            }
        }));
        let values = html!("{}<td>{}</td>", values, why.as_str());
        let class = if cell.total { " class=\"total\"" } else { "" };
        html!(
            "<tr{}>{}<td class=\"num\">{}</td>{}</tr>",
            Html::from_rendered(class.to_string()),
            keys,
            structures.as_str(),
            values
        )
    }));
    let rules = Html::concat(table.rules.iter().map(|r| html!("<li>{}</li>", r.as_str())));
    let grid = if table.cells.is_empty() {
        Html::trusted("<p>Aucune donnée pour ce tableau et cette période.</p>")
    } else {
        html!(
            "<table class=\"stats\"><caption>{} — {} (révision {})</caption><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
            table.table.as_str(),
            table.period.as_str(),
            table.revision,
            head,
            rows
        )
    };
    html!(
        "{}<p><a href=\"/statistiques.csv?{}\" download>Télécharger ce tableau en CSV</a></p>\
         <details><summary>Règles de secret statistique appliquées</summary><ul>{}</ul></details>",
        grid,
        query_of(request),
        rules
    )
}

/// A data table beside a chart: one row per category, one column per series.
fn data_table(caption: &str, categories: &[String], series: &[Series]) -> Html {
    let head = Html::concat(series.iter().map(|s| html!("<th scope=\"col\">{}</th>", s.name.as_str())));
    let rows = Html::concat(categories.iter().enumerate().map(|(i, c)| {
        let cells = Html::concat(series.iter().map(|s| match s.values.get(i).copied().flatten() {
            Some(v) if v == v.trunc() => html!("<td class=\"num\">{}</td>", format!("{v:.0}")),
            Some(v) => html!("<td class=\"num\">{}</td>", format!("{v:.2}")),
            None => html!("<td class=\"suppressed\">{}</td>", SUPPRESSED),
        }));
        html!("<tr><th scope=\"row\">{}</th>{}</tr>", c.as_str(), cells)
    }));
    html!(
        "<table class=\"chart-data\"><caption>{}</caption><thead><tr><th scope=\"col\"></th>{}</tr></thead><tbody>{}</tbody></table>",
        caption,
        head,
        rows
    )
}

/// A chart and its data table side by side.
fn figure(chart: Html, data: Html) -> Html {
    html!("<div class=\"figure\">{}{}</div>", chart, data)
}

/// The three charts (from the same published tables a consumer reads).
async fn charts_html(
    ctx: &Ctx<'_, HubConsole>,
    request: &GetTableRequest,
    periods: &[String],
) -> Result<Html> {
    // ETP and hours by month: the grand total of each of the last closed months.
    let closed: Vec<&String> = periods.iter().filter(|p| p.len() == 7).collect();
    let months: Vec<String> =
        closed[closed.len().saturating_sub(MONTHS_CHARTED)..].iter().map(|m| (*m).clone()).collect();
    let wanted = months.clone();
    let monthly = ctx
        .hub(move |hub| {
            wanted
                .iter()
                .map(|m| {
                    hub.table(&GetTableRequest {
                        table: "indicators".into(),
                        period: m.clone(),
                        ..Default::default()
                    })
                })
                .collect::<Result<Vec<Table>>>()
        })
        .await?;
    let totals: Vec<Option<&Cell>> = monthly.iter().map(grand_total).collect();
    let etp = Series {
        name: "ETP".into(),
        values: totals.iter().map(|c| c.and_then(|c| number(c, "etp"))).collect(),
    };
    let hours = Series {
        name: "Heures travaillées".into(),
        values: totals.iter().map(|c| c.and_then(|c| number(c, "hours_worked"))).collect(),
    };
    let mut out = Html::default();
    if months.is_empty() {
        out.push(Html::trusted("<p>Aucun mois clôturé : pas encore de courbe mensuelle.</p>"));
    } else {
        out.push(figure(
            charts::line_chart("etp", "ETP par mois", &months, std::slice::from_ref(&etp), "ETP"),
            data_table("ETP par mois (valeurs du graphique)", &months, std::slice::from_ref(&etp)),
        ));
        out.push(figure(
            charts::line_chart(
                "heures",
                "Heures travaillées par mois",
                &months,
                std::slice::from_ref(&hours),
                "heures",
            ),
            data_table(
                "Heures travaillées par mois (valeurs du graphique)",
                &months,
                std::slice::from_ref(&hours),
            ),
        ));
    }

    // The dynamic-exit rate by département or kind, for the chosen (or latest) closed period.
    let by = if ctx.query.get("taux") == "kind" { "kind" } else { "departement" };
    let period = if request.table == "indicators" && !request.period.is_empty() {
        request.period.clone()
    } else {
        periods.last().cloned().unwrap_or_default()
    };
    if !period.is_empty() {
        let asked = GetTableRequest {
            table: "indicators".into(),
            by: vec![by.to_string()],
            period: period.clone(),
            ..Default::default()
        };
        if let Ok(rates) = ctx.hub(move |hub| hub.table(&asked)).await {
            let cells: Vec<&Cell> = rates.cells.iter().filter(|c| !c.total).collect();
            let categories: Vec<String> = cells.iter().map(|c| c.key.join(" ")).collect();
            let values: Vec<Option<f64>> = cells.iter().map(|c| number(c, "dynamic_exit_rate")).collect();
            let label = if by == "kind" { "type de structure" } else { "département" };
            let title = format!("Taux de sorties dynamiques par {label}, {period}");
            let series = [Series { name: "Taux (%)".into(), values: values.clone() }];
            out.push(html!(
                "<p>Par <a href=\"/statistiques?taux=departement\">département</a> ou par \
                 <a href=\"/statistiques?taux=kind\">type de structure</a>.</p>"
            ));
            out.push(figure(
                charts::bar_chart("taux", &title, &categories, &values, "%"),
                data_table(&title, &categories, &series),
            ));
        }
    }

    // Needs by ROME grand domaine × start month (the live needs table).
    let asked = GetTableRequest {
        table: "needs".into(),
        by: vec!["rome-grand-domaine".into(), "start-month".into()],
        ..Default::default()
    };
    if let Ok(needs) = ctx.hub(move |hub| hub.table(&asked)).await {
        let mut start_months: Vec<String> = Vec::new();
        let mut by_domain: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for cell in needs.cells.iter().filter(|c| !c.total && c.key.len() == 2) {
            if !start_months.contains(&cell.key[1]) {
                start_months.push(cell.key[1].clone());
            }
            by_domain
                .entry(cell.key[0].clone())
                .or_default()
                .insert(cell.key[1].clone(), number(cell, "open_positions"));
        }
        start_months.sort();
        let series: Vec<Series> = by_domain
            .iter()
            .map(|(code, values)| Series {
                name: passerelle_proto::rome::grand_domaine_label(code)
                    .map_or_else(|| code.clone(), |label| format!("{code} {label}")),
                values: start_months.iter().map(|m| values.get(m).copied().unwrap_or(Some(0.0))).collect(),
            })
            .collect();
        if series.is_empty() {
            out.push(Html::trusted("<p>Aucun besoin publié : pas de graphique des besoins.</p>"));
        } else {
            let title = "Postes ouverts par grand domaine ROME et mois de début";
            out.push(figure(
                charts::stacked_bars("besoins", title, &start_months, &series, "postes"),
                data_table(title, &start_months, &series),
            ));
        }
    }
    Ok(out)
}
