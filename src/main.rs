use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use auditbridge::config::{
    sink_formats, Config, DeadLetterConfig, EnrichConfig, KeysConfig, Limits, PipelineConfig,
    Routing, RulesConfig, SinkConfig, SourceConfig,
};
use auditbridge::dead_letter::DeadLetterSink;
use auditbridge::dedup::DedupConfig;
use auditbridge::keys;
use auditbridge::pipeline::Pipeline;
use auditbridge::rules::sigma::SigmaSet;
use auditbridge::rules::{coverage, testing, RuleSet};
use auditbridge::telemetry::TelemetryConfig;
use auditbridge::transforms::normalize::OutputFormat;

/// Stream AWS CloudTrail and Microsoft Entra ID audit/sign-in logs into your SIEM as
/// ECS and OCSF records, tagged with MITRE ATT&CK, without losing an event.
///
/// Quick look at what auditbridge makes of your own logs (no config needed):
///
///   auditbridge replay --format ecs path/to/CloudTrail/
///
/// Run a configured pipeline (see config/local.toml):
///
///   auditbridge run --config config/local.toml
#[derive(Parser)]
#[command(name = "auditbridge", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline a config file describes until its sources are exhausted or
    /// SIGTERM/SIGINT arrives (then drain within pipeline.shutdown_grace_secs). Exit 0 when
    /// everything read was delivered or dead-lettered, 1 on bad config, 3 when a sink
    /// stayed faulted past pipeline.sink_fault_timeout_secs, 4 when input was left
    /// undelivered.
    Run {
        /// TOML config file; `${ENV_VAR}` in strings is replaced from the environment.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and exit: 0 when valid, 1 with a message naming the bad key.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
        /// Also reach every source and sink without consuming or sending data (SQS: queue
        /// attributes; Event Hubs: hub properties and checkpoint store; Kafka: metadata,
        /// topics, access; Splunk HEC: health and token).
        #[arg(long)]
        check_sinks: bool,
    },
    /// Ask a running instance's admin endpoint whether it is ready: exit 0 when it answers
    /// 200, 1 otherwise (the container image's HEALTHCHECK).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/health/ready")]
        url: String,
    },
    /// Work with the detection rules (MITRE ATT&CK tagging).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Access-key hygiene.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Decode, normalize and enrich files or directories and print the records as NDJSON
    /// on stdout; dead letters (NDJSON) and a summary go to stderr. Gzip and plain files,
    /// CloudTrail and Entra ID are detected from the content.
    Replay {
        /// Documents to print: `ecs`, `ocsf` (with findings) or `both`.
        #[arg(long, value_enum, default_value = "both")]
        format: OutputFormat,
        /// Directory of rule files to tag with instead of the built-in rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Also tag with the Sigma rules of this directory tree (repeatable).
        #[arg(long)]
        sigma: Vec<PathBuf>,
        /// Parse user agents into ECS `user_agent.*` (as `enrich.user_agent`).
        #[arg(long)]
        user_agent: bool,
        /// Files, directories or glob patterns.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Run every rule's own test events through the real decoder; print a step-by-step
    /// explanation for each failure; exit 1 when any fails.
    Test {
        /// Rules directory (default: the built-in rules).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Also the Sigma rules of this directory tree, with the test events of its
        /// `tests/` folder (repeatable).
        #[arg(long)]
        sigma: Vec<PathBuf>,
    },
    /// Print which founding techniques the rules tag for AWS and Azure; exit 1 when an
    /// observable one is not covered.
    Coverage {
        /// Rules directory (default: the built-in rules).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Also load the Sigma rules of this directory tree: print how many load, why the
        /// others do not, and the founding rows they cover.
        #[arg(long)]
        sigma: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List each user's active access keys with their age; flag keys over the maximum
    /// age and exit 1 when any is flagged (for CI and cron).
    Audit(AuditArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["credential_report", "iam"])))]
