//! ews-probe: parse flags, run, print, exit with the Nagios code.

use clap::Parser;
use ews_probe::app::{self, AppError};
use ews_probe::cli::{Cli, Command, OutputArgs};
use ews_probe::report::{self, Format};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// jemalloc instead of the system allocator: with glibc's, a fleet run spent ~25 % of its
/// instructions in malloc/free (README, "Speed"). Not on MSVC, which it does not support.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation: freed pages go back to the OS after 1 s
/// instead of 10 s (peak RSS of a 10,000-mailbox fleet 62-66 -> 56-60 MiB), and on Linux one
/// arena per CPU instead of four (the runtime has one worker per CPU). `_RJEM_MALLOC_CONF`
/// in the environment still overrides them.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: Option<&'static u8> = Some(&JEMALLOC_CONF[0]);

#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
const JEMALLOC_CONF: &[u8] = b"percpu_arena:percpu,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
#[cfg(all(not(target_env = "msvc"), not(target_os = "linux")))]
const JEMALLOC_CONF: &[u8] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Exit code when the probe could not run (DESIGN §5).
const UNKNOWN: u8 = 3;

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "warn,ews_probe=info",
        _ => "warn,ews_probe=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Writes the output atomically (temp file + rename) or to stdout.
fn emit(out: &OutputArgs, text: &str) -> Result<(), AppError> {
    match &out.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "report".into());
            let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
            let w = |e| AppError::Write(path.display().to_string(), e);
            std::fs::write(&tmp, text).map_err(w)?;
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                AppError::Write(path.display().to_string(), e)
            })
        }
        None => {
            let mut so = std::io::stdout().lock();
            // A closed pipe (| head) is not an error worth a message.
            let _ = so.write_all(text.as_bytes());
            let _ = so.flush();
            Ok(())
        }
    }
}

fn color(out: &OutputArgs) -> bool {
    out.format == Format::Text
        && out.output.is_none()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal()
}

async fn run(cli: Cli) -> Result<u8, AppError> {
    match cli.command {
        Command::Probe(a) => {
            let mut r = app::probe(&a).await?;
            a.out.thresholds().apply(&mut r);
            emit(&a.out, &report::render(&r, a.out.format, color(&a.out)))?;
            Ok(r.exit_code as u8)
        }
        Command::Discover(a) => {
            let r = app::discover(&a).await?;
            emit(&a.out, &report::render(&r, a.out.format, color(&a.out)))?;
            Ok(r.exit_code as u8)
        }
        Command::Replay(a) if ews_probe::switch::is_switch_bundle(&a.dir) => {
            let mut s = ews_probe::switch::replay(&a.dir).await?;
            s.apply_thresholds(&a.out.thresholds());
            emit(&a.out, &s.render(a.out.format, color(&a.out)))?;
            Ok(s.exit_code as u8)
        }
        Command::Replay(a) => {
            let mut r = app::replay(&a).await?;
            a.out.thresholds().apply(&mut r);
            emit(&a.out, &report::render(&r, a.out.format, color(&a.out)))?;
            Ok(r.exit_code as u8)
        }
        Command::Fleet(a) => ews_probe::fleet::run(&a).await,
        Command::Switch(a) => {
            let s = ews_probe::switch::run(&a).await?;
            emit(&a.out, &s.render(a.out.format, color(&a.out)))?;
            Ok(s.exit_code as u8)
        }
        Command::Demo(a) => {
            if let Some(name) = &a.scenario
                && let Some(mut s) = ews_probe::switch::demo(name).await?
            {
                s.apply_thresholds(&a.out.thresholds());
                emit(&a.out, &s.render(a.out.format, color(&a.out)))?;
                return Ok(s.exit_code as u8);
            }
            let runs = app::demo(&a).await?;
            if a.scenario.is_some() {
                let mut r = runs[0].report.clone();
                a.out.thresholds().apply(&mut r);
                let r = &r;
                emit(&a.out, &report::render(r, a.out.format, color(&a.out)))?;
                return Ok(r.exit_code as u8);
            }
            let all_ok = !runs.is_empty() && runs.iter().all(|r| r.check.is_ok());
            let text = match a.out.format {
                Format::Json => {
                    let v: Vec<serde_json::Value> = runs
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "scenario": r.name,
                                "title": r.title,
                                "expected_verdict_reached": r.check.is_ok(),
                                "report": r.report,
                            })
                        })
                        .collect();
                    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                }
                Format::Prometheus => {
                    let items: Vec<_> = runs
                        .iter()
                        .map(|r| (&r.report, Some(("scenario", r.name))))
                        .collect();
                    report::prometheus::render_labeled(&items)
                }
                Format::Nagios => {
                    let reached = runs.iter().filter(|r| r.check.is_ok()).count();
                    let mut s = format!(
                        "EWS {} - {reached} of {} demo scenarios reached their expected verdict\n",
                        if all_ok { "OK" } else { "UNKNOWN" },
                        runs.len()
                    );
                    for r in &runs {
                        s.push_str(&format!(
                            "[{}] {}: {}\n",
                            if r.check.is_ok() { "OK" } else { "UNKNOWN" },
                            r.name,
                            r.report.status.label()
                        ));
                    }
                    s
                }
                Format::Text => {
                    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(10);
                    let mut s = format!(
                        "ews-probe demo: {} built-in scenarios (recorded, redacted; no mailbox, no network)\n\n",
                        runs.len()
                    );
                    for r in &runs {
                        let mark = if r.check.is_ok() { "ok  " } else { "FAIL" };
                        s.push_str(&format!(
                            "  {mark} {:<width$}  {:<8} exit {}  {}\n",
                            r.name,
                            r.report.status.label(),
                            r.report.exit_code,
                            ews_probe::util::truncate_for_display(&r.report.headline(), 110)
                        ));
                        if let Err(e) = &r.check {
                            s.push_str(&format!("       expected verdict not reached: {e}\n"));
                        }
                    }
                    s.push_str(&format!(
                        "\n{} of {} scenarios reached their expected verdict.\nFull report of one: ews-probe demo {}\n",
                        runs.iter().filter(|r| r.check.is_ok()).count(),
                        runs.len(),
                        runs.iter().find(|r| r.report.exit_code == 2).map(|r| r.name).unwrap_or("SCENARIO")
                    ));
                    s
                }
            };
            emit(&a.out, &text)?;
            Ok(if all_ok { 0 } else { UNKNOWN })
        }
        Command::Logout => {
            println!("{}", app::logout()?);
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; every usage error is UNKNOWN (3), not clap's 2.
            return if e.use_stderr() {
                ExitCode::from(UNKNOWN)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let verbose = match &cli.command {
        Command::Probe(a) => a.out.verbose,
        Command::Discover(a) => a.out.verbose,
        Command::Replay(a) => a.out.verbose,
        Command::Demo(a) => a.out.verbose,
        Command::Logout => 0,
        Command::Fleet(a) => a.probe.out.verbose,
        Command::Switch(a) => a.out.verbose,
    };
    init_tracing(verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ews-probe: error: cannot start the runtime: {e}");
            return ExitCode::from(UNKNOWN);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ews-probe: error: {e}");
            ExitCode::from(UNKNOWN)
        }
    }
}
