//! The scheduler quality harness (feature `harness`): balance, weight accuracy, disruption and
//! table build time of any scheduler — a built-in or your own, registered in a
//! [`Registry`] — measured the way lbkit's `sched-quality` tool measures its own (the figures
//! in `BENCHMARKS.md` come from this module).
//!
//! * **balance**: max / mean of flows per destination, for each N of [`Options::ns`] (default
//!   10, 100, 1000), equal weights;
//! * **weight accuracy** (N = 10 only, weights 1..=10): the worst relative error of a
//!   destination's share of the flows against weight / Σweights;
//! * **disruption**: % of flows that change destination when one destination (the middle one,
//!   N / 2) is removed, and when 1 % of them are removed (every 100th, at least one), beside the
//!   minimum possible (the removed destinations' own share);
//! * **build time** of the scheduler's table, median of 5 (see [`Options::build_time`]).
//!
//! The flows ([`flows`]) are pseudo-random and fixed (half IPv4, half IPv6 sources), 1M by
//! default. Every flow is a new connection that is then established and stays open (each pick
//! is bound to its destination as an active connection), so connection-counting schedulers
//! (lc, wlc, sed, nq, twos…) see the load; "disruption" for them compares the assignment of
//! the same flows, in the same order, by a fresh service before and after the removal.
//!
//! ```
//! use std::sync::Arc;
//! use lb_sched::harness::{self, Options};
//! use lb_sched::registry::Registry;
//!
//! let opts = Options { flows: 20_000, ns: vec![10], ..Options::default() };
//! let results = harness::measure_registry(Registry::builtin(), Some(&["maglev", "rr"]), &opts)?;
//! assert!(results[0].points[0].max_over_mean < 1.1, "maglev balances 10 destinations");
//! println!("{}", harness::table(&results));
//! # Ok::<(), lb_sched::SchedError>(())
//! ```
//!
//! A scheduler that is not in a registry (another crate's, say) is measured through the
//! [`Subject`] trait and [`measure_subjects`], which is how lbkit compares its peers.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::registry::{Factory, Registry};
use crate::{DestConfig, Destination, Flow, Protocol, SchedConfig, SchedError, Service};

#[cfg(feature = "harness-criterion")]
mod bench;
#[cfg(feature = "harness-criterion")]
pub use bench::{bench_flows, bench_pick, bench_rebuild, bench_service};

/// What to measure and how. Set the fields you need and take the rest from
/// [`Options::default`]: `Options { flows: 20_000, ..Options::default() }`.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many flows are assigned in each measurement (default 1 000 000; fewer run faster and
    /// measure balance less precisely).
    pub flows: usize,
    /// The destination counts N to measure at (default 10, 100, 1000), each at least 1 (the
    /// harness panics on 0). The weight error is measured at N = 10, when 10 is in the list.
    pub ns: Vec<usize>,
    /// The configuration every scheduler is built with (default: [`SchedConfig::default`]).
    pub config: SchedConfig,
    /// When to time the scheduler's construction (default [`BuildTime::Tables`]).
    pub build_time: BuildTime,
    /// Write one line per scheduler and N to stderr as it is measured (default off).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flows: 1_000_000,
            ns: vec![10, 100, 1000],
            config: SchedConfig::default(),
            build_time: BuildTime::Tables,
            progress: false,
        }
    }
}

impl Options {
    /// The defaults with `flows` flows.
    pub fn with_flows(flows: usize) -> Self {
        Options { flows, ..Options::default() }
    }
}

/// When the harness times a scheduler's construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildTime {
    /// Only for the schedulers with a lookup table whose size is known ([`table_size`]: the
    /// built-ins `sh`, `dh`, `mh`, `maglev`); the others' construction is trivial.
    Tables,
    /// For every scheduler.
    Always,
    /// Never.
    Never,
}

/// One scheduler's quality.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// The scheduler's name (as in the registry, or [`Subject::name`]).
    pub scheduler: String,
    /// Its lookup table size, for the built-ins with one ([`table_size`]), else `None`.
    pub table_size: Option<u32>,
    /// How many flows each measurement assigned.
    pub flows: usize,
    /// The measurements, one per N of [`Options::ns`], in that order.
    pub points: Vec<Point>,
}

