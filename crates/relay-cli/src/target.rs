//! Which relay a command talks to and with which token: `--url`/`--token` (or `WAP_RELAY_URL`/
//! `WAP_RELAY_TOKEN`), else the profile saved by `wap-relay login` in the user's config
//! directory (`$WAP_RELAY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/wap-relay`, else
//! `~/.config/wap-relay`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use url::Url;

/// The relay's URL when neither a flag, the environment nor a profile gives one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The relay's base URL (default: the saved profile's, else http://127.0.0.1:8080).
    #[arg(long, env = "WAP_RELAY_URL", global = true)]
    pub url: Option<String>,
    /// An admin API token (default: the saved profile's).
    #[arg(long, env = "WAP_RELAY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// A relay and the token to use with it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URL, ending in `/`.
    pub url: Url,
    pub token: String,
}

/// What `wap-relay login` saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub token: String,
}

/// The directory of the CLI's saved state (profile, `listen`'s signing secret).
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WAP_RELAY_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("wap-relay"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("no config directory: set WAP_RELAY_CONFIG_DIR, XDG_CONFIG_HOME or HOME")?;
    Ok(PathBuf::from(home).join(".config").join("wap-relay"))
}

/// Where `wap-relay login` saves the profile.
pub fn profile_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("profile.toml"))
}

/// The saved profile, if there is one.
pub fn load_profile() -> anyhow::Result<Option<Profile>> {
    let path = profile_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Saves `profile` (readable by the user only, where the platform allows); returns its path.
pub fn save_profile(profile: &Profile) -> anyhow::Result<PathBuf> {
    let path = profile_path()?;
    write_private(&path, &toml::to_string(profile)?)?;
    Ok(path)
}

/// Writes `text` to `path` (creating its directory), readable by the user only on Unix.
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Parses a relay base URL (http or https, no query), normalised to end in `/`.
pub fn parse_base_url(text: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(text.trim()).with_context(|| format!("`{text}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("`{text}` is not an http(s) URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("`{text}`: the relay's URL takes no query or fragment");
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl TargetArgs {
    /// The relay and token: flags and environment first, then the saved profile.
    pub fn resolve(&self) -> anyhow::Result<Target> {
        let profile = load_profile()?;
        let url = self
            .url
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = self.token.clone().or_else(|| profile.map(|p| p.token)).filter(|t| !t.trim().is_empty());
        let Some(token) = token else {
            bail!(
                "no token: pass --token, set WAP_RELAY_TOKEN, or run `wap-relay login --url URL --token TOKEN`"
            );
        };
        Ok(Target { url: parse_base_url(&url)?, token: token.trim().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        assert_eq!(parse_base_url("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            parse_base_url("https://relay.example/base").unwrap().as_str(),
            "https://relay.example/base/"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("relay.example").is_err());
        assert!(parse_base_url("http://x/?a=1").is_err());
    }
}
