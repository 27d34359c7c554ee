//! Configuration: flags, then environment, then an optional `relay.toml`, then defaults
//! (CONTRACT §2). clap reads a flag or its environment variable; the TOML file fills what both
//! left unset, under the same names in snake_case.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use relay_core::secret::Secret;
use serde::Deserialize;

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingress: bool,
    pub admin: bool,
    pub dispatcher: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { ingress: true, admin: true, dispatcher: true };

    pub fn parse(text: &str) -> anyhow::Result<Roles> {
        let mut roles = Roles { ingress: false, admin: false, dispatcher: false };
        for role in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "ingress" => roles.ingress = true,
                "admin" => roles.admin = true,
                "dispatcher" => roles.dispatcher = true,
                other => bail!("unknown role `{other}`: expected ingress, admin or dispatcher"),
            }
        }
        if roles == (Roles { ingress: false, admin: false, dispatcher: false }) {
            bail!("--roles names no role");
        }
        Ok(roles)
    }
}

fn bool_flag() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// Every knob, as a flag and an environment variable. `None` means "not given here".
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Server settings (serve, migrate, tenant, token)")]
pub struct SettingsArgs {
    /// Postgres, the source of truth.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Redis: dedupe fast path, shared rate limits; optional at run time.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (one per deployment sharing a Redis).
    #[arg(long, env = "RELAY_REDIS_PREFIX", global = true)]
    pub redis_prefix: Option<String>,
    /// HTTP listener.
    #[arg(long, env = "RELAY_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Base of the `ingest_url` shown to tenants.
    #[arg(long, env = "RELAY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// HS256 key for admin tokens (at least 32 bytes).
    #[arg(long, env = "RELAY_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// 32-byte key (base64) that encrypts stored secrets.
    #[arg(long, env = "RELAY_MASTER_KEY", global = true, hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// During a master key rotation: the previous key, still used to open stored secrets.
    #[arg(long, env = "RELAY_MASTER_KEY_PREVIOUS", global = true, hide_env_values = true)]
    pub master_key_previous: Option<Secret>,
    /// During a JWT secret rotation: the previous secret, whose tokens still verify.
    #[arg(long, env = "RELAY_JWT_SECRET_PREVIOUS", global = true, hide_env_values = true)]
    pub jwt_secret_previous: Option<Secret>,
    /// Allow destinations on loopback/private/link-local addresses.
    #[arg(long, env = "RELAY_ALLOW_PRIVATE_DESTINATIONS", global = true, value_parser = bool_flag(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_private_destinations: Option<bool>,
    /// Refuse `http://` destination URLs.
    #[arg(long, env = "RELAY_REQUIRE_HTTPS_DESTINATIONS", global = true, value_parser = bool_flag(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_https_destinations: Option<bool>,
    /// Largest accepted event body, in bytes.
    #[arg(long, env = "RELAY_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Ingest sheds load (503 with Retry-After) while the oldest event waiting for its write has
    /// waited this long, in milliseconds.
    #[arg(long, env = "RELAY_INGEST_QUEUE_MS", global = true)]
    pub ingest_queue_ms: Option<u64>,
    /// Connections the listener keeps open at once; past it a new one is answered 503 and closed.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Roles of `serve`: any of ingress,admin,dispatcher.
    #[arg(long, env = "RELAY_ROLES", global = true)]
    pub roles: Option<String>,
    /// Postgres connections per process.
    #[arg(long, env = "RELAY_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<u32>,
    /// Postgres connections of the admin API's heavy reads (statistics, the logs), apart from
    /// the main pool of ingest and the dispatcher. Default: half of RELAY_DB_POOL_SIZE, at least
    /// 2 (twice the default per-tenant bound, so one tenant never holds them all).
    #[arg(long, env = "RELAY_ADMIN_DB_POOL_SIZE", global = true)]
    pub admin_db_pool_size: Option<u32>,
    /// `statement_timeout` of those connections, in milliseconds; a read past it answers 503
    /// `query_timeout`.
    #[arg(long, env = "RELAY_ADMIN_STATEMENT_TIMEOUT_MS", global = true)]
    pub admin_statement_timeout_ms: Option<u64>,
    /// Heavy admin reads one tenant may run at once per process; past it 429 `too_many_reads`.
    #[arg(long, env = "RELAY_ADMIN_READS_PER_TENANT", global = true)]
    pub admin_reads_per_tenant: Option<usize>,
    /// Concurrent outbound attempts per dispatcher process.
    #[arg(long, env = "RELAY_DISPATCH_CONCURRENCY", global = true)]
    pub dispatch_concurrency: Option<usize>,
    /// Shortest lease of a claimed delivery, in seconds (a claim always covers the
    /// destination's timeout plus 5 s). A crashed process's deliveries are due again once its
    /// fleet heartbeat lapses (about 5 s, see docs/recovery.md), or after the lease without Redis.
    #[arg(long, env = "RELAY_DISPATCH_LEASE_SECONDS", global = true)]
    pub dispatch_lease_seconds: Option<u64>,
    /// Hours of nothing but failed attempts after which a destination is disabled.
    #[arg(long, env = "RELAY_DISABLE_FAILING_AFTER_HOURS", global = true)]
    pub disable_failing_after_hours: Option<u64>,
    /// Seconds a stopping process lets in-flight attempts finish.
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE_SECONDS", global = true)]
    pub shutdown_grace_seconds: Option<u64>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "RELAY_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// TLS on the listener: the certificate chain (PEM path); needs `--tls-key`.
    #[arg(long, env = "RELAY_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// TLS on the listener: the private key (PEM path); needs `--tls-cert`.
    #[arg(long, env = "RELAY_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// The optional configuration file.
    #[arg(long, env = "RELAY_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Effective settings, after layering.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub listen: SocketAddr,
    pub public_url: String,
    pub jwt_secret: Option<Secret>,
    pub master_key: Option<Secret>,
    pub master_key_previous: Option<Secret>,
    pub jwt_secret_previous: Option<Secret>,
    pub allow_private_destinations: bool,
    pub require_https_destinations: bool,
    pub max_body_bytes: usize,
    pub ingest_queue_wait: Duration,
    pub max_connections: usize,
    pub roles: Roles,
    pub db_pool_size: u32,
    pub admin_db_pool_size: u32,
    pub admin_statement_timeout: Duration,
    pub admin_reads_per_tenant: usize,
    pub dispatch_concurrency: usize,
    pub dispatch_lease: Duration,
    pub disable_failing_after: Duration,
    pub shutdown_grace: Duration,
    pub log_format: String,
    /// (certificate chain, private key) PEM paths, when the listener speaks TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl SettingsArgs {
    /// Lays the file (if any) under the flags/environment and fills defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let path = self.config.clone().unwrap_or_else(|| PathBuf::from("relay.toml"));
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<SettingsArgs>(&text)
                .with_context(|| format!("reading {}", path.display()))?,
            // Only a missing default file is silently skipped: an unreadable one is an error, or
            // a production process would start on the defaults.
            Err(e) if self.config.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                SettingsArgs::default()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let s = self.layer(file);
        let roles = match s.roles.as_deref() {
            Some(text) => Roles::parse(text)?,
            None => Roles::ALL,
        };
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => bail!("TLS needs both RELAY_TLS_CERT and RELAY_TLS_KEY (or neither)"),
        };
        let db_pool_size = s.db_pool_size.unwrap_or(16).max(1);
        let max_body_bytes = s.max_body_bytes.unwrap_or(1_048_576);
        if max_body_bytes == 0 {
            bail!("max_body_bytes must be positive");
        }
        Ok(Settings {
            database_url: s
                .database_url
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/wap_relay".into()),
            redis_url: s.redis_url.unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            redis_prefix: s.redis_prefix.unwrap_or_else(|| "wap-relay:".into()),
            listen: s.listen.unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default address")),
            public_url: s
                .public_url
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            jwt_secret: s.jwt_secret,
            master_key: s.master_key,
            master_key_previous: s.master_key_previous,
            jwt_secret_previous: s.jwt_secret_previous,
            allow_private_destinations: s.allow_private_destinations.unwrap_or(false),
            require_https_destinations: s.require_https_destinations.unwrap_or(false),
            max_body_bytes,
            ingest_queue_wait: Duration::from_millis(s.ingest_queue_ms.unwrap_or(75).max(1)),
            max_connections: s.max_connections.unwrap_or(1024).max(1),
            roles,
            db_pool_size,
            admin_db_pool_size: s.admin_db_pool_size.unwrap_or((db_pool_size / 2).max(2)).max(1),
            admin_statement_timeout: Duration::from_millis(
                s.admin_statement_timeout_ms.unwrap_or(5_000).max(1),
            ),
            admin_reads_per_tenant: s
                .admin_reads_per_tenant
                .unwrap_or(relay_admin::DEFAULT_READS_PER_TENANT)
                .max(1),
            dispatch_concurrency: s.dispatch_concurrency.unwrap_or(512).max(1),
            dispatch_lease: Duration::from_secs(s.dispatch_lease_seconds.unwrap_or(20).max(1)),
            disable_failing_after: Duration::from_secs(s.disable_failing_after_hours.unwrap_or(72) * 3600),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_seconds.unwrap_or(10)),
            log_format: s.log_format.unwrap_or_else(|| "text".into()),
            tls,
        })
    }

    fn layer(self, file: SettingsArgs) -> SettingsArgs {
        macro_rules! pick {
            ($($f:ident),*) => { SettingsArgs { $( $f: self.$f.or(file.$f), )* config: self.config } };
        }
        pick!(
            database_url,
            redis_url,
            redis_prefix,
            listen,
            public_url,
            jwt_secret,
            master_key,
            master_key_previous,
            jwt_secret_previous,
            allow_private_destinations,
            require_https_destinations,
            max_body_bytes,
            ingest_queue_ms,
            max_connections,
            roles,
            db_pool_size,
            admin_db_pool_size,
            admin_statement_timeout_ms,
            admin_reads_per_tenant,
            dispatch_concurrency,
            dispatch_lease_seconds,
            disable_failing_after_hours,
            shutdown_grace_seconds,
            log_format,
            tls_cert,
            tls_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_takes_both_files_or_neither() {
        let only_cert = SettingsArgs { tls_cert: Some("c.pem".into()), ..SettingsArgs::default() };
        let e = only_cert.resolve().unwrap_err().to_string();
        assert!(e.contains("RELAY_TLS_CERT and RELAY_TLS_KEY"), "{e}");
        let both = SettingsArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..SettingsArgs::default()
        };
        assert_eq!(both.resolve().unwrap().tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(SettingsArgs::default().resolve().unwrap().tls, None);
    }

    #[test]
    fn the_admin_read_budget_follows_the_main_pool_unless_set() {
        let s = SettingsArgs { db_pool_size: Some(40), ..SettingsArgs::default() }.resolve().unwrap();
        assert_eq!((s.admin_db_pool_size, s.admin_reads_per_tenant), (20, 2));
        assert_eq!(s.admin_statement_timeout, Duration::from_secs(5));
        let small = SettingsArgs {
            db_pool_size: Some(4),
            admin_statement_timeout_ms: Some(250),
            ..SettingsArgs::default()
        };
        let s = small.resolve().unwrap();
        assert_eq!((s.admin_db_pool_size, s.admin_statement_timeout), (2, Duration::from_millis(250)));
    }

    #[test]
    fn roles_parse() {
        assert_eq!(Roles::parse("ingress,admin,dispatcher").unwrap(), Roles::ALL);
        let d = Roles::parse("dispatcher").unwrap();
        assert!(d.dispatcher && !d.ingress && !d.admin);
        assert!(Roles::parse("web").is_err());
        assert!(Roles::parse("").is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("relay-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("relay.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nmax_body_bytes = 10\nroles = \"admin\"\n")
            .unwrap();
        let args = SettingsArgs { max_body_bytes: Some(20), config: Some(path), ..SettingsArgs::default() };
        let s = args.resolve().unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.max_body_bytes, 20);
        assert!(s.roles.admin && !s.roles.ingress);
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        std::fs::write(dir.join("bad.toml"), "nonsense_key = 1\n").unwrap();
        let bad = SettingsArgs { config: Some(dir.join("bad.toml")), ..SettingsArgs::default() };
        assert!(bad.resolve().is_err());
    }
}
