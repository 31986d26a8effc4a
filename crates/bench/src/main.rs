//! Load benchmark: seeds users with active TOTP factors and pending login challenges
//! through the core, then answers every challenge over HTTP (UCloud's
//! `POST /auth/2fa/challenge`) with a valid code at a fixed concurrency. It prints a
//! line per second (answers/s, p50, p99, WAL size, process RSS) and a summary:
//! throughput, latency percentiles and the share of successful answers.
//!
//! `cargo run --release -p twofa-bench -- --users 100000 --concurrency 64`
//!
//! With `--serve --requests-file FILE`, it seeds the same way, writes one line per
//! challenge for an external load generator (`bench/wrk/answer.lua`), prints the URL and
//! serves until SIGINT or SIGTERM, with no client of its own:
//! `twofa-bench --serve --requests-file /tmp/req.txt --users 300000 --bind 127.0.0.1:8088`

use clap::Parser;
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofa_core::{
    otp, ChallengeOutcome, Clock, Core, CoreConfig, NewUser, Origin, OsRandom, SystemClock,
};
use twofa_server::Settings;

/// mimalloc: the request path allocates a lot across threads, where glibc malloc
/// spent about a tenth of the CPU in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Users (and challenges) to seed; each is answered once, so this is the length of
    /// the run (100,000 is about 10 s at 10,000 answers/s).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Database connections [default: the server's, 1 for SQLite, 16 for PostgreSQL].
    #[arg(long)]
    pool_size: Option<u32>,
    /// Database URL [default: a SQLite file in a temporary directory].
    #[arg(long)]
    database_url: Option<String>,
    /// Serve mode: seed, write the request file, print the URL, then serve until SIGINT
    /// or SIGTERM, without the in-process client.
    #[arg(long, requires = "requests_file")]
    serve: bool,
    /// Serve mode: where to write the request file, one line per challenge:
    /// `challengeId firstStep code...` (the codes for `--steps` 30-second steps from
    /// `firstStep`, the step the file is written in).
    #[arg(long, requires = "serve")]
    requests_file: Option<PathBuf>,
    /// Serve mode: the address to listen on.
    #[arg(long, default_value = "127.0.0.1:8088", requires = "serve")]
    bind: String,
    /// Serve mode: how many 30-second steps of codes each line carries; the load must
    /// end within them (10 steps: 5 minutes from when the file is written).
    #[arg(long, default_value_t = 10, requires = "serve")]
    steps: u32,
}

/// System time shifted by an offset: seeding happens "90 s ago", so the codes used to
/// enroll are older than the ones the benchmark answers with.
struct ShiftedClock(AtomicI64);

impl Clock for ShiftedClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.0.load(Ordering::Relaxed)
    }
}

/// Users seeded at once: enough to fill SQLite's group-commit batches (8 left the writer
/// waiting), few enough that the seeding's QR images do not inflate the measured RSS
/// (64 left it at about 290 MiB).
const SEED_CONCURRENCY: usize = 16;