/// The measurements at one destination count N. Percentages are of all the flows (0..=100).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// N, the number of destinations (all of weight 1, except for the weight error).
    pub backends: usize,
    /// Balance: the most flows any destination got, over the mean (flows / N). 1 is perfect;
    /// N means one destination got everything.
    pub max_over_mean: f64,
    /// Weight accuracy, measured at N = 10 only (weights 1..=10): the largest relative error,
    /// in %, of a destination's share against weight / Σweights.
    pub weight_error_pct: Option<f64>,
    /// % of flows whose destination changed when destination N / 2 was removed.
    pub disruption_remove_one_pct: f64,
    /// The minimum for that removal: % of flows the removed destination had.
    pub minimal_disruption_pct: f64,
    /// % of flows whose destination changed when 1 % of the destinations (at least one) were
    /// removed: the middle one of each hundred (index 50, 150, …; the last one when N < 100).
    pub disruption_remove_1pct_pct: f64,
    /// The minimum for that removal: % of flows the removed destinations had.
    pub minimal_disruption_1pct_pct: f64,
    /// Median construction time of the scheduler for N destinations of weight 1, µs, when
    /// timed ([`Options::build_time`]).
    pub build_us: Option<f64>,
}

/// Something the harness can measure: maps flows to destination indices.
///
/// Destinations are numbered 0..weights.len(); the harness gives the full set with their
/// weights and the indices removed from it. [`FactorySubject`] implements it for any
/// registered scheduler; implement it yourself to measure a scheduler that is not an lb-sched
/// [`crate::Scheduler`].
pub trait Subject {
    /// The name in the results.
    fn name(&self) -> String;
    /// The lookup table size, if the scheduler has one (reported, and decides
    /// [`BuildTime::Tables`]).
    fn table_size(&self) -> Option<u32>;
    /// The destination index of every flow of `flows`, in order, picked among destinations
    /// `0..weights.len()` (weight `weights[i]`) minus those in `removed`; `u32::MAX` for a flow
    /// that got no destination.
    fn assign(&self, flows: &[Flow], weights: &[u32], removed: &[usize]) -> Result<Vec<u32>, SchedError>;
    /// The time to build the scheduler for destinations of `weights`, µs (median of a few), or
    /// `None` if that is not measured.
    fn build_us(&self, weights: &[u32]) -> Result<Option<f64>, SchedError>;
}

/// A registered scheduler (its name and [`Factory`]) as a [`Subject`]: each assignment is a
/// fresh [`Service::from_factory`] with the destinations 10.0.0.i:80 added in index order, and
/// every pick bound to its destination as an established connection.
pub struct FactorySubject {
    name: String,
    factory: Factory,
    config: SchedConfig,
    table_size: Option<u32>,
    build_time: BuildTime,
}

impl std::fmt::Debug for FactorySubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorySubject").field("name", &self.name).field("table_size", &self.table_size).finish()
    }
}

impl FactorySubject {
    /// The scheduler `factory` under `name`, built with `opts.config`.
    pub fn new(name: &str, factory: &Factory, opts: &Options) -> Self {
        FactorySubject {
            name: name.to_string(),
            factory: Arc::clone(factory),
            config: opts.config.clone(),
            table_size: table_size(name, &opts.config),
            build_time: opts.build_time,
        }
    }

    fn service(&self, weights: &[u32], removed: &[usize]) -> Result<(Service, HashMap<IpAddr, u32>), SchedError> {
        let s = Service::from_factory(&self.name, &self.factory, self.config.clone())?;
        let mut ids = HashMap::new();
        for (i, &w) in weights.iter().enumerate() {
            if !removed.contains(&i) {
                s.add(DestConfig::new(addr(i), 80).weight(w))?;
                ids.insert(addr(i), i as u32);
            }
        }
        Ok((s, ids))
    }
}

