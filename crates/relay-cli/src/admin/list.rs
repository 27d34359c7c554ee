//! Lists: the `--limit`, `--cursor` and `--all` every list command takes, and the one pagination
//! loop (follow `next_cursor` until it is null). A single page prints as the API answered it
//! with `--json`; `--all` prints one JSON array of every item.

use anyhow::{Context, bail};
use serde_json::Value;

use super::Ctx;
use super::request::Query;
use crate::output::{self, Column};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Items per page (the relay's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Start at this page: the `next_cursor` of the page before.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Fetch every page, following `next_cursor` to the end (`--limit` sets the page size).
    #[arg(long)]
    pub all: bool,
}

impl ListArgs {
    /// Lists `path` with `query` (the list's filters) and prints the items as `columns`.
    pub(crate) async fn print(
        &self,
        ctx: &Ctx,
        path: &str,
        query: Query,
        columns: &[Column],
    ) -> anyhow::Result<()> {
        let query = query.opt("limit", self.limit);
        if self.all {
            let all = Value::Array(fetch_all(ctx, path, query).await?);
            return ctx.print(&all, || output::list(columns, all.as_array().map_or(&[], Vec::as_slice)));
        }
        let page = ctx.get(&query.opt("cursor", self.cursor.as_deref()).to_path(path)).await?;
        let rows = items(&page)?;
        ctx.print(&page, || output::list(columns, rows))?;
        if let (false, Some(next)) = (ctx.json, page["next_cursor"].as_str()) {
            eprintln!("More: add --cursor {next}, or --all for every page.");
        }
        Ok(())
    }
}

/// Every item of the list, page after page.
async fn fetch_all(ctx: &Ctx, path: &str, query: Query) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx.get(&query.clone().opt("cursor", cursor.as_deref()).to_path(path)).await?;
        all.extend_from_slice(items(&page)?);
        match page["next_cursor"].as_str() {
            None => return Ok(all),
            Some(next) if cursor.as_deref() == Some(next) => {
                bail!("the relay answered the same cursor twice")
            }
            Some(next) => cursor = Some(next.to_owned()),
        }
    }
}

/// Checks that `page` is a page of the API (`{"data": […], …}`).
fn items(page: &Value) -> anyhow::Result<&[Value]> {
    page["data"].as_array().map(Vec::as_slice).context("the relay's answer is not a list page (no `data`)")
}
