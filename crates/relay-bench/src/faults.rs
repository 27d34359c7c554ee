//! Faults injected half-way through the measured window, to show that nothing acknowledged is
//! lost: the relay killed with SIGKILL and started again on the same port and database, or the
//! Postgres server restarted (`pg_ctlcluster restart`, the whole server: run it on a machine of
//! your own). CPU and memory figures of such a run are not meaningful and are not reported.

use std::time::Duration;

use anyhow::Context;

use crate::relay::{self, Relay};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL the relay, then start it again.
    Sigkill,
    /// Restart the Postgres server.
    PgRestart,
}

/// What a fault needs to bring the relay back.
pub struct Restart<'a> {
    pub binary: &'a str,
    pub db: &'a str,
    pub prefix: &'a str,
}

/// Waits `after`, injects `fault`, and returns the relay that runs afterwards.
pub async fn inject(
    fault: Fault,
    relay: Relay,
    after: Duration,
    restart: Restart<'_>,
) -> anyhow::Result<Relay> {
    tokio::time::sleep(after).await;
    match fault {
        Fault::Sigkill => {
            let port = relay.port();
            let mut relay = relay;
            relay.child.start_kill()?;
            relay.child.wait().await?;
            println!("fault: the relay was killed with SIGKILL; starting it again");
            let roles = "ingress,admin,dispatcher";
            relay::start_relay_on(restart.binary, restart.db, roles, restart.prefix, port).await
        }
        Fault::PgRestart => {
            let version = std::fs::read_dir("/etc/postgresql")?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .next()
                .context("no cluster under /etc/postgresql")?;
            let status = tokio::process::Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "restart", "-m", "fast"])
                .status()
                .await?;
            anyhow::ensure!(status.success(), "pg_ctlcluster restart failed");
            println!("fault: Postgres was restarted");
            Ok(relay)
        }
    }
}
