//! Indicateurs: submit a month's report (the node checks that exits add up and says so beside
//! them), the monthly list with the dynamic-exit rate, and the months still missing.

use hyper::StatusCode;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{Exits, IndicatorFields};
use passerelle_proto::validate::FieldError;

use super::super::forms::Form;
use super::super::html::{Html, html};
use super::super::{Ctx, Reply};
use super::needs::number;
use super::widgets::{self, Errors};
use super::{Refusal, layout, refusal};
use crate::error::Result;

const HERE: &str = "/indicateurs";

/// The form, the list and the missing months.
pub(crate) async fn show(ctx: &Ctx<'_>) -> Result<Reply> {
    page(ctx, &Form::default(), &Errors::default(), StatusCode::OK).await
}

async fn page(ctx: &Ctx<'_>, form: &Form, errors: &Errors, status: StatusCode) -> Result<Reply> {
    let hubs = ctx.gui.app.sync.indicator_hubs();
    let (reports, missing) = ctx
        .node(move |node| {
            Ok((node.list_indicators(None, None)?, node.missing_indicators(&hubs, now_unix_ms())?))
        })
        .await?;
    let rows = Html::concat(reports.iter().rev().map(|r| {
        let f = r.fields.clone().unwrap_or_default();
        let e = f.exits.unwrap_or_default();
        let rate = passerelle_proto::validate::dynamic_exit_rate(
            e.durable.into(),
            e.transition.into(),
            e.positive.into(),
            e.total.into(),
        )
        .map(|r| format!("{},{:02} %", r / 100, r % 100))
        .unwrap_or_else(|| "—".into());
        html!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.period.as_str(),
            format!("{},{:02}", f.etp_hundredths / 100, f.etp_hundredths % 100),
            f.employees_in_insertion,
            f.hours_worked,
            f.hires,
            e.total,
            rate,
            r.version
        )
    }));
    let list = if reports.is_empty() {
        Html::trusted("<p>Aucun mois déclaré.</p>")
    } else {
        html!(
            "<table><caption>Déclarations mensuelles</caption><thead><tr><th scope=\"col\">Mois</th><th scope=\"col\">ETP</th>\
             <th scope=\"col\">Salariés en insertion</th><th scope=\"col\">Heures</th><th scope=\"col\">Embauches</th>\
             <th scope=\"col\">Sorties</th><th scope=\"col\">Taux de sorties dynamiques</th><th scope=\"col\">Version</th></tr></thead>\
             <tbody>{}</tbody></table>",
            rows
        )
    };
    let missing_list = if missing.is_empty() {
        Html::trusted("<p>Aucun mois manquant.</p>")
    } else {
        html!(
            "<ul>{}</ul>",
            Html::concat(missing.iter().map(|m| html!(
                "<li>{} pour {} : dû le {}{}</li>",
                m.period.as_str(),
                m.hub_id.as_str(),
                m.due.as_str(),
                if m.overdue { " (en retard)" } else { "" }
            )))
        )
    };
    let submit = if ctx.admin() { form_html(ctx, form, errors) } else { Html::default() };
    let body = html!("{}<h2>Mois manquants</h2>{}<h2>Historique</h2>{}", submit, missing_list, list);
    Ok(layout::page_with_status(ctx, HERE, "Indicateurs", body, status))
}