struct AuditArgs {
    /// IAM credential report CSV (`aws iam get-credential-report`, decoded).
    #[arg(long)]
    credential_report: Option<PathBuf>,
    /// Read users and keys from the IAM API (ListUsers + ListAccessKeys) with the
    /// standard AWS credential chain.
    #[arg(long)]
    iam: bool,
    /// AWS region for --iam.
    #[arg(long, conflicts_with = "credential_report")]
    region: Option<String>,
    /// IAM endpoint override for --iam (tests, VPC endpoints).
    #[arg(long, conflicts_with = "credential_report")]
    endpoint: Option<String>,
    /// Set flagged keys Inactive (needs --iam; without --yes, only say what would be done).
    #[arg(long, conflicts_with = "credential_report")]
    deactivate: bool,
    /// Really deactivate.
    #[arg(long, requires = "deactivate")]
    yes: bool,
    /// Keys older than this many days are flagged.
    #[arg(long, default_value_t = 90)]
    max_age_days: i64,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    output: AuditOutput,
    /// Evaluate ages at this RFC 3339 time instead of now.
    #[arg(long)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditOutput {
    Table,
    Json,
}

/// `keys audit`: list active keys with their age; exit 1 when one is over the maximum.
fn keys_audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let at = args.at.unwrap_or_else(chrono::Utc::now);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (rows, client) = match &args.credential_report {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let users = keys::report::parse(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            (
                keys::audit::from_report(&users, at, args.max_age_days),
                None,
            )
        }
        None => {
            let client = runtime.block_on(keys::iam::client(
                args.region.as_deref(),
                args.endpoint.as_deref(),
            ));
            let listed = runtime.block_on(keys::iam::list_keys(&client))?;
            (
                keys::audit::from_iam(&listed, at, args.max_age_days),
                Some(client),
            )
        }
    };
    match args.output {
        AuditOutput::Table => print!("{}", keys::audit::render_table(&rows, args.max_age_days)),
        AuditOutput::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    if let (true, Some(client)) = (args.deactivate, &client) {
        for row in rows.iter().filter(|r| r.over_max_age) {
            if args.yes {
                runtime.block_on(keys::iam::deactivate(client, &row.user, &row.key))?;
                eprintln!("deactivated {} of {}", row.key, row.user);
            } else {
                eprintln!(
                    "would deactivate {} of {} (dry run: add --yes to do it)",
                    row.key, row.user
                );
            }
        }
    }
    Ok(if rows.iter().any(|r| r.over_max_age) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    auditbridge::configure_memory();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a collector reading `run 2> file` gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    // JSON lines for log collectors (AUDITBRIDGE_LOG_FORMAT=json), text otherwise.
    if json_logs() {
        logs.json().init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate {
            config: path,
            check_sinks,
        } => {
            let config = Config::load(&path)?;
            println!("{}: valid", path.display());
            for line in config.cleartext_opt_ins() {
                println!("warning: {line}");
            }
            if !check_sinks {
                return Ok(ExitCode::SUCCESS);
            }
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let mut failed = false;
            for (name, source) in &config.sources {
                let problems = runtime.block_on(auditbridge::sources::check(source));
                if problems.is_empty() {
                    println!("source `{name}`: reachable");
                }
                for p in problems {
                    failed = true;
                    println!("source `{name}`: {p}");
                }
            }
            for (name, sink) in &config.sinks {
                let formats = sink_formats(sink, config.pipeline.format);
                let problems = runtime.block_on(auditbridge::sinks::check(sink, &formats));
                if problems.is_empty() {
                    println!("sink `{name}`: reachable");
                }
                for p in problems {
                    failed = true;
                    println!("sink `{name}`: {p}");
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Rules {
            command: RulesCommand::Test { rules, sigma },
        } => {
            let set = RuleSet::load(&RulesConfig {
                dir: rules,
                sigma_dirs: sigma,
                ..RulesConfig::default()
            })?;
            let report = testing::run(&set);
            for failure in &report.failures {
                print!("{failure}");
            }
            println!(
                "rules: {} rules, {} passed, {} failed",
                set.rules().len(),
                report.passed,
                report.failures.len()
            );
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Rules {
            command: RulesCommand::Coverage { rules, sigma },
        } => {
            let rows = coverage::coverage(&RuleSet::load(&RulesConfig {
                dir: rules,
                ..RulesConfig::default()
            })?);
            print!("{}", coverage::render(&rows));
            if let Some(dir) = sigma {
                let set = SigmaSet::load(&dir)
                    .with_context(|| format!("reading Sigma rules from {}", dir.display()))?;
                print!("{}", coverage::render_sigma(&set, &dir));
            }
            let missing = rows.iter().any(|r| {
                matches!(r.aws, coverage::Cell::Missing(_))
                    || matches!(r.azure, coverage::Cell::Missing(_))
            });
            Ok(if missing {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Keys {
            command: KeysCommand::Audit(args),
        } => keys_audit(args),
        Command::Health { url } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let answer = runtime.block_on(async {
                reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(3))
                    .build()?
                    .get(&url)
                    .send()
                    .await
            });
            match answer {
                Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
                Ok(r) => {
                    eprintln!("{url}: HTTP {}", r.status());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("{url}: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run { config } => {
            let config = Config::load(&config)?;
            for line in config.cleartext_opt_ins() {
                tracing::warn!("{line}");
            }
            let dead_letters = Pipeline::open_dead_letters(&config)?;
            execute(&config, dead_letters)
        }
        Command::Replay {
            format,
            rules,
            sigma,
            user_agent,
            paths,
        } => {
            let config = Config {
                pipeline: PipelineConfig {
                    format,
                    ..PipelineConfig::default()
                },
                limits: Limits::default(),
                routing: Routing::default(),
                dead_letter: DeadLetterConfig::default(),
                rules: RulesConfig {
                    dir: rules,
                    sigma_dirs: sigma,
                    ..RulesConfig::default()
                },
                keys: KeysConfig::default(),
                enrich: EnrichConfig {
                    user_agent,
                    ..EnrichConfig::default()
                },
                // A replay shows every record it reads, repeated ids included.
                dedup: DedupConfig {
                    enabled: false,
                    ..DedupConfig::default()
                },
                admin: None,
                telemetry: TelemetryConfig::default(),
                sources: BTreeMap::from([("replay".to_string(), SourceConfig::File { paths })]),
                sinks: BTreeMap::from([(
                    "stdout".to_string(),
                    SinkConfig::Stdout { formats: None },
                )]),
            };
            execute(&config, DeadLetterSink::stderr())
        }
    }
}

/// Whether logs go out as JSON lines (`AUDITBRIDGE_LOG_FORMAT=json`).
fn json_logs() -> bool {
    std::env::var("AUDITBRIDGE_LOG_FORMAT").is_ok_and(|f| f == "json")
}

/// The run summary as printed at exit: the bare JSON object, or with JSON logs, a log line
/// in the shape of the others (`timestamp`, `level`, `fields`, `target`) whose fields are
/// the summary's, so a collector indexes its counts and dead-letter reasons as fields.
fn summary_line(summary: serde_json::Value, json_logs: bool) -> serde_json::Value {
    if !json_logs {
        return summary;
    }
    let mut fields = serde_json::Map::new();
    fields.insert("message".into(), "run summary".into());
    if let serde_json::Value::Object(counts) = summary {
        fields.extend(counts);
    }
    serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "INFO",
        "fields": fields,
        "target": "auditbridge::summary",
    })
}

fn execute(config: &Config, dead_letters: DeadLetterSink) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::new(config, dead_letters)?;
    let metrics = pipeline.metrics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        pipeline.run(stop_rx).await
    });
    // A read blocked past the grace period must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    eprintln!("{}", summary_line(metrics.summary(), json_logs()));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let code = e.exit_code();
            eprintln!("error: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(code))
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
