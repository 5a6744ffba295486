//! Live configuration reloads: on SIGHUP shard 0 reads the configuration file again, and if it
//! is valid puts it in force on every shard without a restart (the seed's restart table is
//! what Palisade does away with). An invalid file changes nothing: every problem is logged and
//! the gateway keeps running what it ran.
//!
//! Owns reading the file, checking it, broadcasting it and reporting the outcome. What it
//! changes (what may change live, what waits for a restart, the policy compiled from it:
//! `Gateway::plan_reload`) and what it does on each shard (the engine's policy, streams to
//! servers that changed or left, dialers for new ones, router legs: `Gateway::
//! handle_reconfigure`; whether the compliance port opens: `Gateway::listens_for_compliance`)
//! are the gateway core's decisions; only the compliance listener is opened here. The diff
//! itself is pure and lives in `policy::reload`; the engine's part in `engine::reload`.
//!
//! Certificates and keys are read again too (even when the file did not change): new
//! connections use them, established streams keep theirs; a bad one refuses the reload.

use super::log::Level;
use super::mesh::ShardMsg;
use super::shard::ShardCtx;
use crate::gateway::ReloadPlan;
use crate::policy::{CompiledPolicy, Config};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
    let listening = ctx.compliance_listening.get();
    let plan = ctx.feed(|core| core.plan_reload(loaded.config, listening));
    let ReloadPlan {
        config,
        policy,
        summary,
    } = match plan {
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

/// Puts `config` and `policy` in force on this shard: the core decides what changes, then the
/// compliance listener opens if a server now dials in.
pub fn apply(ctx: &Rc<ShardCtx>, config: Arc<Config>, policy: Arc<CompiledPolicy>) {
    ctx.replace_config(config.clone(), policy.clone());
    ctx.feed(|core| core.handle_reconfigure(config.clone(), policy.clone(), Instant::now()));
    if !ctx.compliance_listening.get() {
        if let Err(e) = super::listen_for_compliance(ctx, &config, true) {
            ctx.log(Level::Error, &e.to_string());
        }
    }
}