impl Subject for FactorySubject {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn table_size(&self) -> Option<u32> {
        self.table_size
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Result<Vec<u32>, SchedError> {
        let (s, ids) = self.service(weights, removed)?;
        let mut r = s.reader();
        Ok(fl
            .iter()
            .map(|f| match r.pick(f) {
                Some(d) => {
                    // An established connection: counted active, as lc/wlc/sed/nq/twos see it.
                    d.bind_conn(false);
                    d.conn_moved(true);
                    ids.get(&d.addr()).copied().unwrap_or(u32::MAX)
                }
                None => u32::MAX,
            })
            .collect())
    }
    fn build_us(&self, weights: &[u32]) -> Result<Option<f64>, SchedError> {
        let timed = match self.build_time {
            BuildTime::Tables => self.table_size.is_some(),
            BuildTime::Always => true,
            BuildTime::Never => false,
        };
        if !timed {
            return Ok(None);
        }
        let (s, _) = self.service(weights, &[])?;
        let dests = s.destinations();
        median_us(|| {
            std::hint::black_box((self.factory)(&self.config, &dests)?);
            Ok(())
        })
        .map(Some)
    }
}

/// The lookup table size of the built-in `name` with `cfg` (`sh`, `dh`, `mh`, `maglev`), else
/// `None`.
pub fn table_size(name: &str, cfg: &SchedConfig) -> Option<u32> {
    match name {
        "sh" => Some(1 << cfg.sh_table_bits),
        "dh" => Some(1 << crate::dh::TAB_BITS),
        "mh" => Some(cfg.mh_table_size),
        "maglev" => Some(cfg.maglev_table_size),
        _ => None,
    }
}

/// Runs `f` 5 times and returns the median duration, µs.
pub fn median_us(mut f: impl FnMut() -> Result<(), SchedError>) -> Result<f64, SchedError> {
    let mut t = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[2])
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The harness's `n` flows: fixed pseudo-random 5-tuples (xorshift64), even ones TCP IPv4 to
/// port 80, odd ones TCP IPv6 to port 443. The same `n` always gives the same flows.
pub fn flows(n: usize) -> Vec<Flow> {
    let mut r = Rng(0x05ee_d0ff_10e5);
    (0..n)
        .map(|i| {
            let (a, b, c) = (r.next(), r.next(), r.next());
            if i % 2 == 0 {
                Flow::v4(Protocol::Tcp, Ipv4Addr::from(a as u32), (a >> 32) as u16, Ipv4Addr::from(b as u32), 80)
            } else {
                Flow::v6(
                    Protocol::Tcp,
                    Ipv6Addr::from((u128::from(a) << 64) | u128::from(b)),
                    (c >> 48) as u16,
                    Ipv6Addr::from((u128::from(c) << 64) | u128::from(a)),
                    443,
                )
            }
        })
        .collect()
}

/// The address of destination `i`: 10.0.0.0 + i (port 80).
pub fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))
}

/// `n` destinations 10.0.0.i:80 of weight 1, in a service's list order (newest, i = n - 1,
/// first), as a scheduler's constructor receives them.
pub fn destinations(n: usize) -> Vec<Arc<Destination>> {
    let s = Service::from_factory("harness", &(Arc::new(crate::rr::build) as Factory), SchedConfig::default())
        .expect("rr builds for no destination");
    for i in 0..n {
        s.add(DestConfig::new(addr(i), 80)).expect("distinct addresses");
    }
    s.destinations()
}

fn pct_changed(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 * 100.0 / a.len() as f64
}

