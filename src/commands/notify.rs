//! `qbackup notify test --target NAME`: send a sample event to one target.

use clap::{Args, Subcommand, ValueEnum};

use crate::clock::{Clock, SystemClock, rfc3339};
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

use super::{Printer, outln};
use crate::notify::{Event, Notifier, Outcome};

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample event to one `[[notify]]` target, ignoring its `on` filter
    /// and repeat suppression, to check the setup
    Test(TestArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutcomeArg {
    Success,
    Partial,
    Failed,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The target's name in the config
    #[arg(long, short = 't', value_name = "NAME")]
    pub target: String,
    /// The outcome the sample event reports (healthchecks: which ping)
    #[arg(long, value_enum, default_value = "partial")]
    pub outcome: OutcomeArg,
}

pub fn run(config: &Config, a: &NotifyArgs, p: &Printer) -> Result<ExitStatus, Error> {
    match &a.command {
        NotifyCommand::Test(t) => test(config, t, p),
    }
}

fn test(config: &Config, a: &TestArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let Some(target) = config.notify.iter().find(|t| t.name == a.target) else {
        let known = if config.notify.is_empty() {
            "none".to_string()
        } else {
            config
                .notify
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::Usage(format!(
            "no [[notify]] target named {:?} in {}; configured: {known}",
            a.target,
            config.path.display()
        )));
    };
    let instance = target
        .instances
        .as_ref()
        .and_then(|l| l.first())
        .or_else(|| config.instances.first().map(|i| &i.name))
        .cloned()
        .unwrap_or_else(|| "example".into());
    let outcome = match a.outcome {
        OutcomeArg::Success => Outcome::Success,
        OutcomeArg::Partial => Outcome::Partial,
        OutcomeArg::Failed => Outcome::Failed,
    };
    let clock = SystemClock;
    let event = Event::sample(&instance, outcome, &rfc3339(clock.now()));
    let db = super::open_store(config, p)?.db_path();
    let notifier = Notifier::new(&config.notify, &clock, Some(db))
        .map_err(|e| Error::Usage(format!("cannot send notifications: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    let d = rt.block_on(notifier.send_now(target, &event));
    if p.is_json() {
        p.json(&d);
    } else if d.delivered() {
        outln!(
            p,
            "{}: test notification ({}) delivered ({} attempt{})",
            d.target,
            target.format.as_str(),
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        );
    } else {
        outln!(
            p,
            "{}: test notification ({}) failed: {}",
            d.target,
            target.format.as_str(),
            super::summary::text(d.error.as_deref().unwrap_or("unknown error"))
        );
    }
    Ok(if d.delivered() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}
