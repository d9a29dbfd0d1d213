//! The `leakdiag` command line: parses arguments, calls the library, maps outcomes to
//! exit codes (0: every input analysed; 1: some input failed; 2: bad usage).

use anyhow::Context;
use clap::{Parser, Subcommand};
use leakdiag::analysis::attribution::ModuleFilter;
use leakdiag::analysis::scripts::leak::LeakOptions;
use leakdiag::analysis::AnalyzeOptions;
use leakdiag::symbols::{SymbolOptions, Symbolizer};
use leakdiag::text::one_line;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "leakdiag",
    version,
    about = "Native memory leak analysis of tracker-annotated Windows minidumps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse dumps and UMDH logs and write a report folder (one report per input,
    /// and an index).
    Analyze {
        /// Dumps, UMDH logs, or folders searched recursively for *.dmp and for
        /// *.txt/*.log files that are UMDH logs.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
        /// Output folder.
        #[arg(short, long, default_value = "leakdiag-report", value_name = "DIR")]
        out: PathBuf,
        /// Dumps analysed in parallel (default: all cores).
        #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// Another module whose frames are system/runtime plumbing (repeatable).
        #[arg(long = "system-module", value_name = "NAME")]
        system_modules: Vec<String>,
        /// Sample stacks shown per module.
        #[arg(long, default_value_t = 3, value_name = "N")]
        stacks: usize,
        /// Functions listed per module.
        #[arg(long, default_value_t = 10, value_name = "N")]
        functions: usize,
        /// Symbol path: a folder, `cache*DIR`, `srv*DIR*STORE` (STORE a folder or an
        /// http(s) symbol server), entries separated by `;` (repeatable; searched
        /// before _NT_SYMBOL_PATH).
        #[arg(short, long = "symbols", value_name = "PATH")]
        symbols: Vec<String>,
        /// Folder of module images (or an image file), to learn a module's PDB identity
        /// when the dump lacks it, and its version resource (vendor, product) when the
        /// dump does not hold the image (repeatable).
        #[arg(long, value_name = "DIR")]
        images: Vec<PathBuf>,
        /// A tracking window shorter than this many minutes is reported as too short to
        /// judge a leak.
        #[arg(long, default_value_t = 15, value_name = "MINUTES")]
        min_window: u64,
        /// Run only these scripts (comma-separated; see `leakdiag scripts`).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        scripts: Option<Vec<String>>,
        /// Also write a report for this module's vendor, `DIR/vendor-<module>/`
        /// (repeatable).
        #[arg(long = "vendor", value_name = "MODULE")]
        vendors: Vec<String>,
        /// Keep other modules' function names and source paths in vendor reports.
        #[arg(long)]
        no_redact: bool,
        /// Print nothing but errors (no progress bar).
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the memory-pressure scripts.
    Scripts,
    /// Print what a dump or a UMDH log holds: a dump's streams, modules and
    /// allocation stream header; a log's header, modules, heaps, stacks or growth
    /// entries, and its warnings.
    Inspect {
        #[arg(value_name = "DUMP_OR_LOG")]
        dump: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leakdiag: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// Warns about `-s` folders and `--images` paths that do not exist: a typo there
/// otherwise shows only as missing symbols.
fn warn_missing_symbol_folders(symbols: &[String], images: &[PathBuf], quiet: bool) {
    use leakdiag::symbols::path::{parse_symbol_path, StoreLocation, SymbolPathEntry};
    if quiet {
        return;
    }
    let mut missing: Vec<(String, PathBuf)> = Vec::new();
    for arg in symbols {
        for entry in parse_symbol_path(arg).unwrap_or_default() {
            match entry {
                SymbolPathEntry::Folder(p)
                | SymbolPathEntry::Store {
                    store: StoreLocation::Folder(p),
                    ..
                } => missing.push(("-s".into(), p)),
                _ => {}
            }
        }
    }
    missing.extend(images.iter().map(|p| ("--images".to_owned(), p.clone())));
    for (option, path) in missing {
        if std::fs::metadata(&path).is_err() {
            eprintln!(
                "leakdiag: warning: {option} {}: no such file or folder",
                one_line(&path.display().to_string())
            );
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze {
            inputs,
            out,
            jobs,
            system_modules,
            stacks,
            functions,
            scripts,
            symbols,
            images,
            min_window,
            vendors,
            no_redact,
            quiet,
        } => {
            // An output path that is a file (or a link) is a usage error, found before
            // anything is analysed.
            if let Ok(m) = std::fs::symlink_metadata(&out) {
                if m.file_type().is_symlink() || !m.is_dir() {
                    let what = if m.file_type().is_symlink() {
                        "is a symbolic link"
                    } else {
                        "exists and is not a folder"
                    };
                    eprintln!("leakdiag: -o {}: {what}; name a folder", out.display());
                    return Ok(ExitCode::from(2));
                }
            }
            warn_missing_symbol_folders(&symbols, &images, quiet);
            let env_path = std::env::var("_NT_SYMBOL_PATH").ok();
            let symbol_options =
                match SymbolOptions::from_args_and_env(&symbols, env_path.as_deref(), &images) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("leakdiag: symbol path: {e}");
                        return Ok(ExitCode::from(2));
                    }
                };
            let scripts = match leakdiag::analysis::scripts::select(scripts.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("leakdiag: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let options = AnalyzeOptions {
                leak: LeakOptions {
                    system_modules: ModuleFilter::system_with(&system_modules),
                    sample_stacks: stacks,
                    top_functions: functions,
                    min_window_seconds: min_window.saturating_mul(60),
                    all_stack_totals: true,
                },
                scripts,
                images,
                symbolizer: Arc::new(Symbolizer::new(symbol_options)),
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(jobs.map_or(0, usize::from))
                .build()
                .context("cannot start the worker threads")?;
            let run = leakdiag::batch::RunOptions {
                vendors,
                no_redact,
                progress: !quiet && std::io::stderr().is_terminal(),
            };
            let index = match pool.install(|| leakdiag::batch::run(&inputs, &out, &options, &run)) {
                Ok(index) => index,
                Err(e) => {
                    eprintln!("leakdiag: {}", one_line(&e.to_string()));
                    return Ok(ExitCode::from(if e.is_usage() { 2 } else { 1 }));
                }
            };
            for entry in index.inputs.iter().filter(|e| e.status != "ok") {
                eprintln!(
                    "leakdiag: {}",
                    one_line(entry.error.as_deref().unwrap_or("failed"))
                );
            }
            if !quiet {
                for s in &index.skipped {
                    eprintln!("leakdiag: skipped {}: {}", one_line(&s.path), s.reason);
                }
                if !index.foreign_entries.is_empty() {
                    eprintln!(
                        "leakdiag: {} holds entries leakdiag did not write; left as they are: {}",
                        out.display(),
                        one_line(&index.foreign_entries.join(", "))
                    );
                }
            }
            if index.not_written {
                eprintln!(
                    "leakdiag: no dump was analysed; the report in {} was left as it was",
                    out.display()
                );
                return Ok(ExitCode::from(1));
            }
            if !quiet {
                eprintln!(
                    "leakdiag: {} analysed, {} failed; report: {}",
                    index.ok,
                    index.failed,
                    out.join("index.html").display()
                );
            }
            Ok(if index.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Scripts => {
            for s in leakdiag::analysis::scripts::registry() {
                let info = s.info();
                let needs: Vec<&str> = info.needs.iter().map(|n| n.label()).collect();
                println!(
                    "{:<16} {} (reads: {})",
                    info.name,
                    info.description,
                    needs.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { dump } => {
            let stdout = std::io::stdout();
            let mut w = stdout.lock();
            // A UMDH log is recognised from its content, as `analyze` does.
            let listed = match leakdiag::umdh::detect(&dump).ok().flatten() {
                Some(kind) => {
                    leakdiag::umdh::inspect::inspect(&mut w, &dump, kind).map(|e| e.is_some())
                }
                None => {
                    let file = leakdiag::dump::DumpFile::open(&dump)?;
                    leakdiag::dump::inspect::inspect(&mut w, &file).map(|e| e.is_some())
                }
            };
            let failed = match listed {
                Ok(failure) => failure,
                // `leakdiag inspect x.dmp | head` closes the pipe early: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                Err(e) => return Err(e.into()),
            };
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
