//! Runs a scenario file and prints its report: `cargo run -p braid-sim --example run_scenario -- scenarios/basic.toml [seed]`.

fn main() -> Result<(), braid_sim::SimError> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "scenarios/basic.toml".into());
    let scenario = braid_sim::Scenario::load(&path)?;
    let seed = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(scenario.seed);
    let report = braid_sim::run(&scenario, seed)?;
    println!("{}", report.to_json());
    Ok(())
}