async fn seed(core: &Core, clock: &ShiftedClock, n: usize) -> Vec<(String, Vec<u8>)> {
    clock.0.store(-90, Ordering::Relaxed);
    let origin = Origin::new("ucloud", None);
    let seeded: Vec<(String, Vec<u8>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let core = core.clone();
            let origin = origin.clone();
            async move {
                let user = core
                    .create_user(
                        origin.clone(),
                        NewUser {
                            username: format!("bench{i}"),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("create user");
                let setup = core
                    .begin_totp_setup(origin.clone(), user.id.clone(), "Bench".into())
                    .await
                    .expect("setup");
                let secret = otp::secret_from_base32(&setup.secret_base32).expect("base32");
                let code = otp::code_at(&secret, core.now()).expect("code");
                let done = core
                    .answer_challenge(origin.clone(), setup.challenge_id, code)
                    .await
                    .expect("enroll");
                assert!(matches!(done, ChallengeOutcome::SetupCompleted { .. }));
                let challenge = core
                    .start_login_challenge(origin, user.id, Some("web".into()))
                    .await
                    .expect("challenge");
                (challenge.expect("active factor"), secret)
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    clock.0.store(0, Ordering::Relaxed);
    seeded
}

/// CPU seconds (user + system) this process has used, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// A memory figure of this process (server and client together) in MiB, from
/// /proc/self/status: `VmRSS` now, `VmHWM` the peak.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The size in MiB of a file of the SQLite database: `""` the database, `"-wal"` its WAL
/// (0 for PostgreSQL, or no such file yet).
fn file_mib(database_url: &str, suffix: &str) -> f64 {
    std::fs::metadata(format!("{database_url}{suffix}")).map_or(0.0, |m| m.len() as f64 / 1048576.0)
}

fn wal_mib(database_url: &str) -> f64 {
    file_mib(database_url, "-wal")
}

/// Answers of the second being measured: latency and success.
type Second = std::sync::Mutex<Vec<(Duration, bool)>>;

/// Prints a line per second from what the clients recorded in it.
async fn report_every_second(second: Arc<Second>, database_url: String, done: Arc<AtomicUsize>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while done.load(Ordering::Relaxed) == 0 {
        tick.tick().await;
        let taken = std::mem::take(&mut *second.lock().unwrap());
        let mut latencies: Vec<Duration> = taken.iter().map(|r| r.0).collect();
        latencies.sort();
        if latencies.is_empty() {
            continue;
        }
        println!(
            "t={:>4.0}s  {:>6} verified/s  p50 {:>6.2} ms  p99 {:>6.2} ms  WAL {:>7.1} MiB  RSS {:>6.1} MiB",
            started.elapsed().as_secs_f64(),
            taken.iter().filter(|r| r.1).count(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            wal_mib(&database_url),
            status_mib("VmRSS:")
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = args.database_url.clone().unwrap_or_else(|| {
        dir.path()
            .join("bench.sqlite3")
            .to_string_lossy()
            .into_owned()
    });
    let clock = Arc::new(ShiftedClock(AtomicI64::new(0)));
    let mut cfg = CoreConfig::new(database_url.clone(), [1; 32], vec![2; 32]);
    if let Some(size) = args.pool_size {
        cfg.pool_size = size;
    }
    // The challenges must outlive the seeding (minutes for a million users) and, when
    // serving, every step the request file has codes for.
    cfg.challenge_ttl = cfg.challenge_ttl.max(3 * 3600 + 30 * i64::from(args.steps));
    let core = Core::open(cfg, clock.clone(), Arc::new(OsRandom)).expect("open database");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let challenges = runtime.block_on(seed(&core, &clock, args.users));
    println!(
        "backend: {:?}; seeded {} users with active TOTP and a login challenge in {:.1} s; database {:.1} MiB",
        core.backend(),
        challenges.len(),
        started.elapsed().as_secs_f64(),
        file_mib(&database_url, "")
    );
    if let Some(path) = &args.requests_file {
        serve(&args, path, core, challenges, dir.path(), &database_url);
        return;
    }

    // The server, in its own actix system on its own threads.
    let settings = server_settings(&args, "127.0.0.1:0", dir.path());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server_core = core.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (server, addrs) = twofa_server::bind(server_core, &settings).expect("bind");
            addr_tx.send((addrs[0], server.handle())).unwrap();
            server.await.expect("server")
        })
    });
    let (addr, handle) = addr_rx.recv().unwrap();
    let url = format!("http://{addr}/auth/2fa/challenge");

    let challenges = Arc::new(challenges);
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let second: Arc<Second> = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));
    runtime.spawn(report_every_second(
        second.clone(),
        database_url.clone(),
        finished.clone(),
    ));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (challenges, next, client, url, second) = (
                    challenges.clone(),
                    next.clone(),
                    client.clone(),
                    url.clone(),
                    second.clone(),
                );
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((challenge, secret)) = challenges.get(i) else {
                            break;
                        };
                        let code = otp::code_at(secret, SystemClock.now()).unwrap();
                        let body =
                            serde_json::json!({"challengeId": challenge, "verificationCode": code});
                        let t = Instant::now();
                        let ok = match client
                            .post(&url)
                            .header("Accept", "application/json")
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        let answer = (t.elapsed(), ok);
                        second.lock().unwrap().push(answer);
                        out.push(answer);
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    finished.store(1, Ordering::Relaxed);
    let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
    runtime.block_on(handle.stop(true));

    let ok = results.iter().filter(|r| r.1).count();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.0).collect();
    latencies.sort();
    println!(
        "answered {} challenges at concurrency {} in {:.2} s: {:.0} requests/s, {:.0} verified/s, p50 {:.2} ms, p99 {:.2} ms, successful {:.2}%",
        results.len(),
        args.concurrency,
        elapsed,
        results.len() as f64 / elapsed,
        ok as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        100.0 * ok as f64 / results.len().max(1) as f64
    );
    println!(
        "peak RSS {:.1} MiB (server and client in one process); WAL at the end {:.1} MiB; database {:.1} MiB",
        status_mib("VmHWM:"),
        wal_mib(&database_url),
        file_mib(&database_url, "")
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU used while answering (client and server together): {:.2} s, {:.3} ms per answer",
            cpu,
            1000.0 * cpu / results.len().max(1) as f64
        );
    }
}

