//! The `ringside` binary: command line, config, logging to a file, then the chosen front end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use ringside::config::Config;

#[derive(Parser)]
#[command(name = "ringside", version, about = "A terminal call-center console")]
struct Cli {
    /// Config file (default: the XDG config dir's ringside/config.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log file (default: the XDG data dir's ringside/ringside.log). Filter with RUST_LOG.
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
    /// Dashboard theme: default, light, high-contrast, mono, or a file in the user theme dir
    /// (~/.config/ringside/themes/NAME.toml). NO_COLOR picks mono.
    #[arg(long, global = true, value_name = "NAME")]
    theme: Option<String>,
    /// Where the contacts, activities and call history live (default: the XDG data dir's
    /// ringside/, e.g. ~/.local/share/ringside).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Line-mode console: register, dial, answer, hold, transfer ... (scriptable on stdin).
    Shell {
        /// Print every event as one JSON object per line.
        #[arg(long)]
        json: bool,
        /// Do not register at start (use the `register` command).
        #[arg(long)]
        no_register: bool,
    },
    /// Validate the config and try one registration.
    Check,
    /// List the sound cards, with the names [audio] device / input / output accept.
    Devices,
    /// The queue report: events and statistics from the PBX's queue_log.
    Report {
        /// Asterisk queue_log file to read.
        #[arg(long, value_name = "FILE")]
        queue_log: Option<PathBuf>,
        /// Read the live queues from an AMI instead (HOST:PORT; port 5038 if omitted).
        #[arg(long, value_name = "HOST:PORT")]
        ami: Option<String>,
        /// Read a queue report exported to CSV instead (ours, or a hosted PBX's "Export to CSV").
        #[arg(long, value_name = "FILE", conflicts_with_all = ["queue_log", "ami"])]
        csv: Option<PathBuf>,
        /// The --csv times' zone as an offset from UTC (e.g. +01:00) where they give none.
        #[arg(
            long,
            value_name = "+HH:MM",
            requires = "csv",
            conflicts_with_all = ["queue_log", "ami"],
            allow_hyphen_values = true,
            value_parser = ringside::queue::report_csv::parse_utc_offset
        )]
        utc_offset: Option<i32>,
        #[command(flatten)]
        credentials: AmiCredentialArgs,
        /// Start of the period (epoch seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC).
        #[arg(long, value_parser = ringside::cli::report::parse_time, conflicts_with = "period")]
        from: Option<u64>,
        /// End of the period (a bare date means the end of that day).
        #[arg(long, value_parser = ringside::cli::report::parse_time_end, conflicts_with = "period")]
        to: Option<u64>,
        /// today, yesterday, this-week, last-week or this-month (UTC).
        #[arg(long)]
        period: Option<ringside::cli::report::Period>,
        /// Event kinds to show (repeatable or comma-separated; `all`), e.g. caller-quit.
        #[arg(long = "event", value_name = "KIND")]
        events: Vec<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this call.
        #[arg(long)]
        call_id: Option<String>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: ringside::cli::report::ReportFormat,
        /// Print statistics per queue and agent instead of events.
        #[arg(long)]
        stats: bool,
        /// Service-level threshold in seconds.
        #[arg(long = "service-level", default_value_t = ringside::cli::report::DEFAULT_SERVICE_LEVEL_S)]
        service_level_s: u32,
    },
    /// Queue report events as JSON Lines (one object per line), for other tools.
    Events {
        /// Asterisk queue_log file to read.
        #[arg(long, value_name = "FILE", required_unless_present = "ami")]
        queue_log: Option<PathBuf>,
        /// Keep reading as the file grows (survives rotation and truncation).
        #[arg(long, conflicts_with = "ami")]
        follow: bool,
        /// Stream live events from an AMI instead (HOST:PORT).
        #[arg(long, value_name = "HOST:PORT", conflicts_with = "queue_log")]
        ami: Option<String>,
        #[command(flatten)]
        credentials: AmiCredentialArgs,
    },
    /// The embedded lab PBX: simulated callers and bot agents in real call queues, writing an
    /// Asterisk-format queue_log (follow it with `ringside events --queue-log FILE --follow`).
    Lab {
        /// Lab settings (agents, queues, simulation); the built-in defaults otherwise.
        #[arg(long = "lab-config", value_name = "FILE")]
        lab_config: Option<PathBuf>,
        /// Where the queue_log goes (default: the data dir's lab-queue_log).
        #[arg(long, value_name = "FILE")]
        queue_log: Option<PathBuf>,
        /// Simulated callers per minute, per queue.
        #[arg(long)]
        callers: Option<f64>,
        /// Bot agents that log in, answer and talk.
        #[arg(long)]
        bots: Option<u32>,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<u64>,
        /// Serve the lab's AMI here (e.g. 127.0.0.1:5038; port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        ami: Option<std::net::SocketAddr>,
        /// Serve SIP here for real phones (UDP, e.g. 127.0.0.1:5060; port 0 picks a free one,
        /// printed at start).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        sip: std::net::SocketAddr,
    },
    /// The supervisor's dashboard: queues, agents, statistics and the event stream, with no
    /// SIP account and no audio. Source: an AMI (live, with actions) or a queue_log (followed).
    Supervise {
        /// The PBX's AMI (HOST:PORT); default: the config's [ami].
        #[arg(long, value_name = "HOST:PORT", conflicts_with = "queue_log")]
        ami: Option<String>,
        /// Follow an Asterisk queue_log instead (report events and statistics only).
        #[arg(long, value_name = "FILE")]
        queue_log: Option<PathBuf>,
        #[command(flatten)]
        credentials: AmiCredentialArgs,
    },
    /// The agent's contacts in the local store: import vCard (.vcf) or CSV, export CSV, list.
    Contacts {
        #[command(subcommand)]
        action: ContactsCmd,
    },
    /// Supervisor actions on a PBX's queues, through its AMI.
    Queue {
        #[command(subcommand)]
        action: QueueCmd,
    },
}

