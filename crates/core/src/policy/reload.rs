//! What a configuration reload changes, decided without doing any of it: which settings only a
//! restart can change (the running value is kept and a warning says so), and a one-line summary
//! of the servers, profiles, routers and settings that change live.
//!
//! Pure: it compares two validated configurations and returns the one to put in force. The
//! runtime applies it (`runtime::reload`).

use super::config::Config;
use super::matcher::CompiledPolicy;

/// A reload, decided.
#[derive(Debug)]
pub struct Plan {
    /// The configuration to put in force: the new file, with the running value of every
    /// restart-only setting.
    pub config: Config,
    /// Restart-only settings the file changed (kept at their running value for now).
    pub restart_needed: Vec<&'static str>,
    /// What changes live, in one line.
    pub summary: String,
}

/// Why a reload cannot be applied at all.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The gateway's own name is every stream's identity and every generated component name's
    /// stem: changing it live would rename the gateway under its peers' feet.
    GatewayNameChanged {
        /// The name the gateway runs under.
        running: String,
        /// The name the file gives.
        file: String,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::GatewayNameChanged { running, file } => write!(
                f,
                "[gateway] name changed from '{running}' to '{file}': that needs a restart, \
                 so nothing was reloaded"
            ),
        }
    }
}

/// Decides how `new` replaces `running` (compiled as `policy`). `compliance_bound`: the
/// compliance listener is up (its address then needs a restart to change).
pub fn plan(
    running: &Config,
    policy: &CompiledPolicy,
    mut new: Config,
    compliance_bound: bool,
) -> Result<Plan, Refused> {
    if new.gateway.name != running.gateway.name {
        return Err(Refused::GatewayNameChanged {
            running: running.gateway.name.clone(),
            file: new.gateway.name.clone(),
        });
    }
    let mut restart_needed = Vec::new();
    let mut keep = |key: &'static str, changed: bool| {
        if changed {
            restart_needed.push(key);
        }
        changed
    };
    let (g, l) = (&running.gateway, &running.listen);
    keep_running(&mut new.gateway.shards, g.shards, |c| {
        keep("[gateway] shards", c)
    });
    keep_running(&mut new.gateway.admin, g.admin, |c| {
        keep("[gateway] admin", c)
    });
    keep_running(&mut new.gateway.accept, g.accept, |c| {
        keep("[gateway] accept", c)
    });
    keep_running(&mut new.gateway.share_ports, g.share_ports, |c| {
        keep("[gateway] share_ports", c)
    });
    keep_running(&mut new.listen.routers, l.routers, |c| {
        keep("[listen] routers", c)
    });
    keep_running(&mut new.listen.compliance, l.compliance, |c| {
        keep("[listen] compliance", c && compliance_bound)
    });
    keep_running(&mut new.listen.routers_tls, l.routers_tls, |c| {
        keep("[listen] routers_tls", c)
    });
    keep_running(&mut new.listen.compliance_tls, l.compliance_tls, |c| {
        keep("[listen] compliance_tls", c && compliance_bound)
    });
    keep_running(&mut new.log, running.log, |c| keep("[log]", c));
    if new.spool != running.spool {
        restart_needed.push("[spool]");
        new.spool = running.spool.clone();
    }
    let summary = summarize(running, policy, &new);
    Ok(Plan {
        config: new,
        restart_needed,
        summary,
    })
}

/// Puts `running` back into `new` when it changed and `restart_only` (told whether it changed)
/// says it must wait for a restart.
fn keep_running<T: PartialEq + Copy>(
    new: &mut T,
    running: T,
    restart_only: impl FnOnce(bool) -> bool,
) {
    if restart_only(*new != running) {
        *new = running;
    }
}