/// The server the bench runs: the UCloud dialect on `bind`, with `--workers` workers.
fn server_settings(args: &Args, bind: &str, data_dir: &Path) -> Settings {
    Settings {
        bind: bind.into(),
        dialects: Some("ucloud".into()),
        data_dir: data_dir.to_path_buf(),
        workers: Some(args.workers),
        ..Default::default()
    }
    .resolve()
    .expect("settings")
}

/// Writes the request file: per challenge, `challengeId firstStep code...` with the codes
/// of `steps` consecutive 30-second steps from the current one. Readable by its owner
/// only (the codes answer live challenges).
fn write_requests_file(
    path: &Path,
    challenges: &[(String, Vec<u8>)],
    steps: u32,
) -> std::io::Result<i64> {
    let first = otp::step_of(SystemClock.now());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = std::io::BufWriter::new(options.open(path)?);
    for (challenge, secret) in challenges {
        write!(out, "{challenge} {first}")?;
        for step in first..first + i64::from(steps) {
            let code = otp::code_at(secret, step * 30).map_err(std::io::Error::other)?;
            write!(out, " {code}")?;
        }
        writeln!(out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(first)
}

/// Serve mode: writes the request file, serves the UCloud dialect on `--bind` until
/// SIGINT or SIGTERM, then prints what the server used (CPU while serving, RSS, WAL).
fn serve(
    args: &Args,
    path: &Path,
    core: Core,
    challenges: Vec<(String, Vec<u8>)>,
    data_dir: &Path,
    database_url: &str,
) {
    let first = write_requests_file(path, &challenges, args.steps).expect("write requests file");
    let lines = challenges.len();
    // Dropped before serving, so the RSS of the serving process does not hold the seeds.
    drop(challenges);
    println!(
        "wrote {} lines to {} (codes for steps {}..{}, valid until {} s after the epoch)",
        lines,
        path.display(),
        first,
        first + i64::from(args.steps) - 1,
        (first + i64::from(args.steps)) * 30
    );
    let settings = server_settings(args, &args.bind, data_dir);
    actix_web::rt::System::new().block_on(async move {
        let (server, addrs) = twofa_server::bind(core, &settings).expect("bind");
        let cpu_before = cpu_seconds();
        // The line a driving script waits for: the server accepts connections from here.
        println!("serving http://{}/auth/2fa/challenge", addrs[0]);
        // actix stops the server on SIGINT, SIGTERM and SIGQUIT.
        server.await.expect("server");
        let cpu = cpu_before.zip(cpu_seconds()).map_or(0.0, |(a, b)| b - a);
        println!(
            "stopped: {:.2} s CPU while serving; RSS {:.1} MiB, peak {:.1} MiB (seeding included); WAL {:.1} MiB",
            cpu,
            status_mib("VmRSS:"),
            status_mib("VmHWM:"),
            wal_mib(database_url)
        );
    });
}
