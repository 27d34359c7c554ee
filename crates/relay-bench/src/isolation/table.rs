//! The isolation table: per scenario, the victim's ingest p99 and end-to-end p99 alone and
//! beside the aggressor with their ratio, its 429 + 503 answers, and the aggressor's own
//! figures. With several runs each cell is the median and range (min–max) over the runs; a
//! ratio is taken within a run (beside / that run's alone), then summarised.

use serde_json::{Value, json};

use super::{Outcome, Round, Scenario};

/// Median, min and max.
fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn cell(xs: Vec<f64>, digits: usize) -> String {
    let n = xs.len();
    let (m, lo, hi) = spread(xs);
    if n > 1 { format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]") } else { format!("{m:.digits$}") }
}

fn summary(xs: Vec<f64>) -> Value {
    let (m, lo, hi) = spread(xs);
    json!({"median": m, "min": lo, "max": hi})
}

/// (alone, beside) pairs of one scenario, one per run.
fn pairs(rounds: &[Round], s: Scenario) -> Vec<(&Outcome, &Outcome)> {
    rounds
        .iter()
        .flat_map(|r| r.beside.iter().filter(move |o| o.scenario == Some(s)).map(move |o| (&r.alone, o)))
        .collect()
}

/// Prints the table and returns it as JSON.
pub fn print(rounds: &[Round], scenarios: &[Scenario]) -> Value {
    println!(
        "\nscenario | victim ingest p99 ms alone → beside (ratio) | victim e2e p99 ms alone → beside (ratio) | victim 429+503 | aggressor"
    );
    println!("---|---|---|---|---");
    let alone: Vec<&Outcome> = rounds.iter().map(|r| &r.alone).collect();
    let col = |os: &[&Outcome], f: fn(&Outcome) -> f64| os.iter().map(|o| f(o)).collect::<Vec<f64>>();
    let ingest = |o: &Outcome| o.victim.ingest_p99_ms;
    let e2e = |o: &Outcome| o.victim.end_to_end_p99_ms;
    let refused = |o: &Outcome| (o.victim.refused_429 + o.victim.unavailable_503) as f64;
    println!(
        "alone ({}/s) | {} | {} | {} | none",
        rounds.first().map_or(0, |r| r.alone.victim.rate),
        cell(col(&alone, ingest), 1),
        cell(col(&alone, e2e), 1),
        cell(col(&alone, refused), 0)
    );
    let mut rows = Vec::new();
    for &s in scenarios {
        let p = pairs(rounds, s);
        let beside: Vec<&Outcome> = p.iter().map(|(_, b)| *b).collect();
        let ratio = |f: fn(&Outcome) -> f64| p.iter().map(|(a, b)| f(b) / f(a)).collect::<Vec<f64>>();
        let compared = |f: fn(&Outcome) -> f64| {
            if s == Scenario::Sigkill {
                format!(
                    "{} (at {}/s, no alone run)",
                    cell(col(&beside, f), 1),
                    beside.first().map_or(0, |o| o.victim.rate)
                )
            } else {
                format!(
                    "{} → {} ({}×)",
                    cell(p.iter().map(|(a, _)| f(a)).collect(), 1),
                    cell(col(&beside, f), 1),
                    cell(ratio(f), 2)
                )
            }
        };
        let aggressor = aggressor_cell(&beside);
        println!(
            "{} | {} | {} | {} | {}",
            s.label(),
            compared(ingest),
            compared(e2e),
            cell(col(&beside, refused), 0),
            aggressor
        );
        rows.push(json!({
            "scenario": s.label(),
            "ingest_p99_ratio": summary(ratio(ingest)),
            "end_to_end_p99_ratio": summary(ratio(e2e)),
            "ingest_p99_ms": summary(col(&beside, ingest)),
            "end_to_end_p99_ms": summary(col(&beside, e2e)),
            "victim_429_503": summary(col(&beside, refused)),
            "victim_lost": summary(beside.iter().map(|o| o.victim.lost as f64).collect()),
            "aggressor": aggressor,
        }));
    }
    json!({"alone": {"ingest_p99_ms": summary(col(&alone, ingest)), "end_to_end_p99_ms": summary(col(&alone, e2e))}, "scenarios": rows})
}

/// Every figure the aggressor reported in some run, as `name median [range]`.
fn aggressor_cell(runs: &[&Outcome]) -> String {
    let mut names: Vec<&String> = runs.iter().flat_map(|o| o.aggressor.keys()).collect();
    names.sort();
    names.dedup();
    let figure = |name: &String| {
        let xs = runs.iter().map(|o| o.aggressor.get(name).copied().unwrap_or(0.0)).collect();
        format!(
            "{name} {}",
            cell(
                xs,
                if name.ends_with(" s") || name.ends_with(" ms") || name.ends_with(" MB") { 1 } else { 0 }
            )
        )
    };
    names.into_iter().map(figure).collect::<Vec<_>>().join(", ")
}