fn form_html(ctx: &Ctx<'_>, form: &Form, errors: &Errors) -> Html {
    let exits_error = match &errors.0 {
        Some(e) if e.field.starts_with("exits") => {
            html!("<p class=\"error\" id=\"exits-erreur\">{}</p>", e.to_string())
        }
        _ => Html::default(),
    };
    let value = |name: &str| form.get(name).to_string();
    html!(
        "{}<form method=\"post\" action=\"/indicateurs\" class=\"card\" novalidate><h2>Déclarer un mois</h2>{}\
         {}{}{}{}{}\
         <fieldset class=\"field\"><legend>Sorties du mois (durables + transition + positives + autres = total)</legend>\
         {}{}{}{}{}{}</fieldset>\
         <p class=\"hint\">Un mois déjà déclaré est remplacé (sa version augmente).</p>\
         <button type=\"submit\">Enregistrer le mois</button></form>",
        errors.summary(),
        widgets::csrf(ctx),
        widgets::input("period", "Mois", "month", &value("period"), "AAAA-MM", errors),
        widgets::input("etp", "ETP", "text", &value("etp"), "ex. 12,5", errors),
        widgets::input(
            "employees_in_insertion",
            "Salariés en insertion",
            "number",
            &value("employees_in_insertion"),
            "",
            errors
        ),
        widgets::input("hours_worked", "Heures travaillées", "number", &value("hours_worked"), "", errors),
        widgets::input("hires", "Embauches", "number", &value("hires"), "", errors),
        widgets::input("exits_total", "Total des sorties", "number", &value("exits_total"), "", errors),
        widgets::input("exits_durable", "Emploi durable", "number", &value("exits_durable"), "", errors),
        widgets::input(
            "exits_transition",
            "Emploi de transition",
            "number",
            &value("exits_transition"),
            "",
            errors
        ),
        widgets::input("exits_positive", "Sorties positives", "number", &value("exits_positive"), "", errors),
        widgets::input("exits_other", "Autres sorties", "number", &value("exits_other"), "", errors),
        exits_error
    )
}

/// `12,5` or `12.5` as hundredths, exactly.
fn hundredths(form: &Form, name: &str) -> std::result::Result<u64, FieldError> {
    let text = form.get(name).replace(',', ".");
    let bad =
        || FieldError::new(name, form.get(name), "expected a number with at most 2 decimals, e.g. 12,5");
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole.checked_mul(100).and_then(|w| w.checked_add(frac)).ok_or_else(bad)
}

fn fields(form: &Form) -> std::result::Result<IndicatorFields, FieldError> {
    Ok(IndicatorFields {
        period: form.get("period").to_string(),
        etp_hundredths: hundredths(form, "etp")?,
        employees_in_insertion: number(form, "employees_in_insertion")?,
        hours_worked: number(form, "hours_worked")?,
        hires: number(form, "hires")?,
        exits: Some(Exits {
            total: number(form, "exits_total")?,
            durable: number(form, "exits_durable")?,
            transition: number(form, "exits_transition")?,
            positive: number(form, "exits_positive")?,
            other: number(form, "exits_other")?,
        }),
    })
}

/// Records (or replaces) a month's report.
pub(crate) async fn submit(ctx: &Ctx<'_>) -> Result<Reply> {
    let outcome = match fields(&ctx.form) {
        Ok(fields) => ctx.node(move |node| node.submit_indicators(Some(fields))).await,
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(report) => {
            let period = report.fields.map(|f| f.period).unwrap_or_default();
            Ok(super::done(ctx, HERE, format!("Mois {period} enregistré (version {}).", report.version)))
        }
        Err(e) => {
            let errors = match refusal(e)? {
                Refusal::Field(e) => Errors(Some(rename(e))),
                Refusal::Message(m) => Errors(Some(FieldError::rule("indicateurs", m))),
            };
            page(ctx, &ctx.form, &errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// The node names `etp_hundredths` and `exits.total`; the form's fields are `etp`, `exits_total`.
fn rename(mut e: FieldError) -> FieldError {
    e.field = match e.field.as_str() {
        "etp_hundredths" => "etp".into(),
        "exits.total" => "exits_total".into(),
        other => other.to_string(),
    };
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etp_parses_exactly() {
        let mut form = Form::default();
        for (text, want) in
            [("12,5", Some(1250)), ("12.05", Some(1205)), ("3", Some(300)), ("1,234", None), ("x", None)]
        {
            form.set("etp", text);
            assert_eq!(hundredths(&form, "etp").ok(), want, "{text}");
        }
    }
}
