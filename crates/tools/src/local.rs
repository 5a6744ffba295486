//! A gateway and a simulator started on free loopback ports as child processes of this same
//! binary, with the embedded default configuration: what `palisade demo` shows and what
//! `palisade tuning relogin --measured` measures. Stopped (SIGTERM, then kill) on drop.

use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The embedded configuration's router and compliance server credentials.
pub const ROUTER_NAME: &str = "imp1.example.com";
pub const ROUTER_SECRET: &str = "palisade-demo-secret";
pub const SERVER_COMPONENT: &str = "op-cs1.palisade-example-com";
pub const SERVER_PASSWORD: &str = "palisade-demo-password";

/// Why the pair could not be started.
#[derive(Debug)]
pub enum LocalError {
    Setup(String),
    Child(&'static str, std::io::Error),
    NotReady(&'static str, String),
}

impl std::fmt::Display for LocalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalError::Setup(e) => write!(f, "setup failed: {e}"),
            LocalError::Child(what, e) => write!(f, "cannot start the {what}: {e}"),
            LocalError::NotReady(what, log) => write!(f, "the {what} did not come up:\n{log}"),
        }
    }
}

impl std::error::Error for LocalError {}

/// A running gateway with its simulator. See the module documentation.
pub struct LocalGateway {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub router: SocketAddr,
    pub admin: SocketAddr,
    pub sim: SocketAddr,
    children: Vec<Child>,
}

fn free_addr() -> Result<SocketAddr, LocalError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| LocalError::Setup(format!("no free loopback port: {e}")))
}

/// The embedded default configuration with loopback ports that are free right now.
pub fn config_text(
    router: SocketAddr,
    compliance: SocketAddr,
    sim: SocketAddr,
    admin: SocketAddr,
    shards: usize,
) -> String {
    crate::policy::DEFAULT_TOML
        .replace("127.0.0.1:5275", &router.to_string())
        .replace("127.0.0.1:5276", &compliance.to_string())
        .replace("port = 7999", &format!("port = {}", sim.port()))
        .replace(
            "# admin = \"127.0.0.1:9180\"",
            &format!("admin = \"{admin}\""),
        )
        .replace("shards = 0 ", &format!("shards = {shards} "))
}

impl LocalGateway {
    /// Starts the simulator (with `sim_flags`, e.g. rules and an archive) and the gateway, in
    /// `dir` (logs, configuration), and waits until the gateway's streams to it are up.
    pub fn start(
        name: &str,
        shards: usize,
        sim_flags: &[String],
    ) -> Result<LocalGateway, LocalError> {
        let exe = std::env::current_exe().map_err(|e| LocalError::Setup(e.to_string()))?;
        let dir = std::env::temp_dir().join(format!("palisade-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| LocalError::Setup(e.to_string()))?;
        let (router, compliance, sim, admin) =
            (free_addr()?, free_addr()?, free_addr()?, free_addr()?);
        let config = dir.join("palisade.toml");
        std::fs::write(&config, config_text(router, compliance, sim, admin, shards))
            .map_err(|e| LocalError::Setup(e.to_string()))?;
        let mut me = LocalGateway {
            exe,
            dir,
            router,
            admin,
            sim,
            children: Vec::new(),
        };
        let mut sim_args: Vec<String> = [
            "sim",
            "--listen",
            &sim.to_string(),
            "--name",
            SERVER_COMPONENT,
            "--secret",
            SERVER_PASSWORD,
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sim_args.extend_from_slice(sim_flags);
        me.spawn("simulator", &sim_args, "sim.log")?;
        let gw_args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config.to_string_lossy().into_owned(),
        ];
        me.spawn("gateway", &gw_args, "gateway.log")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while me
            .status()
            .and_then(|s| s["servers"][0]["streams"].as_u64())
            .unwrap_or(0)
            == 0
        {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(me.dir.join("gateway.log")).unwrap_or_default();
                return Err(LocalError::NotReady("gateway", log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    fn spawn(&mut self, what: &'static str, args: &[String], log: &str) -> Result<(), LocalError> {
        let f =
            std::fs::File::create(self.dir.join(log)).map_err(|e| LocalError::Child(what, e))?;
        let f2 = f.try_clone().map_err(|e| LocalError::Child(what, e))?;
        let child = Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .map_err(|e| LocalError::Child(what, e))?;
        self.children.push(child);
        Ok(())
    }

    /// The gateway's `/status` document.
    pub fn status(&self) -> Option<Value> {
        let body = crate::http_get::get(self.admin, "/status").ok()?;
        serde_json::from_str(&body).ok()
    }

    /// `palisade load` against this gateway with `args` (after the connection flags); stdout
    /// discarded, stderr inherited (its progress lines are the live view).
    pub fn load(&self, args: &[String]) -> Result<std::process::ExitStatus, LocalError> {
        Command::new(&self.exe)
            .args([
                "load",
                "--connect",
                &self.router.to_string(),
                "--name",
                ROUTER_NAME,
                "--secret",
                ROUTER_SECRET,
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| LocalError::Child("load generator", e))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LocalGateway {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SIGTERM first (a graceful stop), then make sure.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_the_default_with_free_ports() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let text = config_text(a(1), a(2), a(3), a(4), 1);
        let c = crate::policy::load_str(&text, "local.toml")
            .expect("valid")
            .config;
        assert_eq!(c.listen.routers, a(1));
        assert_eq!(c.servers[0].port, 3);
        assert_eq!(c.gateway.admin, Some(a(4)));
        assert_eq!(c.gateway.shards, 1);
        assert_eq!(c.servers[0].component, SERVER_COMPONENT);
        assert_eq!(c.servers[0].password, SERVER_PASSWORD);
        assert_eq!(c.routers[0].name, ROUTER_NAME);
        assert_eq!(c.routers[0].secret, ROUTER_SECRET);
    }
}
