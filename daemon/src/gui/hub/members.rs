//! **Membres**: accepted and pending members, with their issuing network, last contact, lag,
//! records held and digest mismatches; admins accept and remove (after a confirmation saying
//! what removal purges).

use passerelle_proto::v1::{Member, MemberState};

use super::super::html::{Html, html};
use super::super::pages::widgets::{action_button, csrf, when};
use super::super::pages::{layout, settle};
use super::super::{Ctx, HubConsole, Reply};
use crate::error::Result;

/// The member's name for people: its structure's name, else its id.
fn name_of(member: &Member) -> String {
    member
        .structure
        .as_ref()
        .map(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| member.id.clone())
}

/// The list, pending first.
pub(crate) async fn list(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let mut members = ctx.hub(|hub| hub.list_members()).await?;
    members.sort_by_key(|m| m.state == MemberState::Accepted as i32);
    let rows = Html::concat(members.iter().map(|m| {
        let accepted = m.state == MemberState::Accepted as i32;
        let fields = [("id", m.id.as_str()), ("network", m.network.as_str())];
        let name = name_of(m);
        let actions = if accepted {
            if ctx.admin() {
                html!(
                    "<a href=\"/membres/retirer?id={}&amp;network={}\">Retirer…</a>",
                    m.id.as_str(),
                    m.network.as_str()
                )
            } else {
                Html::default()
            }
        } else {
            let mut both = action_button(ctx, "/membres/accepter", &fields, ("Accepter", &name), "");
            both.push(action_button(ctx, "/membres/retirer", &fields, ("Oublier", &name), "secondary"));
            both
        };
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            name.as_str(),
            m.id.as_str(),
            m.role.as_str(),
            m.network.as_str(),
            if accepted { "accepté" } else { "en attente" },
            when(m.last_seen_at_ms).as_str(),
            m.head_seq.saturating_sub(m.last_acked_seq),
            m.records_held,
            m.digest_mismatches,
            actions
        )
    }));
    let body = if members.is_empty() {
        Html::trusted("<p>Aucun membre ne s'est encore présenté à ce hub.</p>")
    } else {
        html!(
            "<table><caption>Membres du hub (en attente d'abord)</caption><thead><tr>\
             <th scope=\"col\">Nom</th><th scope=\"col\">Identifiant</th><th scope=\"col\">Rôle</th>\
             <th scope=\"col\">Réseau émetteur</th><th scope=\"col\">État</th><th scope=\"col\">Dernier contact</th>\
             <th scope=\"col\">Retard (changements)</th><th scope=\"col\">Enregistrements détenus</th>\
             <th scope=\"col\">Empreintes divergentes</th><th scope=\"col\">Actions</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    Ok(layout::page(ctx, "/membres", "Membres", body))
}

/// What removing a member purges, before doing it.
pub(crate) async fn confirm_remove(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let (id, network) = (ctx.query.get("id").to_string(), ctx.query.get("network").to_string());
    let (lookup_id, lookup_network) = (id.clone(), network.clone());
    let member = ctx
        .hub(move |hub| {
            Ok(hub.list_members()?.into_iter().find(|m| m.id == lookup_id && m.network == lookup_network))
        })
        .await?;
    let Some(member) = member else {
        return Ok(super::super::pages::done(ctx, "/membres", format!("Refusé : membre {id} inconnu")));
    };
    let name = name_of(&member);
    let button = if ctx.admin() {
        html!(
            "<form method=\"post\" action=\"/membres/retirer\">{}<input type=\"hidden\" name=\"id\" value=\"{}\">\
             <input type=\"hidden\" name=\"network\" value=\"{}\"><button type=\"submit\" class=\"danger\">Retirer définitivement</button> \
             <a href=\"/membres\">Annuler</a></form>",
            csrf(ctx),
            member.id.as_str(),
            member.network.as_str()
        )
    } else {
        Html::trusted("<p>Votre compte est en lecture seule.</p>")
    };
    let body = html!(
        "<div class=\"alert\" role=\"alert\"><p>Retirer <strong>{}</strong> ({}, réseau {}) efface du hub, en une fois, \
         tout ce qu'il y détient : ses {} enregistrements (besoins, profils, indicateurs), leurs effacements en attente, \
         ses contributions aux statistiques publiées et ses entrées du flux de vue. Les mois déjà clôturés restent figés.</p>\
         <p>À son prochain contact il redeviendra « en attente » ; une fois accepté de nouveau, il renverra ce qu'il partage encore.</p></div>{}",
        name.as_str(),
        member.id.as_str(),
        member.network.as_str(),
        member.records_held,
        button
    );
    Ok(layout::page(ctx, "/membres", "Retirer un membre", body))
}

/// Removes a member (admins; the gate checked the role and the CSRF token).
pub(crate) async fn remove(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let (id, network) = (ctx.form.get("id").to_string(), ctx.form.get("network").to_string());
    let outcome = ctx.hub(move |hub| hub.remove_member(&id, Some(network.as_str()))).await;
    settle(ctx, "/membres", outcome, "Membre retiré, et ce que le hub détenait de lui effacé.")
}

/// Accepts a pending member.
pub(crate) async fn accept(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let (id, network) = (ctx.form.get("id").to_string(), ctx.form.get("network").to_string());
    let outcome = ctx.hub(move |hub| hub.accept_member(&id, Some(network.as_str()))).await;
    settle(ctx, "/membres", outcome, "Membre accepté.")
}
