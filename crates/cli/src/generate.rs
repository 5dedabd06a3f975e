//! `braid sim --generate N`: runs generated adversarial scenarios (`braid_sim::generated`) on
//! several threads, prints a summary of what failed and how to replay it, and writes each
//! failing seed's scenario and report to `--out`.

use std::collections::BTreeMap;
use std::path::Path;

use braid_sim::{Disturbance, GenerateOptions, Mode, SwarmRun};

/// What `--generate` is told on the command line.
pub struct GenerateArgs<'a> {
    pub count: u64,
    pub first_seed: u64,
    pub jobs: usize,
    pub faults: Option<&'a [String]>,
    pub modes: Option<&'a [String]>,
    pub max_chains: Option<u64>,
    pub keep_going: bool,
    pub out: Option<&'a Path>,
}

fn options(args: &GenerateArgs) -> Result<GenerateOptions, String> {
    let mut o = GenerateOptions::default();
    if let Some(names) = args.faults {
        o.disturbances = names
            .iter()
            .filter(|n| !n.is_empty() && n.as_str() != "none")
            .map(|n| {
                Disturbance::parse(n).ok_or_else(|| {
                    let all: Vec<&str> = Disturbance::ALL.iter().map(|d| d.name()).collect();
                    format!("unknown fault kind {n:?}; known: none, {}", all.join(", "))
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(names) = args.modes {
        o.modes = names
            .iter()
            .map(|n| {
                toml::Value::String(n.clone())
                    .try_into::<Mode>()
                    .map_err(|_| {
                        format!(
                            "unknown mode {n:?}; known: precommit, commit, proof, qc, optimistic, aggregated"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(m) = args.max_chains {
        if !(2..=8).contains(&m) {
            return Err(format!("--max-chains must be between 2 and 8, got {m}"));
        }
        o.max_chains = m;
    }
    Ok(o)
}

/// Runs the generated seeds; `Err` when any failed.
pub fn run(args: GenerateArgs) -> Result<(), String> {
    let options = options(&args)?;
    let start = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(args.count);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} generated seeds  {elapsed_precise}  {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let failures = std::sync::atomic::AtomicU64::new(0);
    let runs = braid_sim::generate(
        &options,
        args.first_seed,
        args.count,
        args.jobs,
        !args.keep_going,
        &|r: &SwarmRun| {
            // without a terminal the bar is hidden: print failures and a line every 50 seeds
            let plain = bar.is_hidden();
            if !r.passed() {
                let n = failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                bar.set_message(format!("{n} failing"));
                let line = format!("seed {}: {}", r.seed, summary(r));
                if plain {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            bar.inc(1);
            if plain && bar.position().is_multiple_of(50) {
                eprintln!(
                    "{}/{} generated seeds, {:.0} s",
                    bar.position(),
                    args.count,
                    start.elapsed().as_secs_f64()
                );
            }
        },
    );
    bar.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let (mut events, mut virtual_ms, mut messages) = (0u64, 0u64, 0u64);
    let mut by_invariant: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &runs {
        match &r.result {
            Ok(report) => {
                events += report.events_processed;
                virtual_ms += report.virtual_duration_ms;
                messages += report.modes.values().map(|m| m.sent).sum::<u64>();
                for v in &report.invariant_violations {
                    by_invariant
                        .entry(v.invariant.clone())
                        .or_default()
                        .push(r.seed);
                }
            }
            Err(_) => by_invariant
                .entry("scenario_error".into())
                .or_default()
                .push(r.seed),
        }
    }
    let failed: Vec<&SwarmRun> = runs.iter().filter(|r| !r.passed()).collect();
    println!(
        "generated: {} runs in {wall:.1} s ({} jobs), {:.0} s virtual, {events} events, {messages} messages; {} failed",
        runs.len(),
        args.jobs,
        virtual_ms as f64 / 1000.0,
        failed.len()
    );
    for (invariant, seeds) in &by_invariant {
        let shown: Vec<String> = seeds.iter().take(12).map(u64::to_string).collect();
        println!(
            "  {invariant:<28} {:>4} seeds: {}{}",
            seeds.len(),
            shown.join(" "),
            if seeds.len() > 12 { " …" } else { "" }
        );
    }
    // a single seed (a replay) is written whatever its outcome, with its report.html
    let written: Vec<&SwarmRun> = if runs.len() == 1 {
        runs.iter().collect()
    } else {
        failed.clone()
    };
    if let (Some(dir), false) = (args.out, written.is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for r in &written {
            let scenario = braid_sim::generated(r.seed, &options);
            let text = toml::to_string(&scenario).map_err(|e| e.to_string())?;
            let path = dir.join(format!("generated-{}.toml", r.seed));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Ok(report) = &r.result {
                let path = dir.join(format!("generated-{}.json", r.seed));
                std::fs::write(&path, report.to_json())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if runs.len() == 1 {
                    let path = dir.join(format!("generated-{}.html", r.seed));
                    std::fs::write(&path, braid_sim::render_html(report))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
        println!("scenarios and reports written to {}", dir.display());
    }
    if failed.is_empty() {
        println!("all invariants held (safety and liveness)");
        return Ok(());
    }
    if let Some(first) = failed.first() {
        println!(
            "replay: braid sim --generate 1 --seed {}{}",
            first.seed,
            replay_flags(&args)
        );
    }
    Err(format!("{} generated seed(s) failed", failed.len()))
}

fn replay_flags(args: &GenerateArgs) -> String {
    let mut s = String::new();
    if let Some(f) = args.faults {
        s += &format!(" --faults {}", f.join(","));
    }
    if let Some(m) = args.modes {
        s += &format!(" --modes {}", m.join(","));
    }
    if let Some(c) = args.max_chains {
        s += &format!(" --max-chains {c}");
    }
    s
}

fn summary(r: &SwarmRun) -> String {
    match &r.result {
        Ok(report) => report
            .invariant_violations
            .iter()
            .map(|v| format!("{}: {}", v.invariant, v.detail))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("scenario error: {e}"),
    }
}
