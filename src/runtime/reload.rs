//! Live configuration reloads: on SIGHUP shard 0 reads the configuration file again, and if it
//! is valid puts it in force on every shard without a restart (the seed's restart table is
//! what Palisade does away with). An invalid file changes nothing: every problem is logged and
//! the gateway keeps running what it ran.
//!
//! Owns the order of a reload on one shard: the engine first (so events arriving from now on
//! walk the new chains), then streams to servers that changed or left, dialers for new ones,
//! router legs, and the compliance listener. The diff itself (what changed, what needs a
//! restart) is pure and lives in `policy::reload`; the engine's part in `engine::reload`.
//!
//! Certificates and keys are read again too (even when the file did not change): new
//! connections use them, established streams keep theirs; a bad one refuses the reload.

use super::link;
use super::log::Level;
use super::mesh::ShardMsg;
use super::router;
use super::shard::ShardCtx;
use crate::policy::{reload::Plan, CompiledPolicy, Config, ServerId, ServerInfo, ServerMode};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The outcome of the latest reload, for `/status`.
#[derive(Clone, Debug, Default)]
pub struct ReloadReport {
    /// Configurations put in force since start (0: the one the gateway started with).
    pub generation: u32,
    pub file: Option<PathBuf>,
    /// Seconds since the Unix epoch, whether it worked, and what it did or why not.
    pub last: Option<(u64, bool, String)>,
    /// A reload is under way (SIGHUP and `POST /reload` take turns).
    pub in_progress: bool,
}

impl ReloadReport {
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.last.as_ref().map(
            |(at, ok, message)| serde_json::json!({ "at_unix": at, "ok": ok, "message": message }),
        );
        serde_json::json!({
            "generation": self.generation,
            "file": self.file.as_ref().map(|f| f.display().to_string()),
            "last_reload": last,
        })
    }
}

/// `POST /reload` on the admin endpoint: reloads as SIGHUP does and answers with the outcome,
/// `{"ok": .., "generation": .., "message": ..}` (200 when the file is in force, 422 when it
/// was refused, 409 when there is no file to read).
pub async fn on_request(ctx: &Rc<ShardCtx>) -> (u16, &'static str, Vec<u8>) {
    let file = ctx.reload_report.borrow().file.clone();
    let Some(file) = file else {
        let message = "no configuration file to reload: the gateway runs the embedded default";
        ctx.log(Level::Warn, &format!("POST /reload: {message}"));
        let generation = ctx.reload_report.borrow().generation;
        return (409, "Conflict", outcome_json(false, generation, message));
    };
    from_file(ctx, &file).await;
    let report = ctx.reload_report.borrow();
    let (ok, message) = report
        .last
        .as_ref()
        .map_or((false, "no outcome recorded"), |(_, ok, m)| {
            (*ok, m.as_str())
        });
    let body = outcome_json(ok, report.generation, message);
    match ok {
        true => (200, "OK", body),
        false => (422, "Unprocessable Content", body),
    }
}

fn outcome_json(ok: bool, generation: u32, message: &str) -> Vec<u8> {
    let mut body =
        serde_json::json!({ "ok": ok, "generation": generation, "message": message }).to_string();
    body.push('\n');
    body.into_bytes()
}

/// Reads `path` again and, if it is valid, puts it in force on every shard (shard 0 only).
/// A reload asked for while another runs waits for it.
pub async fn from_file(ctx: &Rc<ShardCtx>, path: &Path) {
    while ctx.reload_report.borrow().in_progress {
        ctx.wakes.reload.wait().await;
    }
    ctx.reload_report.borrow_mut().in_progress = true;
    let _turn = Turn(ctx);
    reload_file(ctx, path).await;
}

/// Ends a reload's turn however the reload ends (a contained panic included).
struct Turn<'a>(&'a ShardCtx);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.reload_report.borrow_mut().in_progress = false;
        self.0.wakes.reload.notify_all();
    }
}

async fn reload_file(ctx: &Rc<ShardCtx>, path: &Path) {
    ctx.log(
        Level::Info,
        &format!("Reloading the configuration from {}", path.display()),
    );
    let owned = path.to_path_buf();
    let loaded = glommio::executor()
        .spawn_blocking(move || {
            let loaded = crate::config::load_file(&owned)?;
            let origin = owned.display().to_string();
            let now = SystemTime::now();
            match crate::tls::Material::build(&loaded.config, &origin, now) {
                (Some(material), problems) => Ok((loaded, material, problems)),
                (None, problems) => Err(problems),
            }
        })
        .await;
    let (loaded, tls, tls_warnings) = match loaded {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            for d in &diagnostics {
                ctx.log(Level::Error, &d.to_string());
            }
            let text = format!(
                "configuration NOT reloaded from {}: {} problem(s); still running the previous one",
                path.display(),
                diagnostics.len()
            );
            ctx.log(Level::Error, &text);
            return report(ctx, false, text);
        }
    };
    for w in loaded.warnings.iter().chain(&tls_warnings) {
        ctx.log(Level::Warn, &w.to_string());
    }
    let plan = {
        let (config, policy) = (ctx.config(), ctx.policy());
        let listening = ctx.compliance_listening.get();
        crate::policy::reload::plan(&config, &policy, loaded.config, listening)
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(refused) => {
            let text = format!(
                "configuration NOT reloaded from {}: {refused}",
                path.display()
            );
            ctx.log(Level::Error, &text);
            return report(ctx, false, text);
        }
    };
    for key in &plan.restart_needed {
        ctx.log(
            Level::Warn,
            &format!("{key} changed: it takes effect at the next restart"),
        );
    }
    let Plan {
        config, summary, ..
    } = plan;
    let policy = Arc::new(CompiledPolicy::compile_after(&config, Some(&ctx.policy())));
    let config = Arc::new(config);
    let tls = Arc::new(tls);
    for peer in (0..ctx.shards).filter(|&p| p != ctx.id) {
        ctx.outbox.push(
            usize::from(peer),
            ShardMsg::Reconfigure {
                config: config.clone(),
                policy: policy.clone(),
                tls: tls.clone(),
            },
        );
    }
    ctx.replace_tls(tls);
    apply(ctx, config, policy);
    let generation = ctx.reload_report.borrow().generation + 1;
    ctx.reload_report.borrow_mut().generation = generation;
    let text = format!(
        "Configuration reloaded from {} (generation {generation}): {summary}",
        path.display()
    );
    ctx.log(Level::Info, &text);
    report(ctx, true, text);
}

