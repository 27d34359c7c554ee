//! Readings of what a run cost, from the operating system and Postgres itself: CPU time of the
//! relay process and of every Postgres process (from /proc, children that exited included through
//! the postmaster's reaped-children counters), the relay's resident memory, and the commits of the
//! run's database (pg_stat_database).

use std::fs;

/// Clock ticks per second of /proc's CPU counters.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (ppid, own ticks, reaped children's ticks) of a process.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((f.get(1)?.parse().ok()?, n(11) + n(12), n(13) + n(14)))
}

fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_owned())
}

/// CPU milliseconds used so far by `pid` itself.
pub fn process_cpu_ms(pid: u32) -> f64 {
    stat(pid).map_or(0.0, |(_, own, _)| own as f64 * 1000.0 / ticks_per_second())
}

/// CPU milliseconds used so far by all of Postgres: every live `postgres` process, plus what the
/// postmaster has reaped from children that exited.
pub fn postgres_cpu_ms() -> f64 {
    let Ok(dir) = fs::read_dir("/proc") else { return 0.0 };
    let pids: Vec<u32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    let mut ticks = 0u64;
    for pid in pids {
        if comm(pid).as_deref() != Some("postgres") {
            continue;
        }
        let Some((ppid, own, reaped)) = stat(pid) else { continue };
        ticks += own;
        if comm(ppid).as_deref() != Some("postgres") {
            ticks += reaped;
        }
    }
    ticks as f64 * 1000.0 / ticks_per_second()
}

/// CPU milliseconds used so far by every process named `name` (e.g. `redis-server`).
pub fn named_cpu_ms(name: &str) -> f64 {
    let Ok(dir) = fs::read_dir("/proc") else { return 0.0 };
    let ticks: u64 = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| comm(*pid).as_deref() == Some(name))
        .filter_map(|pid| stat(pid).map(|(_, own, _)| own))
        .sum();
    ticks as f64 * 1000.0 / ticks_per_second()
}

/// Resident memory of `pid`, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Transactions committed in the run's database so far.
pub async fn commits(pool: &sqlx::PgPool, database: &str) -> f64 {
    sqlx::query_scalar::<_, i64>("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(pool)
        .await
        .map_or(0.0, |n| n as f64)
}

/// Resets pg_stat_statements (when the extension is installed in the maintenance database).
pub async fn reset_statements(pool: &sqlx::PgPool) -> bool {
    sqlx::query("SELECT pg_stat_statements_reset()").execute(pool).await.is_ok()
}

/// The statements of the run's database that took the most execution time.
pub async fn top_statements(pool: &sqlx::PgPool, database: &str, n: i64) -> Vec<String> {
    let rows: Vec<(String, i64, f64, i64)> = sqlx::query_as(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 110), calls, total_exec_time, rows \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 \
         ORDER BY total_exec_time DESC LIMIT $2",
    )
    .bind(database)
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let total: f64 = rows.iter().map(|r| r.2).sum::<f64>().max(1e-9);
    rows.into_iter()
        .map(|(q, calls, ms, rows)| {
            format!(
                "{:5.1}% {calls:>8} calls {:>7.3} ms/call {:>6.1} rows/call  {q}",
                100.0 * ms / total,
                ms / calls.max(1) as f64,
                rows as f64 / calls.max(1) as f64
            )
        })
        .collect()
}

/// Updates, HOT updates and dead rows of the run's tables (how much index work updates cost).
pub async fn table_stats(db: &str) -> Vec<String> {
    let Ok(pool) = sqlx::PgPool::connect(db).await else { return Vec::new() };
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables \
         WHERE relname IN ('events', 'deliveries', 'delivery_queue', 'attempts') ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    rows.into_iter()
        .map(|(t, ins, upd, hot, dead)| {
            format!("{t:<15} inserts {ins:>8}  updates {upd:>8} ({hot} HOT)  dead rows {dead:>8}")
        })
        .collect()
}
