//! **Complétude**: per month, reported / expected and the period's state (open, closed, revisions),
//! with a close button on manual hubs; per member, on time / late / missing for a chosen month.

use passerelle_proto::v1::{Completeness, Period, PeriodState};

use super::super::html::{Html, html};
use super::super::pages::widgets::{action_button, when};
use super::super::pages::{Refusal, layout, refusal, settle};
use super::super::{Ctx, HubConsole, Reply};
use crate::error::Result;
use crate::hub::periods::CloseRule;

/// A period's state for people.
fn state_label(period: &Period) -> String {
    match (period.state == PeriodState::Closed as i32, period.revisions) {
        (false, _) => "ouvert".into(),
        (true, 0) => "clôturé".into(),
        (true, n) => format!("clôturé, {n} révision(s)"),
    }
}

/// The months, then the chosen month's members.
pub(crate) async fn show(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let chosen = ctx.query.get("periode").to_string();
    let periods = ctx.hub(|hub| hub.list_periods()).await?;
    let manual = ctx.gui.app.hub.config().periods.close == CloseRule::Manual;
    let asked = chosen.clone();
    let detail = match ctx.hub(move |hub| hub.completeness(&asked)).await {
        Ok(c) => members_table(&c),
        Err(e) => match refusal(e)? {
            Refusal::Field(e) => {
                html!("<div class=\"alert\" role=\"alert\"><p>Période : {}</p></div>", e.to_string())
            }
            Refusal::Message(m) => html!("<div class=\"alert\" role=\"alert\"><p>{}</p></div>", m),
        },
    };
    let rows = Html::concat(periods.iter().rev().map(|p| {
        let open = p.state != PeriodState::Closed as i32;
        let close = if manual && open {
            action_button(ctx, "/completude/cloturer", &[("periode", p.period.as_str())], ("Clôturer", &p.period), "")
        } else {
            Html::default()
        };
        html!(
            "<tr><th scope=\"row\"><a href=\"/completude?periode={}\">{}</a></th><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.period.as_str(),
            p.period.as_str(),
            p.due.as_str(),
            p.reported,
            p.expected,
            state_label(p).as_str(),
            when(p.closed_at_ms).as_str(),
            close
        )
    }));
    let months = if periods.is_empty() {
        Html::trusted("<p>Aucun mois n'a encore reçu de rapport.</p>")
    } else {
        html!(
            "<table><caption>Mois (le plus récent d'abord)</caption><thead><tr><th scope=\"col\">Mois</th>\
             <th scope=\"col\">Échéance</th><th scope=\"col\">Rapports reçus / attendus</th><th scope=\"col\">État</th>\
             <th scope=\"col\">Clôturé le</th><th scope=\"col\">Action</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    let rule = if manual {
        "Ce hub clôture les mois à la main (<code>close = \"manual\"</code>)."
    } else {
        "Ce hub clôture chaque mois à son échéance (<code>close = \"deadline\"</code>)."
    };
    let body =
        html!("<p>{}</p>{}{}{}", Html::from_rendered(rule.to_string()), rate_chart(&periods), months, detail);
    Ok(layout::page(ctx, "/completude", "Complétude", body))
}

/// The reporting rate (reported / expected) of the last 12 months, as bars beside its data.
fn rate_chart(periods: &[Period]) -> Html {
    let last: Vec<&Period> = periods.iter().rev().take(12).rev().collect();
    if last.is_empty() {
        return Html::default();
    }
    let months: Vec<String> = last.iter().map(|p| p.period.clone()).collect();
    // Never suppressed (membership is not statistics): a month with nobody expected is 0 %.
    let values: Vec<Option<f64>> =
        last.iter().map(|p| Some(f64::from(p.reported) * 100.0 / f64::from(p.expected.max(1)))).collect();
    let title = "Taux de rapports reçus, 12 derniers mois";
    let rows = Html::concat(last.iter().zip(&values).map(|(p, v)| {
        let rate = v.map(|v| format!("{v:.0} %")).unwrap_or_default();
        html!(
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{} / {}</td><td class=\"num\">{}</td></tr>",
            p.period.as_str(),
            p.reported,
            p.expected,
            rate.as_str()
        )
    }));
    html!(
        "<div class=\"figure\">{}<table class=\"chart-data\"><caption>{}</caption><thead><tr><th scope=\"col\">Mois</th>\
         <th scope=\"col\">Reçus / attendus</th><th scope=\"col\">Taux</th></tr></thead><tbody>{}</tbody></table></div>",
        super::super::charts::bar_chart("completude", title, &months, &values, "%"),
        title,
        rows
    )
}

/// One month, member by member.
fn members_table(c: &Completeness) -> Html {
    let rows = Html::concat(c.rows.iter().filter(|r| r.expected || r.reported).map(|r| {
        let status = match r.days_late {
            Some(0) => "à l'heure".to_string(),
            Some(days) => format!("en retard ({days} j)"),
            None => "manquant".to_string(),
        };
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.name.as_str(),
            r.member.as_str(),
            r.departement.as_str(),
            r.networks.join(", ").as_str(),
            status.as_str(),
            r.last_period.as_str(),
            r.months_missing
        )
    }));
    html!(
        "<h2>Mois {} (échéance {})</h2><p class=\"summary\">{} rapport(s) reçu(s) sur {} attendu(s) : \
         {} à l'heure, {} en retard, {} manquant(s).</p>\
         <table><caption>Rapports du mois {} par membre</caption><thead><tr><th scope=\"col\">Structure</th>\
         <th scope=\"col\">SIRET</th><th scope=\"col\">Département</th><th scope=\"col\">Réseaux</th>\
         <th scope=\"col\">Ce mois</th><th scope=\"col\">Dernier mois reçu</th><th scope=\"col\">Mois manquants</th></tr></thead>\
         <tbody>{}</tbody></table>",
        c.period.as_str(),
        c.due.as_str(),
        c.reported,
        c.expected,
        c.on_time,
        c.late,
        c.missing,
        c.period.as_str(),
        rows
    )
}

/// Closes a month (admins; manual hubs, though closing is idempotent anywhere).
pub(crate) async fn close(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let period = ctx.form.get("periode").to_string();
    let back = format!("/completude?periode={}", urlencoding(&period));
    let outcome = ctx.hub(move |hub| hub.close_period(&period)).await;
    settle(ctx, &back, outcome, "Mois clôturé : ses tableaux publiés sont figés.")
}

/// Keeps only what a month may hold in a URL (`YYYY-MM`); anything else is dropped.
fn urlencoding(period: &str) -> String {
    period.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect()
}