/// Measures one subject at N destinations over the flows `fl`.
pub fn measure_point(s: &dyn Subject, fl: &[Flow], n: usize) -> Result<Point, SchedError> {
    let eq = vec![1u32; n];
    let base = s.assign(fl, &eq, &[])?;
    let mut counts = vec![0u64; n];
    for &d in &base {
        if (d as usize) < n {
            counts[d as usize] += 1;
        }
    }
    let mean = fl.len() as f64 / n as f64;
    let max_over_mean = counts.iter().copied().max().unwrap_or(0) as f64 / mean;
    // Remove one (the middle one), then 1 % (every 100th, at least one).
    let one = [n / 2];
    let after_one = s.assign(fl, &eq, &one)?;
    let own_one = base.iter().filter(|&&d| d as usize == one[0]).count() as f64 * 100.0 / fl.len() as f64;
    let many: Vec<usize> = (0..n).step_by(100).map(|i| i + 50.min(n - 1 - i)).collect();
    let after_many = s.assign(fl, &eq, &many)?;
    let own_many = base.iter().filter(|&&d| many.contains(&(d as usize))).count() as f64 * 100.0 / fl.len() as f64;
    let weight_error_pct = if n == 10 {
        let w: Vec<u32> = (1..=10).collect();
        let total: u32 = w.iter().sum();
        let got = s.assign(fl, &w, &[])?;
        let mut c = [0u64; 10];
        for &d in &got {
            if (d as usize) < 10 {
                c[d as usize] += 1;
            }
        }
        Some(
            (0..10)
                .map(|i| {
                    let want = f64::from(w[i]) / f64::from(total);
                    let share = c[i] as f64 / fl.len() as f64;
                    (share - want).abs() / want * 100.0
                })
                .fold(0.0, f64::max),
        )
    } else {
        None
    };
    Ok(Point {
        backends: n,
        max_over_mean,
        weight_error_pct,
        disruption_remove_one_pct: pct_changed(&base, &after_one),
        minimal_disruption_pct: own_one,
        disruption_remove_1pct_pct: pct_changed(&base, &after_many),
        minimal_disruption_1pct_pct: own_many,
        build_us: s.build_us(&eq)?,
    })
}

/// Measures every subject at every N of `opts.ns`, over the same [`flows`]`(opts.flows)`.
pub fn measure_subjects(subjects: &[&dyn Subject], opts: &Options) -> Result<Vec<Quality>, SchedError> {
    let fl = flows(opts.flows);
    subjects
        .iter()
        .map(|s| {
            let points = opts
                .ns
                .iter()
                .map(|&n| {
                    let t = Instant::now();
                    let p = measure_point(*s, &fl, n);
                    if opts.progress {
                        eprintln!("{} N={n}: {:.1} s", s.name(), t.elapsed().as_secs_f64());
                    }
                    p
                })
                .collect::<Result<_, _>>()?;
            Ok(Quality { scheduler: s.name(), table_size: s.table_size(), flows: opts.flows, points })
        })
        .collect()
}

/// Measures the scheduler `factory`, named `name`.
pub fn measure(name: &str, factory: &Factory, opts: &Options) -> Result<Quality, SchedError> {
    let s = FactorySubject::new(name, factory, opts);
    let mut q = measure_subjects(&[&s], opts)?;
    Ok(q.remove(0))
}

/// The registered schedulers `names` (all of the registry's, in its order, when `None`) as
/// [`Subject`]s; an unknown name is an error.
pub fn registry_subjects(
    registry: &Registry,
    names: Option<&[&str]>,
    opts: &Options,
) -> Result<Vec<FactorySubject>, SchedError> {
    let names: Vec<&str> = match names {
        Some(n) => n.to_vec(),
        None => registry.names().collect(),
    };
    names.into_iter().map(|n| Ok(FactorySubject::new(n, &registry.get(n)?, opts))).collect()
}

/// Measures the registered schedulers `names` (all of the registry's, in its order, when
/// `None`), over the same flows. An unknown name is an error, before anything is measured.
pub fn measure_registry(
    registry: &Registry,
    names: Option<&[&str]>,
    opts: &Options,
) -> Result<Vec<Quality>, SchedError> {
    let subjects = registry_subjects(registry, names, opts)?;
    let refs: Vec<&dyn Subject> = subjects.iter().map(|s| s as &dyn Subject).collect();
    measure_subjects(&refs, opts)
}