#[derive(clap::Args)]
struct AmiCredentialArgs {
    /// AMI user (a manager.conf section); default $RINGSIDE_AMI_USER.
    #[arg(long, value_name = "NAME")]
    ami_user: Option<String>,
    /// AMI secret; better set RINGSIDE_AMI_SECRET (not visible in ps or shell history).
    #[arg(long, value_name = "TEXT")]
    ami_secret: Option<String>,
}

#[derive(clap::Args)]
struct AmiTarget {
    /// The PBX's AMI (HOST:PORT; port 5038 if omitted).
    #[arg(long, value_name = "HOST:PORT")]
    ami: String,
    #[command(flatten)]
    credentials: AmiCredentialArgs,
}

#[derive(Subcommand)]
enum ContactsCmd {
    /// Import a vCard 3/4 (.vcf) or CSV file; malformed entries are reported by line.
    Import { file: PathBuf },
    /// Export every contact as CSV (to FILE, or to standard output).
    Export { file: Option<PathBuf> },
    /// Name, company, numbers and email of every contact.
    List,
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Connect an agent to a queue (QueueAdd).
    Add {
        queue: String,
        /// The agent's device, e.g. PJSIP/agent1.
        interface: String,
        /// The member name shown in reports.
        #[arg(long)]
        name: Option<String>,
        /// Join paused.
        #[arg(long)]
        paused: bool,
        #[command(flatten)]
        target: AmiTarget,
    },
    /// Disconnect an agent from a queue (QueueRemove).
    Remove {
        queue: String,
        interface: String,
        #[command(flatten)]
        target: AmiTarget,
    },
    /// Pause an agent in a queue, with a reason (QueuePause).
    Pause {
        queue: String,
        interface: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: AmiTarget,
    },
    /// Unpause an agent in a queue.
    Unpause {
        queue: String,
        interface: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: AmiTarget,
    },
}

fn ami_credentials(
    args: &AmiCredentialArgs,
) -> anyhow::Result<ringside::cli::report::AmiCredentials> {
    Ok(ringside::cli::report::AmiCredentials::resolve(
        args.ami_user.as_deref(),
        args.ami_secret.as_deref(),
    )?)
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "ringside").map(|d| d.data_local_dir().to_path_buf())
}