/// "servers +cs4 -cs1 ~cs3; profiles +Audit ~Walls; priority; timers" or "no changes".
fn summarize(running: &Config, policy: &CompiledPolicy, new: &Config) -> String {
    let mut parts = Vec::new();
    let servers = diff(
        policy
            .servers()
            .iter()
            .filter(|s| !s.retired)
            .map(|s| s.name.as_str()),
        new.servers.iter().map(|s| s.name.as_str()),
        |name| {
            let old = running.servers.iter().find(|s| s.name == name);
            let now = new.servers.iter().find(|s| s.name == name);
            old != now
        },
    );
    push_part(&mut parts, "servers", servers);
    let profiles = diff(
        running.profiles.iter().map(|p| p.name.as_str()),
        new.profiles.iter().map(|p| p.name.as_str()),
        |name| {
            let old = running.profiles.iter().find(|p| p.name == name);
            let now = new.profiles.iter().find(|p| p.name == name);
            old != now
        },
    );
    push_part(&mut parts, "profiles", profiles);
    let order = |c: &Config| -> Vec<String> {
        c.priority
            .iter()
            .filter_map(|&id| c.profile(id).map(|p| p.name.clone()))
            .collect()
    };
    if order(running) != order(new) {
        parts.push("priority".to_owned());
    }
    let routers = diff(
        running.routers.iter().map(|r| r.name.as_str()),
        new.routers.iter().map(|r| r.name.as_str()),
        |name| running.router(name) != new.router(name),
    );
    push_part(&mut parts, "routers", routers);
    if running.timers != new.timers {
        parts.push("timers".to_owned());
    }
    if running.limits != new.limits {
        parts.push("limits".to_owned());
    }
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join("; ")
    }
}

fn push_part(parts: &mut Vec<String>, what: &str, changes: Vec<String>) {
    if !changes.is_empty() {
        parts.push(format!("{what} {}", changes.join(" ")));
    }
}

/// `+name` for added, `-name` for removed, `~name` for changed, in that order.
fn diff<'a>(
    old: impl Iterator<Item = &'a str> + Clone,
    new: impl Iterator<Item = &'a str> + Clone,
    changed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = new
        .clone()
        .filter(|n| !old.clone().any(|o| o == *n))
        .map(|n| format!("+{n}"))
        .collect();
    out.extend(
        old.clone()
            .filter(|o| !new.clone().any(|n| n == *o))
            .map(|o| format!("-{o}")),
    );
    out.extend(
        old.filter(|o| new.clone().any(|n| n == *o) && changed(o))
            .map(|o| format!("~{o}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::load_str;

    fn config(body: &str) -> Config {
        let text = format!(
            "[gateway]\nname = \"gw.example.com\"\n[listen]\nrouters = \"127.0.0.1:5275\"\n\
             compliance = \"127.0.0.1:5276\"\n[[router]]\nname = \"imp1.example.com\"\n\
             secret = \"s\"\n{body}"
        );
        load_str(&text, "t.toml")
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config
    }

    fn server(name: &str, port: u16) -> String {
        format!(
            "[[server]]\nname = \"{name}\"\nhost = \"h\"\nport = {port}\npassword = \"p\"\n\
             profile = \"SystemDefaultComplianceProfile\"\n"
        )
    }

    #[test]
    fn the_summary_names_what_changes_live() {
        let running = config(&format!("{}{}", server("cs1", 1), server("cs3", 3)));
        let policy = CompiledPolicy::compile(&running);
        let new = config(&format!(
            "[timers]\nevent_timeout = \"5s\"\n[[profile]]\nname = \"Audit\"\nevents = [{{ event = \"es_IN\" }}]\n{}{}",
            server("cs3", 4),
            server("cs4", 1)
        ));
        let decided = plan(&running, &policy, new, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decided.summary,
            "servers +cs4 -cs1 ~cs3; profiles +Audit; priority; timers"
        );
        assert!(decided.restart_needed.is_empty());
        let same = plan(&running, &policy, running.clone(), true);
        assert_eq!(same.map(|p| p.summary), Ok("no changes".to_owned()));
    }

    #[test]
    fn restart_only_settings_keep_their_running_value() {
        let running = config("");
        let policy = CompiledPolicy::compile(&running);
        let mut new = running.clone();
        new.gateway.shards = 7;
        new.gateway.share_ports = true;
        new.listen.routers = "127.0.0.1:6000".parse().unwrap_or_else(|e| panic!("{e}"));
        new.listen.compliance = None;
        let p = plan(&running, &policy, new.clone(), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.restart_needed,
            [
                "[gateway] shards",
                "[gateway] share_ports",
                "[listen] routers",
                "[listen] compliance"
            ]
        );
        assert_eq!(p.config.gateway, running.gateway);
        assert_eq!(p.config.listen, running.listen);
        let unbound = plan(&running, &policy, new, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unbound.config.listen.compliance, None,
            "nothing listens yet: live"
        );
    }

    #[test]
    fn a_new_gateway_name_is_refused() {
        let running = config("");
        let policy = CompiledPolicy::compile(&running);
        let mut new = running.clone();
        new.gateway.name = "other.example.com".into();
        let refused = plan(&running, &policy, new, false).err();
        assert!(matches!(refused, Some(Refused::GatewayNameChanged { .. })));
    }
}