/// The results as a Markdown table, one row per scheduler and N, preceded by a line giving the
/// flow count (the `sched-quality` tool's output).
pub fn table(results: &[Quality]) -> String {
    use std::fmt::Write;
    let flows = results.first().map_or(0, |q| q.flows);
    let mut out = String::new();
    let _ = writeln!(out, "{flows} flows (half IPv4, half IPv6 sources); weights equal except the weight column (N = 10, weights 1..10)\n");
    out.push_str("| scheduler | N | table | max/mean | weight error % | moved, remove 1 (%) | minimum (%) | moved, remove 1 % (%) | minimum (%) | build (µs) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for q in results {
        for r in &q.points {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                q.scheduler,
                r.backends,
                q.table_size.map_or("-".into(), |t| t.to_string()),
                r.max_over_mean,
                r.weight_error_pct.map_or("".into(), |w| format!("{w:.2}")),
                r.disruption_remove_one_pct,
                r.minimal_disruption_pct,
                r.disruption_remove_1pct_pct,
                r.minimal_disruption_1pct_pct,
                r.build_us.map_or("-".into(), |b| format!("{b:.0}")),
            );
        }
    }
    out
}

/// One row of the JSON output.
#[derive(serde::Serialize)]
struct Row<'a> {
    scheduler: &'a str,
    backends: usize,
    table_size: Option<u32>,
    max_over_mean: f64,
    weight_error_pct: Option<f64>,
    disruption_remove_one_pct: f64,
    minimal_disruption_pct: f64,
    disruption_remove_1pct_pct: f64,
    minimal_disruption_1pct_pct: f64,
    build_us: Option<f64>,
}

fn rows(results: &[Quality]) -> impl Iterator<Item = Row<'_>> {
    results.iter().flat_map(|q| {
        q.points.iter().map(move |p| Row {
            scheduler: &q.scheduler,
            backends: p.backends,
            table_size: q.table_size,
            max_over_mean: p.max_over_mean,
            weight_error_pct: p.weight_error_pct,
            disruption_remove_one_pct: p.disruption_remove_one_pct,
            minimal_disruption_pct: p.minimal_disruption_pct,
            disruption_remove_1pct_pct: p.disruption_remove_1pct_pct,
            minimal_disruption_1pct_pct: p.minimal_disruption_1pct_pct,
            build_us: p.build_us,
        })
    })
}

/// The results as pretty-printed JSON: an array of one object per scheduler and N, with the
/// keys `scheduler`, `backends`, `table_size`, `max_over_mean`, `weight_error_pct`,
/// `disruption_remove_one_pct`, `minimal_disruption_pct`, `disruption_remove_1pct_pct`,
/// `minimal_disruption_1pct_pct`, `build_us` (the [`Point`] fields; `null` for `None`).
pub fn to_json(results: &[Quality]) -> String {
    serde_json::to_string_pretty(&rows(results).collect::<Vec<_>>()).unwrap_or_default()
}

/// Writes an SVG chart of the flows moved when one destination is removed, against N (log-log,
/// one line per scheduler, with the 1/N minimum) to `path`.
pub fn svg(results: &[Quality], path: impl AsRef<Path>) -> io::Result<()> {
    chart(results, path.as_ref()).map_err(|e| io::Error::other(e.to_string()))
}

fn chart(results: &[Quality], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax =
        results.iter().flat_map(|q| &q.points).map(|r| r.disruption_remove_one_pct).fold(1.0, f64::max).min(100.0)
            * 1.05;
    let mut c = ChartBuilder::on(&root)
        .caption("flows moved when one destination is removed (%)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((8f64..1200f64).log_scale(), (0.05f64..ymax).log_scale())?;
    c.configure_mesh().x_desc("destinations (N)").y_desc("% of flows moved").draw()?;
    let mut names: Vec<&str> = Vec::new();
    for q in results {
        if !names.contains(&q.scheduler.as_str()) {
            names.push(&q.scheduler);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = results
            .iter()
            .filter(|q| q.scheduler == *name)
            .flat_map(|q| &q.points)
            .map(|r| (r.backends as f64, r.disruption_remove_one_pct.max(0.06)))
            .collect();
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    let ideal: Vec<(f64, f64)> = [10.0, 100.0, 1000.0].iter().map(|&n| (n, 100.0 / n)).collect();
    c.draw_series(LineSeries::new(ideal, BLACK.stroke_width(1)))?
        .label("minimum (1/N)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
