//! What a reload changes on one shard, apart from the engine's own part
//! (`engine::reload`): streams to servers whose address, identity or stream count changed
//! are restarted, removed servers' streams are retired, dialers start where a server or router
//! leg now dials from this shard, router connections that must prove a new secret are closed,
//! and every host that asked for the chains is told to ask again.
//!
//! Before that, on the shard that read the file: what the new file may change live and what
//! waits for a restart, and the policy compiled from it with every id kept
//! ([`Gateway::plan_reload`]); and whether this shard listens for compliance servers now
//! ([`Gateway::listens_for_compliance`]). Reading the file and opening the port are the
//! runtime's.

use super::{ConnId, Dial, Gateway, Leg, Level, Output};
use crate::engine::{Closing, LinkChange};
use crate::policy::reload::Refused;
use crate::policy::{AcceptMode, CompiledPolicy, Config, ServerId, ServerInfo, ServerMode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reload the core accepted: what every shard puts in force ([`Gateway::handle_reconfigure`]),
/// and what it changes, in one line.
#[derive(Debug)]
pub struct ReloadPlan {
    /// The new file, with the running value of every restart-only setting.
    pub config: Arc<Config>,
    /// Compiled after the running policy: server, profile and node ids are kept.
    pub policy: Arc<CompiledPolicy>,
    /// What changes live.
    pub summary: String,
}

impl Gateway {
    /// A configuration file read again and found valid (`config`): what of it goes in force,
    /// or why none of it may. `compliance_listening`: the compliance port is open here. Each
    /// restart-only setting it changes is logged (an output) and keeps its running value.
    /// Nothing is in force yet: every shard, this one included, then gets
    /// [`Gateway::handle_reconfigure`].
    pub fn plan_reload(
        &mut self,
        config: Config,
        compliance_listening: bool,
    ) -> Result<ReloadPlan, Refused> {
        let plan =
            crate::policy::reload::plan(&self.config, &self.policy, config, compliance_listening)?;
        for key in &plan.restart_needed {
            self.log(
                Level::Warn,
                format!("{key} changed: it takes effect at the next restart"),
            );
        }
        let policy = Arc::new(CompiledPolicy::compile_after(
            &plan.config,
            Some(&self.policy),
        ));
        Ok(ReloadPlan {
            config: Arc::new(plan.config),
            policy,
            summary: plan.summary,
        })
    }

    /// Whether this shard listens on the compliance port under the configuration in force:
    /// some server dials in, and this shard listens (every shard with SO_REUSEPORT, shard 0
    /// when it hands connections over).
    pub fn listens_for_compliance(&self) -> bool {
        let listens = self.config.gateway.accept == AcceptMode::ReusePort || self.id == 0;
        let inbound = self
            .policy
            .servers()
            .iter()
            .any(|s| s.mode == ServerMode::Inbound && !s.retired);
        listens && inbound
    }

    /// Puts a reloaded `config` and `policy` in force on this shard.
    pub fn handle_reconfigure(
        &mut self,
        config: Arc<Config>,
        policy: Arc<CompiledPolicy>,
        now: Instant,
    ) {
        self.unsettled = true;
        let old_config = std::mem::replace(&mut self.config, config.clone());
        let old_policy = std::mem::replace(&mut self.policy, policy.clone());
        self.engine.reconfigure(
            super::engine_config(self.id, self.shards, &config),
            policy.clone(),
            now,
        );
        self.links.grow(policy.servers().len());
        for (index, new) in policy.servers().iter().enumerate() {
            let id = ServerId(u16::try_from(index).unwrap_or(u16::MAX));
            let old = old_policy.servers().get(index);
            let changed = old.is_some_and(|o| !o.retired && o.stream_differs(new));
            match old {
                Some(old) if !old.retired && new.retired => self.retire_streams(id, &config),
                Some(old) if changed => self.restart_streams(id, old, now),
                _ => {}
            }
            let was_dialing = old.is_some_and(|o| self.dials_server(o));
            if self.dials_server(new) && (changed || !was_dialing) {
                let generation = self.links.generation(id);
                self.out(Output::Dial(Dial::Server {
                    server: id,
                    generation,
                }));
            }
        }
        self.reconcile_routers(&old_config, &config);
        self.push_chains_changed();
    }

    /// A removed server's stream, kept open for one event timeout after the reload so that it
    /// could answer what it held ([`Output::CloseLater`]), closes now.
    pub fn handle_retire_due(&mut self, server: ServerId, conn: ConnId) {
        self.unsettled = true;
        self.links.clear(server, conn);
        let component = self
            .policy
            .server(server)
            .map_or_else(|| "?".to_owned(), |s| s.component.clone());
        self.log(
            Level::Info,
            format!("Closing the stream to component {component}: removed from the configuration"),
        );
        self.out(Output::Close { conn });
    }

    /// Ends this shard's stream to a server whose address, identity or stream count changed:
    /// its dialer stops, and the engines hear of the loss now, as an ungraceful one, so the
    /// server waits in its outage window for the new stream (its unanswered requests are sent
    /// again there) rather than leaving the ring.
    fn restart_streams(&mut self, server: ServerId, old: &ServerInfo, now: Instant) {
        self.links.bump_generation(server);
        if let Some(conn) = self.links.take(server) {
            self.log(
                Level::Info,
                format!(
                    "Closing the stream to component {}: its configuration changed",
                    old.component
                ),
            );
            self.out(Output::Close { conn });
            self.link_changed(server, LinkChange::Down(Closing::Abrupt), now);
        }
    }

    /// A removed server: its dialer stops now, and its stream stays open for one event timeout
    /// so that it can answer what it already holds (every engine has taken it out of the ring,
    /// so it gets nothing new), then closes.
    fn retire_streams(&mut self, server: ServerId, config: &Config) {
        self.links.bump_generation(server);
        if let Some(conn) = self.links.get(server) {
            let after = config.timers.event_timeout + Duration::from_millis(100);
            self.out(Output::CloseLater {
                conn,
                server,
                after,
            });
        }
    }

    /// Closes this shard's connections of routers that were removed or whose secret or
    /// address changed (they must prove the new one), follows node changes, and stops and
    /// starts outbound legs.
    fn reconcile_routers(&mut self, old: &Config, new: &Config) {
        let policy = self.policy.clone();
        let mut to_close: Vec<(ConnId, String, &'static str)> = Vec::new();
        let mut ids: Vec<u32> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in &ids {
            let Some(Leg::Router(leg)) = self.conns.get_mut(id).map(|c| &mut c.leg) else {
                continue;
            };
            let Some(r) = leg.entry_mut() else { continue };
            match (old.router(&r.name), new.router(&r.name)) {
                (_, None) => to_close.push((
                    ConnId(*id),
                    r.name.clone(),
                    "removed from the configuration",
                )),
                (Some(o), Some(n)) if o.secret != n.secret || o.connect != n.connect => {
                    to_close.push((ConnId(*id), r.name.clone(), "its secret or address changed"))
                }
                (_, Some(n)) => r.node = policy.node_id(n.node.as_bytes()),
            }
        }
        let unchanged_here = |this: &Gateway, name: &str, config: &Config, other: &Config| {
            let i = config.routers.iter().position(|r| r.name == name);
            let j = other.routers.iter().position(|r| r.name == name);
            match (i, j) {
                (Some(i), Some(j)) => {
                    config.routers[i] == other.routers[j]
                        && this.dials_router(other, j) == this.dials_router(config, i)
                }
                _ => false,
            }
        };
        for (j, o) in old.routers.iter().enumerate() {
            if self.dials_router(old, j) && !unchanged_here(self, &o.name, old, new) {
                *self.router_generations.entry(o.name.clone()).or_default() += 1;
                for id in &ids {
                    let Some(Leg::Router(leg)) = self.conns.get(id).map(|c| &c.leg) else {
                        continue;
                    };
                    if leg.entry().is_some_and(|r| r.name == o.name) {
                        to_close.push((
                            ConnId(*id),
                            o.name.clone(),
                            "its outbound leg moved or changed",
                        ));
                    }
                }
            }
        }
        for (conn, name, why) in to_close {
            self.log(
                Level::Info,
                format!("Closing router {name}'s stream: {why}"),
            );
            self.out(Output::Close { conn });
        }
        for (index, r) in new.routers.iter().enumerate() {
            if r.connect.is_none() {
                continue;
            }
            if self.dials_router(new, index) && !unchanged_here(self, &r.name, new, old) {
                let generation = self.router_generation(&r.name);
                self.out(Output::Dial(Dial::Router {
                    index,
                    name: r.name.clone(),
                    generation,
                }));
            }
        }
    }
}
