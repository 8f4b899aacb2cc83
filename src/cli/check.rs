//! `ringside check`: validate the config and try one registration, with a diagnosis a person
//! can act on.

use std::time::Duration;

use crate::config::{AccountConfig, Config};
use crate::net::setup::{prepare, SetupError};
use crate::net::sip::{spawn, DriverCommand, DriverOutput};
use crate::sip::ua::{Command, UaEvent};

/// How long we wait for the registrar before calling it unreachable. Shorter than Timer F
/// (32 s): a person is waiting at the terminal.
const REGISTER_PATIENCE: Duration = Duration::from_secs(12);

pub async fn run(config: &Config, account: &AccountConfig, seed: u64) -> i32 {
    println!(
        "config: OK (user {} at {})",
        account.username, account.domain
    );
    let prepared = match prepare(config, account).await {
        Ok(p) => p,
        Err(error) => {
            println!("FAILED: {error}");
            return match error {
                SetupError::Dns { .. } => 2,
                _ => 1,
            };
        }
    };
    let hop = prepared.hop;
    let transport = format!("{:?}", prepared.ua.transport).to_ascii_lowercase();
    println!("network: sending to {hop} over {transport}");
    let mut driver = match spawn(prepared.ua, config.audio.clone(), prepared.socket, seed).await {
        Ok(d) => d,
        Err(error) => {
            println!("FAILED: cannot start the SIP driver: {error}");
            return 1;
        }
    };
    let _ = driver.commands.send(DriverCommand::Ua(Command::Register));
    let deadline = tokio::time::Instant::now() + REGISTER_PATIENCE;
    let code = loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                println!(
                    "FAILED: no answer from {hop} ({transport}) within {} s: is the PBX running and \
                     reachable from here? Check [account].registrar / outbound_proxy, the port, and firewalls",
                    REGISTER_PATIENCE.as_secs()
                );
                break 1;
            }
            output = driver.outputs.recv() => match output {
                Some(DriverOutput::Event(UaEvent::Registered { aor, contact, expires })) => {
                    println!("registration: OK — {aor} bound to {contact} for {expires} s");
                    break 0;
                }
                Some(DriverOutput::Event(UaEvent::RegistrationFailed { message, .. })) => {
                    // The core's message already names the cause; the retry it mentions is the
                    // console's, not check's.
                    let cause = message.split(" — retrying").next().unwrap_or(&message);
                    println!("FAILED: {cause}");
                    break 1;
                }
                Some(_) => {}
                None => break 1,
            },
        }
    };
    let _ = driver.commands.send(DriverCommand::Shutdown {
        grace: Duration::from_secs(2),
    });
    let stop = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(stop) => break,
            output = driver.outputs.recv() => match output {
                Some(DriverOutput::Stopped) | None => break,
                Some(_) => {}
            },
        }
    }
    code
}
