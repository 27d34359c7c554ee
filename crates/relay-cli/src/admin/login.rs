//! `wap-relay login` and `wap-relay logout`: check a relay URL and token against the relay, then
//! save them as the profile every later command falls back to ([`crate::target`]); `logout`
//! removes it. A token is saved only once the relay has accepted it.

use anyhow::{Context, bail};
use reqwest::Method;

use super::request::Query;
use crate::api::Api;
use crate::target::{self, Profile, Target, TargetArgs};

pub(super) async fn login(args: &TargetArgs) -> anyhow::Result<()> {
    let token = args.token.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (Some(url), Some(token)) = (args.url.as_deref(), token) else {
        bail!("login needs the relay's URL and a token: wap-relay login --url URL --token TOKEN");
    };
    let target = Target { url: target::parse_base_url(url)?, token: token.to_owned() };
    let api = Api::new(target.clone())?;
    let who = whoami(&api).await.with_context(|| format!("checking the token with {}", target.url))?;
    let path = target::save_profile(&Profile { url: target.url.to_string(), token: target.token })?;
    println!("Logged in to {} as {who}. Profile saved to {}.", target.url, path.display());
    Ok(())
}

/// Who the token is: a tenant (GET /v1/tenant) or, when that route is not for it, an operator
/// (GET /v1/tenants).
async fn whoami(api: &Api) -> anyhow::Result<String> {
    match api.call(Method::GET, "/v1/tenant", None).await {
        Ok(tenant) => {
            let field = |key: &str| tenant[key].as_str().unwrap_or("?").to_owned();
            Ok(format!("tenant {} ({})", field("id"), field("name")))
        }
        Err(e) if e.status == 403 || e.status == 404 => {
            api.call(Method::GET, &Query::new().opt("limit", Some(1)).to_path("/v1/tenants"), None).await?;
            Ok("an operator".to_owned())
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn logout() -> anyhow::Result<()> {
    let path = target::profile_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => println!("Logged out: removed {}.", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("No saved profile at {}.", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(())
}