fn report(ctx: &ShardCtx, ok: bool, text: String) {
    let at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    ctx.reload_report.borrow_mut().last = Some((at, ok, text));
}

/// Puts `config` and `policy` in force on this shard.
pub fn apply(ctx: &Rc<ShardCtx>, config: Arc<Config>, policy: Arc<CompiledPolicy>) {
    let (old_config, old_policy) = ctx.replace_config(config.clone(), policy.clone());
    ctx.engine.borrow_mut().reconfigure(
        super::engine_config(ctx.id, ctx.shards, &config),
        policy.clone(),
        Instant::now(),
    );
    let servers = policy.servers().len();
    ctx.links.borrow_mut().resize(servers, None);
    ctx.link_generations.borrow_mut().resize(servers, 0);
    for (index, new) in policy.servers().iter().enumerate() {
        let id = ServerId(u16::try_from(index).unwrap_or(u16::MAX));
        let old = old_policy.servers().get(index);
        let changed = old.is_some_and(|o| !o.retired && o.stream_differs(new));
        match old {
            Some(old) if !old.retired && new.retired => retire_streams(ctx, id, old, &config),
            Some(old) if changed => restart_streams(ctx, id, old),
            _ => {}
        }
        let was_dialing = old.is_some_and(|o| dials_here(ctx, o));
        if dials_here(ctx, new) && (changed || !was_dialing) {
            let generation = ctx.link_generation(id);
            super::contain::spawn(
                ctx.id,
                format!("the dialer of compliance server {}", new.name),
                link::dial(ctx.clone(), id, generation),
            );
        }
    }
    router::reconcile(ctx, &old_config, &config);
    router::push_chains_changed(ctx);
    if !ctx.compliance_listening.get() {
        if let Err(e) = super::listen_for_compliance(ctx, &config, &policy, true) {
            ctx.log(Level::Error, &e);
        }
    }
    // What the engine decided (moved requests, cleared alarms) goes out now, not at the next
    // timer tick.
    ctx.pump();
}

/// Whether this shard keeps an outbound stream to `server`.
fn dials_here(ctx: &ShardCtx, server: &ServerInfo) -> bool {
    let shards = usize::from(ctx.shards);
    let streams = server.connections.unwrap_or(shards).clamp(1, shards);
    server.mode == ServerMode::Outbound && !server.retired && usize::from(ctx.id) < streams
}

/// Ends this shard's stream to a server whose address, identity or stream count changed: its
/// dialer stops, and the engines hear of the loss now, as an ungraceful one, so the server
/// waits in its outage window for the new stream (its unanswered requests are sent again
/// there) rather than leaving the ring.
fn restart_streams(ctx: &ShardCtx, server: ServerId, old: &ServerInfo) {
    ctx.bump_link_generation(server);
    let conn = ctx
        .links
        .borrow_mut()
        .get_mut(server.index())
        .and_then(Option::take);
    if let Some(conn) = conn {
        ctx.log(
            Level::Info,
            &format!(
                "Closing the stream to component {}: its configuration changed",
                old.component
            ),
        );
        conn.close();
        ctx.link_changed(server, false, false);
    }
}

/// A removed server: its dialer stops now, and its stream stays open for one event timeout so
/// that it can answer what it already holds (every engine has taken it out of the ring, so it
/// gets nothing new), then closes.
fn retire_streams(ctx: &Rc<ShardCtx>, server: ServerId, old: &ServerInfo, config: &Config) {
    ctx.bump_link_generation(server);
    let conn = ctx.links.borrow().get(server.index()).cloned().flatten();
    let Some(conn) = conn else {
        return;
    };
    let (ctx, component) = (ctx.clone(), old.component.clone());
    let grace = config.timers.event_timeout + Duration::from_millis(100);
    glommio::spawn_local(async move {
        glommio::timer::sleep(grace).await;
        if let Some(slot) = ctx.links.borrow_mut().get_mut(server.index()) {
            if slot.as_ref().is_some_and(|c| Rc::ptr_eq(c, &conn)) {
                *slot = None;
            }
        }
        ctx.log(
            Level::Info,
            &format!("Closing the stream to component {component}: removed from the configuration"),
        );
        conn.close();
    })
    .detach();
}
