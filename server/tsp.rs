//! Benchmark of the route solver on TSPLIB instances (docs/performance.md, "Route solver").
//!
//! Reads `EUC_2D` `.tsp` files (the `NODE_COORD_SECTION`), builds the rounded Euclidean matrix,
//! solves the closed tour from node 1 with the given time and iteration budget and seed, and
//! prints per instance: length, gap to the proven optimum of `optimal.json` (when listed),
//! construction length, iterations and time. `--json` prints one JSON object per line instead,
//! for `ops/bench/tsp.sh`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use akig::domain::route::{self, Budget, Options, Shape};

#[derive(Parser)]
#[command(about = "Route solver benchmark on TSPLIB EUC_2D instances")]
struct Args {
    /// Folder of the `.tsp` files and `optimal.json`.
    #[arg(long, default_value = "../shared/data/tsplib")]
    data: PathBuf,
    /// Instances to run (file names without `.tsp`); all `.tsp` files of the folder by default.
    instances: Vec<String>,
    /// Time budget per instance, in milliseconds (construction included).
    #[arg(long, default_value_t = 200)]
    time_ms: u64,
    /// Iteration budget per instance.
    #[arg(long, default_value_t = u64::MAX)]
    iterations: u64,
    /// End the search after this many rounds per node without a shorter route (0: never).
    #[arg(long, default_value_t = 0)]
    stall_per_node: u64,
    /// Seed of the search.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only instances with at least this many nodes.
    #[arg(long, default_value_t = 0)]
    min_nodes: usize,
    /// Only instances with at most this many nodes.
    #[arg(long, default_value_t = usize::MAX)]
    max_nodes: usize,
    /// Subgradient rounds of the Held–Karp lower bound, computed after the search (0: none);
    /// its time is not counted.
    #[arg(long, default_value_t = 0)]
    bound_rounds: u32,
    /// Longest segment of a kick (`Options::kick_segment`; default: the solver's).
    #[arg(long)]
    kick: Option<usize>,
    /// Candidate neighbours per node (`Options::neighbours`; default: the solver's).
    #[arg(long)]
    neighbours: Option<usize>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let optima: serde_json::Map<String, serde_json::Value> =
        match std::fs::read_to_string(args.data.join("optimal.json")) {
            Ok(text) => serde_json::from_str(&text).context("optimal.json")?,
            Err(_) => serde_json::Map::new(),
        };
    let mut names = args.instances.clone();
    if names.is_empty() {
        for entry in std::fs::read_dir(&args.data).with_context(|| format!("{:?}", args.data))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tsp")
                && let Some(stem) = path.file_stem()
            {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    let mut instances = Vec::new();
    for name in names {
        let points = read_tsp(&args.data.join(format!("{name}.tsp")))?;
        if (args.min_nodes..=args.max_nodes).contains(&points.len()) {
            instances.push((name, points));
        }
    }
    instances.sort_by(|a, b| (a.1.len(), &a.0).cmp(&(b.1.len(), &b.0)));

    let defaults = Options::default();
    let options = Options {
        budget: Budget {
            iterations: args.iterations,
            time: Some(Duration::from_millis(args.time_ms)),
            stall: None,
        },
        seed: args.seed,
        kick_segment: args.kick.unwrap_or(defaults.kick_segment),
        neighbours: args.neighbours.unwrap_or(defaults.neighbours),
    };
    if !args.json {
        println!(
            "{:<10} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8}",
            "instance", "n", "optimum", "length", "gap %", "greedy", "iters", "ms"
        );
    }
    let mut gaps = Vec::new();
    for (name, points) in &instances {
        let matrix = route::euc_2d(points);
        let cancel = AtomicBool::new(false);
        let mut options = options;
        options.budget.stall =
            (args.stall_per_node > 0).then(|| args.stall_per_node * points.len() as u64);
        let solved = route::solve(&matrix, Shape::Closed, &options, &cancel, |_| {})?;
        check(&matrix, &solved.order, solved.cost).with_context(|| name.clone())?;
        let optimum = optima.get(name).and_then(|v| v.as_i64());
        let gap = optimum.map(|o| 100.0 * (solved.cost as f64 / o as f64 - 1.0));
        gaps.extend(gap);
        let ms = solved.elapsed.as_secs_f64() * 1000.0;
        let bound = if args.bound_rounds > 0 {
            let started = std::time::Instant::now();
            let bound = route::lower_bound(&matrix, Shape::Closed, solved.cost, args.bound_rounds)?;
            eprintln!(
                "{name}: lower bound {bound} ({:.2} % below the optimum), {:.0} ms",
                optimum.map_or(f64::NAN, |o| 100.0 * (1.0 - bound as f64 / o as f64)),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Some(bound)
        } else {
            None
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "instance": name, "n": points.len(), "optimum": optimum,
                    "length": solved.cost, "gap": gap, "ms": ms,
                    "construction": solved.construction_cost, "iterations": solved.iterations, "bound": bound,
                })
            );
        } else {
            println!(
                "{:<10} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8.1}",
                name,
                points.len(),
                optimum.map_or("-".into(), |o| o.to_string()),
                solved.cost,
                gap.map_or("-".into(), |g| format!("{g:.2}")),
                solved.construction_cost,
                solved.iterations,
                ms
            );
        }
    }
    if !args.json && !gaps.is_empty() {
        println!(
            "mean gap {:.2} % over {} instances",
            gaps.iter().sum::<f64>() / gaps.len() as f64,
            gaps.len()
        );
    }
    Ok(())
}

/// Checks that `order` visits every node once and that its closed length is `cost`.
fn check(matrix: &route::DenseMatrix, order: &[usize], cost: i64) -> anyhow::Result<()> {
    use route::DistanceMatrix;
    let mut seen = vec![false; matrix.len()];
    for &node in order {
        if std::mem::replace(&mut seen[node], true) {
            bail!("node {node} visited twice");
        }
    }
    if order.len() != matrix.len() || order.first() != Some(&0) {
        bail!("the tour does not visit every node from node 0");
    }
    let length: i64 = (0..order.len())
        .map(|i| matrix.dist(order[i], order[(i + 1) % order.len()]))
        .sum();
    if length != cost {
        bail!("reported length {cost}, actual {length}");
    }
    Ok(())
}

/// The node coordinates of a TSPLIB `EUC_2D` file, in file order.
fn read_tsp(path: &Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{path:?}"))?;
    let mut lines = text.lines();
    for line in lines.by_ref() {
        let line = line.trim();
        if let Some((key, value)) = line.split_once(':')
            && key.trim() == "EDGE_WEIGHT_TYPE"
            && value.trim() != "EUC_2D"
        {
            bail!("{path:?}: only EUC_2D is supported, not {}", value.trim());
        }
        if line.starts_with("NODE_COORD_SECTION") {
            break;
        }
    }
    let mut points = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line == "EOF" {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, x, y] = fields[..] else {
            bail!("{path:?}: bad coordinate line {line:?}");
        };
        points.push((x.parse()?, y.parse()?));
    }
    if points.is_empty() {
        bail!("{path:?}: no NODE_COORD_SECTION");
    }
    Ok(points)
}
