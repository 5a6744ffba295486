//! Validation of `[[profile]]` tables, their event entries, and `[routing] priority`.
//!
//! This file owns the profile rules: names, the reserved built-in profile, event names, packet
//! filters, handling, duplicate entries, the seed's bounce + fire-and-forget caution, and the
//! routing order. It must not look at servers or routers (servers.rs and validate.rs do).

use super::diagnostic::{did_you_mean, nearest, Diags};
use super::load::{RawEntry, RawProfile, Sp};
use super::validate::FirstSeen;
use crate::policy::catalog::{AnswerRule, EventId, EventKind, PacketFilter, CATALOG};
use crate::policy::profile::{
    check_profile_name, Entry, Handling, Profile, ProfileId, SYSTEM_DEFAULT_PROFILE,
};
use crate::policy::DetHashMap;

/// The seed's caution about bounce with fire-and-forget, verbatim.
pub(crate) const BOUNCE_FORGET_CAUTION: &str =
    "If a combination of Bounce, and Fire and Forget is \
selected, an event to which this applies will be passed to the compliance server and then \
discarded. This means it will not be processed further by IM and Presence Service. Use this \
combination with care.";

/// The built-in profile first, then every `[[profile]]` that has a name and is not a
/// redefinition of the built-in one.
pub(super) fn profiles(raw: &[RawProfile], d: &mut Diags<'_>) -> Vec<Profile> {
    let mut out = vec![Profile::system_default()];
    let mut seen = FirstSeen::default();
    for p in raw {
        let Some(name) = &p.name else { continue };
        if name.v.eq_ignore_ascii_case(SYSTEM_DEFAULT_PROFILE) {
            d.error_hint(
                name.at,
                format!("`{SYSTEM_DEFAULT_PROFILE}` is built in and cannot be redefined"),
                format!(
                    "choose another name; assign the built-in one with \
                     profile = \"{SYSTEM_DEFAULT_PROFILE}\""
                ),
            );
            continue;
        }
        if let Err(e) = check_profile_name(&name.v) {
            d.error(name.at, format!("invalid profile name {:?}: {e}", name.v));
        }
        if let Some(line) = seen.earlier_line(d, &name.v, name.at) {
            let message = format!(
                "duplicate profile `{}` (first defined on line {line})",
                name.v
            );
            d.error(name.at, message);
        }
        if out.len() > usize::from(u16::MAX) {
            d.error(name.at, format!("too many profiles: at most {}", u16::MAX));
            continue;
        }
        if p.events_written == 0 {
            let message = format!("profile `{}` has no events: it matches nothing", name.v);
            d.warning(name.at, message, None);
        }
        out.push(Profile {
            name: name.v.clone(),
            description: p
                .description
                .as_ref()
                .map_or_else(String::new, |s| s.v.clone()),
            entries: entries(&name.v, &p.events, d),
        });
    }
    out
}

fn entries(profile: &str, raw: &[RawEntry], d: &mut Diags<'_>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::with_capacity(raw.len());
    let mut seen: DetHashMap<(EventId, PacketFilter), usize> = DetHashMap::default();
    for e in raw {
        let Some(event_sp) = &e.event else { continue };
        let Some(event) = EventId::lookup(event_sp.v.as_bytes()) else {
            let close = nearest(&event_sp.v, CATALOG.iter().map(|s| s.name)).unwrap_or("es_OUT");
            d.error_hint(
                event_sp.at,
                format!("unknown event `{}`", event_sp.v),
                format!("did you mean `{close}`? (`palisade events` lists every event)"),
            );
            continue;
        };
        let packet = packet(event, e.packet.as_ref(), d);
        let handling = match &e.handling {
            None => Handling::Bounce,
            Some(h) => Handling::parse(&h.v).unwrap_or_else(|| {
                let message = format!("unknown handling {:?}", h.v);
                d.error_hint(h.at, message, "expected bounce or pass");
                Handling::Bounce
            }),
        };
        let fire_and_forget = e.fire_and_forget.as_ref().is_some_and(|f| f.v);
        let entry = Entry::new(event, packet, handling, fire_and_forget);
        if let Some(&first) = seen.get(&(event, packet)) {
            let line = d.position(first).0;
            let message = format!(
                "`{event}` for packet `{packet}` is already in profile `{profile}` (line {line})"
            );
            d.error(event_sp.at, message);
            continue;
        }
        seen.insert((event, packet), event_sp.at);
        caution(profile, e, &entry, d);
        out.push(entry);
    }
    out
}