/// Logs go to a file: the terminal belongs to the console.
fn init_logging(path: Option<PathBuf>) -> Option<PathBuf> {
    let path = path.or_else(|| data_dir().map(|d| d.join("ringside.log")))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Some(path)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("ringside: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let log_path = init_logging(cli.log_file.clone());
    if let Some(path) = &log_path {
        let _ = LOG_PATH.set(path.clone());
    }
    // A panic must not leave the terminal in raw mode or dump state (which may hold secrets).
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // The dashboard sends stderr to the log; this line is for the person at the terminal.
        ringside::cli::stderr::restore_for_crash();
        eprintln!("ringside crashed at {location}. This is a bug; please report it with the log.");
        tracing::error!(%location, "panic");
    }));
    // The report commands read files only: no config, no network.
    match &cli.command {
        Some(Cmd::Report {
            queue_log,
            ami,
            csv,
            utc_offset,
            credentials,
            from,
            to,
            period,
            events,
            queue,
            call_id,
            format,
            stats,
            service_level_s,
        }) => {
            let args = ringside::cli::report::ReportArgs {
                queue_log: queue_log.clone(),
                csv: csv.clone(),
                utc_offset_s: utc_offset.unwrap_or(0),
                ami: ami.clone(),
                from: *from,
                to: *to,
                period: *period,
                events: ringside::cli::report::parse_event_kinds(events)?,
                queue: queue.clone(),
                call_id: call_id.clone(),
                format: *format,
                stats: *stats,
                service_level_s: *service_level_s,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let summary = if args.ami.is_some() {
                let creds = ami_credentials(credentials)?;
                current_thread_runtime()?.block_on(ringside::cli::report::run_report_ami(
                    &args, &creds, &mut out,
                ))?
            } else {
                ringside::cli::report::run_report(&args, &mut out)?
            };
            std::io::Write::flush(&mut out)?;
            for warning in &summary.warnings {
                eprintln!("warning: {warning}");
            }
            return Ok(0);
        }
        Some(Cmd::Events {
            queue_log,
            follow,
            ami,
            credentials,
        }) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = std::io::stderr();
            match (ami, queue_log) {
                (Some(addr), _) => {
                    let creds = ami_credentials(credentials)?;
                    current_thread_runtime()?.block_on(ringside::cli::report::run_events_ami(
                        addr, &creds, &mut out, &mut err,
                    ))?;
                }
                (None, Some(path)) => {
                    let stop = std::sync::atomic::AtomicBool::new(false);
                    ringside::cli::report::run_events(path, *follow, &mut out, &mut err, &stop)?;
                }
                (None, None) => anyhow::bail!("give --queue-log FILE or --ami HOST:PORT"),
            }
            return Ok(0);
        }
        Some(Cmd::Lab {
            lab_config,
            queue_log,
            callers,
            bots,
            duration,
            ami,
            sip,
        }) => {
            let mut config = match lab_config {
                Some(path) => ringside::lab::config::LabConfig::load(path)?,
                None => ringside::lab::config::LabConfig::default(),
            };
            if let Some(rate) = callers {
                anyhow::ensure!(
                    rate.is_finite() && (0.0..=6000.0).contains(rate),
                    "--callers {rate}: give callers per minute from 0 to 6000"
                );
                config.simulation.callers_per_minute = *rate;
            }
            if let Some(n) = bots {
                config.simulation.bots = *n;
            }
            let queue_log = queue_log
                .clone()
                .or_else(|| data_dir().map(|d| d.join("lab-queue_log")))
                .unwrap_or_else(|| PathBuf::from("lab-queue_log"));
            let options = ringside::net::lab::LabOptions {
                config,
                queue_log,
                duration: duration.map(std::time::Duration::from_secs),
                status_every: std::time::Duration::from_secs(10),
                seed: seed(),
                ami: *ami,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            current_thread_runtime()?.block_on(async {
                let mut lab = ringside::net::lab::start(options).await?;
                lab.serve_sip(*sip).await?;
                lab.run(&mut out).await
            })?;
            return Ok(0);
        }
        Some(Cmd::Contacts { action }) => {
            let config = Config::find(cli.config.as_deref())?.map(|(_, config)| config);
            let calling_code = config
                .as_ref()
                .and_then(|c| c.dial.default_region.as_deref())
                .and_then(ringside::tui::number::calling_code);
            let dir = cli
                .data_dir
                .clone()
                .or_else(data_dir)
                .context("no data directory: pass --data-dir DIR")?;
            let action = match action {
                ContactsCmd::Import { file } => {
                    ringside::cli::contacts::ContactsAction::Import(file.clone())
                }
                ContactsCmd::Export { file } => {
                    ringside::cli::contacts::ContactsAction::Export(file.clone())
                }
                ContactsCmd::List => ringside::cli::contacts::ContactsAction::List,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            ringside::cli::contacts::run(
                &dir,
                calling_code.as_deref(),
                &action,
                &mut out,
                &mut std::io::stderr(),
            )?;
            std::io::Write::flush(&mut out)?;
            return Ok(0);
        }
        Some(Cmd::Queue { action }) => {
            use ringside::queue::ami_client::AmiAction;
            let (target, action) = match action {
                QueueCmd::Add {
                    queue,
                    interface,
                    name,
                    paused,
                    target,
                } => (
                    target,
                    AmiAction::QueueAdd {
                        queue: queue.clone(),
                        interface: interface.clone(),
                        member_name: name.clone(),
                        paused: *paused,
                    },
                ),
                QueueCmd::Remove {
                    queue,
                    interface,
                    target,
                } => (
                    target,
                    AmiAction::QueueRemove {
                        queue: queue.clone(),
                        interface: interface.clone(),
                    },
                ),
                QueueCmd::Pause {
                    queue,
                    interface,
                    reason,
                    target,
                }
                | QueueCmd::Unpause {
                    queue,
                    interface,
                    reason,
                    target,
                } => (
                    target,
                    AmiAction::QueuePause {
                        queue: Some(queue.clone()),
                        interface: interface.clone(),
                        paused: matches!(action, QueueCmd::Pause { .. }),
                        reason: reason.clone(),
                    },
                ),
            };
            let creds = ami_credentials(&target.credentials)?;
            let answer =
                current_thread_runtime()?.block_on(ringside::net::ami::run_queue_action(
                    &target.ami,
                    &creds.user,
                    creds.secret,
                    action,
                ))?;
            println!("{answer}");
            return Ok(0);
        }
        Some(Cmd::Devices) => {
            return Ok(ringside::cli::devices::run(
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ));
        }
        _ => {}
    }
    let found = Config::find(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let seed = seed();
    match cli.command {
        Some(Cmd::Shell { json, no_register }) => {
            let (path, config) = require_config(found)?;
            let Some(account) = config.account.clone() else {
                anyhow::bail!(
                    "{}: Missing parameter: [account] (the SIP account to use)",
                    path.display()
                );
            };
            runtime.block_on(async {
                let prepared = ringside::net::setup::prepare(&config, &account).await?;
                let driver = ringside::net::sip::spawn(
                    prepared.ua,
                    config.audio.clone(),
                    prepared.socket,
                    seed,
                )
                .await?;
                let history = data_dir().map(|d| d.join("shell_history"));
                Ok(ringside::cli::shell::run(driver, json, !no_register, history).await)
            })
        }
        Some(Cmd::Supervise {
            ami,
            queue_log,
            credentials,
        }) => {
            let config = found.map(|(_, config)| config);
            let ui = load_ui(cli.theme.as_deref(), config.as_ref())?;
            let mut sources = ringside::net::dashboard::Sources::default();
            let source_name;
            if let Some(path) = queue_log {
                source_name = format!("queue_log {}", path.display());
                sources.queue_log = Some(path);
            } else {
                let (addr, user, secret) = match (ami, config.as_ref().and_then(|c| c.ami.clone())) {
                    (Some(addr), _) => {
                        let creds = ami_credentials(&credentials)?;
                        (addr, creds.user, creds.secret)
                    }
                    (None, Some(access)) => (access.address, access.user, access.secret),
                    (None, None) => anyhow::bail!(
                        "supervise needs a source: --ami HOST:PORT (with --ami-user and RINGSIDE_AMI_SECRET), \
                         --queue-log FILE, or an [ami] section in the config"
                    ),
                };
                source_name = format!("AMI {addr}");
                sources.ami = Some(ringside::net::ami::AmiConfig::new(addr, user, secret));
            }
            let live = sources.ami.is_some();
            let app_config = ringside::tui::app::AppConfig {
                mode: ringside::tui::app::Mode::Supervisor,
                account: source_name,
                ami_actions: live,
                live_queue_feed: live,
                default_region: config.as_ref().and_then(|c| c.dial.default_region.clone()),
                utc_offset_s: local_utc_offset_s(),
                ..Default::default()
            };
            let options = dashboard_options(app_config, ui, sources, Vec::new(), false);
            runtime.block_on(run_dashboard(
                options,
                std::future::pending::<anyhow::Result<()>>(),
            ))
        }
        Some(Cmd::Report { .. })
        | Some(Cmd::Events { .. })
        | Some(Cmd::Queue { .. })
        | Some(Cmd::Contacts { .. })
        | Some(Cmd::Lab { .. })
        | Some(Cmd::Devices) => Ok(0),
        Some(Cmd::Check) => {
            let (path, config) = require_config(found)?;
            let Some(account) = config.account.clone() else {
                anyhow::bail!(
                    "{}: Missing parameter: [account] (the SIP account to check)",
                    path.display()
                );
            };
            Ok(runtime.block_on(ringside::cli::check::run(&config, &account, seed)))
        }
        None => {
            let interactive = interactive_terminal();
            match found {
                Some((_, config)) if config.account.is_some() => {
                    let account = config.account.clone().context("account")?;
                    let ui = interactive
                        .then(|| load_ui(cli.theme.as_deref(), Some(&config)))
                        .transpose()?;
                    runtime.block_on(async {
                        let prepared = ringside::net::setup::prepare(&config, &account).await?;
                        let driver = ringside::net::sip::spawn(
                            prepared.ua,
                            config.audio.clone(),
                            prepared.socket,
                            seed,
                        )
                        .await?;
                        let Some(ui) = ui else {
                            // Not a terminal (a pipe, a script): the line-mode console.
                            let history = data_dir().map(|d| d.join("shell_history"));
                            return Ok(
                                ringside::cli::shell::run(driver, false, true, history).await
                            );
                        };
                        let mut sources = ringside::net::dashboard::Sources {
                            sip: Some(driver),
                            store: open_store(cli.data_dir.clone().or_else(data_dir)),
                            email: config.email.clone(),
                            ..Default::default()
                        };
                        if let Some(access) = config.ami.clone() {
                            sources.ami = Some(ringside::net::ami::AmiConfig::new(
                                access.address,
                                access.user,
                                access.secret,
                            ));
                        }
                        let live = sources.ami.is_some();
                        let app_config = ringside::tui::app::AppConfig {
                            mode: ringside::tui::app::Mode::Agent,
                            account: format!("{}@{}", account.username, account.domain),
                            agent: Some(format!("PJSIP/{}", account.username)),
                            queue_codes: config
                                .queues
                                .iter()
                                .map(|q| ringside::tui::app::QueueCodes {
                                    queue: q.name.clone(),
                                    extension: q.extension.clone().unwrap_or_default(),
                                    login_code: q.login.clone(),
                                    logout_code: q.logout.clone(),
                                })
                                .collect(),
                            default_region: config.dial.default_region.clone(),
                            utc_offset_s: local_utc_offset_s(),
                            ami_actions: live,
                            live_queue_feed: live,
                            ..Default::default()
                        };
                        let options = dashboard_options(
                            app_config,
                            ui,
                            sources,
                            Vec::new(),
                            config.ui.notifications,
                        );
                        run_dashboard(options, std::future::pending::<anyhow::Result<()>>()).await
                    })
                }
                _ if interactive => {
                    let ui = load_ui(cli.theme.as_deref(), found.as_ref().map(|(_, c)| c))?;
                    let dir = cli.data_dir.clone().or_else(data_dir);
                    runtime.block_on(run_demo_dashboard(ui, seed, dir))
                }
                _ => runtime.block_on(run_demo(log_path, seed)),
            }
        }
    }
}

/// A few of the lab's callers as contacts, and activities for the demo agent (101) whenever none
/// are planned, so the tabs are alive on first run and after the agent cleared them.
fn seed_demo_desk(mut store: ringside::store::Store) -> ringside::store::Store {
    use ringside::store::{ActivityKind, CivilDate, NewActivity};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let today = CivilDate::from_epoch_seconds(now, i64::from(local_utc_offset_s()))
        .unwrap_or(CivilDate::UNIX_EPOCH);
    store = seed_demo_contacts(store);
    let far = today.add_days(3650).unwrap_or(today);
    if !store
        .due_activities("101", far)
        .unwrap_or_default()
        .is_empty()
    {
        return store;
    }
    let contacts = store.contacts().unwrap_or_default();
    let id_of = |name: &str| contacts.iter().find(|c| c.name == name).map(|c| c.id);
    let plan = [
        (
            ActivityKind::Call,
            "Follow up on the delivery complaint",
            -1,
            Some("Ana Lima"),
        ),
        (
            ActivityKind::Call,
            "Confirm the catering order",
            0,
            Some("Jean Dupont"),
        ),
        (
            ActivityKind::Email,
            "Send the updated quote",
            0,
            Some("Fatima El Amrani"),
        ),
        (
            ActivityKind::Todo,
            "Prepare the weekly queue report",
            1,
            None,
        ),
    ];
    for (kind, summary, days, who) in plan {
        let activity = NewActivity {
            kind,
            summary: summary.to_owned(),
            due: today.add_days(days).unwrap_or(today),
            note: String::new(),
            linked_record: String::new(),
            assignee: "101".to_owned(),
            contact_id: who.and_then(id_of),
        };
        if let Err(error) = store.add_activity(&activity) {
            tracing::warn!(%error, "demo activities");
            break;
        }
    }
    store
}

/// A few of the lab's callers as contacts, so the demo shows names on first run.
fn seed_demo_contacts(mut store: ringside::store::Store) -> ringside::store::Store {
    use ringside::store::NewContact;
    if store.contact_count().unwrap_or(1) > 0 {
        return store;
    }
    let people = [
        ("Jean Dupont", "Brasserie du Parc", "+3225550101"),
        ("Ana Lima", "Lima Logistics", "+3225550107"),
        ("Pieter Claes", "", "+3225550112"),
        ("Fatima El Amrani", "Atelier Amrani", "+3225550124"),
        ("Tom Wouters", "Wouters & Zonen", "+3225550133"),
        ("Grace Okafor", "", "+3225550150"),
    ];
    for (name, company, number) in people {
        let contact = NewContact::named(name)
            .with_company(company)
            .with_phone("work", number);
        if let Err(error) = store.add_contact(&contact) {
            tracing::warn!(%error, "demo contacts");
            break;
        }
    }
    store
}

/// The local store in `dir` (none without a data dir); the dashboard shows an error opening it.
fn open_store(
    dir: Option<PathBuf>,
) -> Option<Result<ringside::store::Store, ringside::store::StoreError>> {
    dir.map(|dir| ringside::store::Store::open_in_dir(&dir))
}

/// Whether a person sits at a terminal (else the line-mode console serves scripts and pipes).
fn interactive_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The local time's offset from UTC for the dashboard clock, from `date +%z` (the system's
/// zone rules, without a time-zone database of our own); UTC when it cannot be had.
fn local_utc_offset_s() -> i32 {
    let Ok(output) = std::process::Command::new("date").arg("+%z").output() else {
        return 0;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let text = text.trim();
    let (sign, digits) = match text.split_at_checked(1) {
        Some(("+", d)) => (1, d),
        Some(("-", d)) => (-1, d),
        _ => return 0,
    };
    let (Some(hours), Some(minutes)) = (
        digits.get(0..2).and_then(|h| h.parse::<i32>().ok()),
        digits.get(2..4).and_then(|m| m.parse::<i32>().ok()),
    ) else {
        return 0;
    };
    sign * (hours * 3600 + minutes * 60)
}

/// The theme and keymap the dashboard uses, and the keymap's clashes to report.
struct UiChoice {
    theme: ringside::tui::theme::Theme,
    keymap: ringside::tui::keymap::Keymap,
    clashes: Vec<String>,
}

fn load_ui(cli_theme: Option<&str>, config: Option<&Config>) -> anyhow::Result<UiChoice> {
    use ringside::tui::{keymap::Keymap, theme};
    let config_dir = Config::default_path().and_then(|p| p.parent().map(PathBuf::from));
    let theme_dir = config_dir.as_ref().map(|d| d.join("themes"));
    let requested = cli_theme.or_else(|| config.and_then(|c| c.ui.theme.as_deref()));
    let no_color = theme::no_color(std::env::var_os("NO_COLOR").as_deref());
    let theme = theme::select(requested, no_color, theme_dir.as_deref())?;
    let keymap_path = config
        .and_then(|c| c.ui.keymap.clone())
        .or_else(|| config_dir.map(|d| d.join("keymap.toml")));
    let keymap = match keymap_path {
        Some(path) => Keymap::load(&path)?,
        None => Keymap::default(),
    };
    let clashes = keymap.clashes().iter().map(ToString::to_string).collect();
    Ok(UiChoice {
        theme,
        keymap,
        clashes,
    })
}

fn dashboard_options(
    config: ringside::tui::app::AppConfig,
    ui: UiChoice,
    sources: ringside::net::dashboard::Sources,
    connect_on_register: Vec<String>,
    desktop_notifications: bool,
) -> ringside::net::dashboard::DashboardOptions {
    let mut app = ringside::tui::app::App::new(config, ui.keymap);
    if !ui.clashes.is_empty() {
        for clash in &ui.clashes {
            tracing::warn!(%clash, "keymap clash");
        }
        app.update(ringside::tui::app::Input::CommandFailed(format!(
            "keymap: {} (fix keymap.toml)",
            ui.clashes.join("; ")
        )));
    }
    ringside::net::dashboard::DashboardOptions {
        app,
        theme: ui.theme,
        sources,
        connect_on_register,
        desktop_notifications,
    }
}

async fn run_dashboard<E: std::fmt::Display>(
    options: ringside::net::dashboard::DashboardOptions,
    background: impl std::future::Future<Output = Result<(), E>>,
) -> anyhow::Result<i32> {
    // C libraries (ALSA) write to fd 2 from any thread: into the log, not over the screen.
    let _stderr = LOG_PATH.get().and_then(|log| {
        ringside::cli::stderr::StderrToLog::start(log)
            .map_err(|error| tracing::warn!(%error, "stderr stays on the terminal"))
            .ok()
    });
    ringside::net::dashboard::run(options, background).await?;
    Ok(0)
}

/// The log file, once logging is up: the dashboard sends stderr there too.
static LOG_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The demo on the dashboard: the lab in-process, the console as agent 101 joining support.
async fn run_demo_dashboard(
    ui: UiChoice,
    seed: u64,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let (mut lab, lab_config, queue_log) = start_demo_lab(seed).await?;
    let sip = lab
        .serve_sip(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await?;
    let ami = lab.ami_addr().context("the lab's AMI did not start")?;
    let toml = format!(
        "[account]\nusername = \"101\"\npassword = \"lab101\"\ndisplay_name = \"Demo Agent\"\ndomain = \"{sip}\"\n\
         [network]\nbind = \"127.0.0.1:0\"\n[audio]\ndevice = \"none\"\n"
    );
    let config = Config::from_toml_str(&toml, std::path::Path::new("demo"))?;
    let account = config.account.clone().context("demo account")?;
    let prepared = ringside::net::setup::prepare(&config, &account).await?;
    let driver =
        ringside::net::sip::spawn(prepared.ua, config.audio.clone(), prepared.socket, seed).await?;
    let where_ = Config::default_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/ringside/config.toml".into());
    let app_config = ringside::tui::app::AppConfig {
        mode: ringside::tui::app::Mode::Agent,
        account: format!("DEMO 101@lab {sip}"),
        agent: Some("PJSIP/101".to_owned()),
        queue_codes: lab_config
            .queues
            .iter()
            .map(ringside::tui::app::QueueCodes::from)
            .collect(),
        utc_offset_s: local_utc_offset_s(),
        ami_actions: true,
        live_queue_feed: true,
        standing_hint: Some(format!(
            "DEMO on the embedded lab PBX. To use your PBX: copy config.example.toml to {where_}. Lab AMI {ami} (lab/lab), queue_log {}",
            queue_log.display()
        )),
        ..Default::default()
    };
    let sources = ringside::net::dashboard::Sources {
        sip: Some(driver),
        ami: Some(ringside::net::ami::AmiConfig::new(
            ami.to_string(),
            "lab",
            ringside::config::Secret::new("lab".to_owned()),
        )),
        queue_log: None,
        // The demo keeps its own history and contacts, apart from the user's.
        store: open_store(data_dir.map(|d| d.join("demo"))).map(|store| store.map(seed_demo_desk)),
        // The demo sends no email: E says how to configure [email].
        email: None,
    };
    let options = dashboard_options(app_config, ui, sources, vec!["support".to_owned()], false);
    let mut sink = std::io::sink();
    run_dashboard(options, lab.run(&mut sink)).await
}

/// The demo's lab: lively enough that the agent at the keyboard gets calls, with bots beside.
async fn start_demo_lab(
    seed: u64,
) -> anyhow::Result<(
    ringside::net::lab::Lab,
    ringside::lab::config::LabConfig,
    PathBuf,
)> {
    let mut lab_config = ringside::lab::config::LabConfig::default();
    lab_config.simulation.callers_per_minute = 4.0;
    lab_config.simulation.bots = 2;
    let queue_log = data_dir()
        .map(|d| d.join("lab-queue_log"))
        .unwrap_or_else(|| PathBuf::from("lab-queue_log"));
    let options = ringside::net::lab::LabOptions {
        config: lab_config.clone(),
        queue_log: queue_log.clone(),
        duration: None,
        status_every: std::time::Duration::from_secs(3600),
        seed,
        ami: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let lab = ringside::net::lab::start(options).await?;
    Ok((lab, lab_config, queue_log))
}

/// `ringside` with no account: the embedded lab PBX in-process on free loopback ports, the
/// console registered as its agent 101 and logged into `support`, simulated callers and bots.
async fn run_demo(log_path: Option<PathBuf>, seed: u64) -> anyhow::Result<i32> {
    let (mut lab, _, queue_log) = start_demo_lab(seed).await?;
    let sip = lab
        .serve_sip(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await?;
    let ami = lab.ami_addr();
    let where_ = Config::default_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/ringside/config.toml".into());
    println!(
        "ringside {} — DEMO: no SIP account is configured, so this is the embedded lab PBX.",
        env!("CARGO_PKG_VERSION")
    );
    println!("  lab PBX on sip:{sip}: queues support (600) and sales (700), simulated callers, 2 bot agents");
    if let Some(ami) = ami {
        println!(
            "  its AMI on {ami} (user lab, secret lab): ringside report --ami {ami} --ami-user lab"
        );
    }
    println!("  queue_log: {}", queue_log.display());
    println!("  You are agent 101, logging into support with *600. Queue calls ring here: 'answer', 'hangup', 'hold', 'transfer 102' … 'help' lists all.");
    println!(
        "  To use your PBX instead: copy config.example.toml to {where_} and fill in [account]."
    );
    if let Some(p) = log_path {
        println!("  Logs: {}", p.display());
    }
    let toml = format!(
        "[account]\nusername = \"101\"\npassword = \"lab101\"\ndisplay_name = \"Demo Agent\"\ndomain = \"{sip}\"\n\
         [network]\nbind = \"127.0.0.1:0\"\n[audio]\ndevice = \"none\"\n"
    );
    let config = Config::from_toml_str(&toml, std::path::Path::new("demo"))?;
    let account = config.account.clone().context("demo account")?;
    let prepared = ringside::net::setup::prepare(&config, &account).await?;
    let driver =
        ringside::net::sip::spawn(prepared.ua, config.audio.clone(), prepared.socket, seed).await?;
    let history = data_dir().map(|d| d.join("shell_history"));
    // The terminal belongs to the shell: the lab's status lines go nowhere.
    let mut sink = std::io::sink();
    let shell = ringside::cli::shell::run_with_startup(
        driver,
        false,
        true,
        history,
        &["wait registered 10", "dial *600"],
    );
    tokio::select! {
        code = shell => Ok(code),
        result = lab.run(&mut sink) => {
            result?;
            Ok(0)
        }
    }
}

fn require_config(found: Option<(PathBuf, Config)>) -> anyhow::Result<(PathBuf, Config)> {
    found.ok_or_else(|| {
        let where_ = Config::default_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the XDG config dir".into());
        anyhow::anyhow!(
            "no config file at {where_}: create it from config.example.toml or pass --config FILE"
        )
    })
}

/// Randomness for tags, branches and Call-IDs: different per run, from the clock and the PID.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