fn packet(event: EventId, raw: Option<&Sp<String>>, d: &mut Diags<'_>) -> PacketFilter {
    let Some(p) = raw else {
        return PacketFilter::All;
    };
    if event.kind() == EventKind::Tc {
        d.error_hint(
            p.at,
            format!("`packet` applies to JSM events only; `{event}` is a TC event"),
            "remove `packet` from this entry",
        );
        return PacketFilter::All;
    }
    PacketFilter::parse(&p.v).unwrap_or_else(|| {
        let mut hint = format!("expected one of {}", PacketFilter::NAMES.join(", "));
        if let Some(close) = did_you_mean(&p.v, PacketFilter::NAMES) {
            hint.push_str(&format!("; did you mean `{close}`?"));
        }
        d.error_hint(p.at, format!("unknown packet type {:?}", p.v), hint);
        PacketFilter::All
    })
}

/// Warnings for settings that do something the administrator may not expect.
fn caution(profile: &str, raw: &RawEntry, entry: &Entry, d: &mut Diags<'_>) {
    let event = entry.event;
    if event.answer() == AnswerRule::NotifyOnly {
        let explicit_bounce = raw.handling.is_some() && entry.handling == Handling::Bounce;
        let explicit_wait = raw.fire_and_forget.as_ref().is_some_and(|f| !f.v);
        if explicit_bounce || explicit_wait {
            d.warning(
                raw.event.as_ref().map_or(raw.at, |e| e.at),
                format!(
                    "`{event}` is a notification only: it is always sent fire-and-forget and \
                     always passes"
                ),
                Some("its handling and fire_and_forget settings are ignored".to_string()),
            );
        }
    } else if entry.drops_event() {
        d.warning(
            raw.fire_and_forget.as_ref().map_or(raw.at, |f| f.at),
            format!(
                "`{event}` in profile `{profile}` combines bounce with fire-and-forget: \
                 {BOUNCE_FORGET_CAUTION}"
            ),
            Some(
                "every such event is dropped after the notification; use handling = \"pass\" \
                 to let it through"
                    .to_string(),
            ),
        );
    }
}

/// Every profile exactly once: the listed ones in the given order, then the others in
/// definition order (the seed's default routing priority).
pub(super) fn priority(
    raw: Option<&[Sp<String>]>,
    profiles: &[Profile],
    d: &mut Diags<'_>,
) -> Vec<ProfileId> {
    let id = |i: usize| ProfileId(u16::try_from(i).unwrap_or(0));
    let mut order: Vec<ProfileId> = Vec::with_capacity(profiles.len());
    let mut listed_at: DetHashMap<usize, usize> = DetHashMap::default();
    for item in raw.unwrap_or_default() {
        let Some(index) = profiles.iter().position(|p| p.name == item.v) else {
            let hint = match did_you_mean(&item.v, profiles.iter().map(|p| p.name.as_str())) {
                Some(close) => format!("did you mean `{close}`?"),
                None => {
                    format!("list profiles defined with [[profile]], or {SYSTEM_DEFAULT_PROFILE}")
                }
            };
            let message = format!("routing priority names unknown profile `{}`", item.v);
            d.error_hint(item.at, message, hint);
            continue;
        };
        if let Some(&first) = listed_at.get(&index) {
            let line = d.position(first).0;
            let message = format!(
                "profile `{}` is listed twice in the routing priority (first on line {line})",
                item.v
            );
            d.error(item.at, message);
            continue;
        }
        listed_at.insert(index, item.at);
        order.push(id(index));
    }
    for index in 0..profiles.len() {
        if !listed_at.contains_key(&index) {
            order.push(id(index));
        }
    }
    order
}
