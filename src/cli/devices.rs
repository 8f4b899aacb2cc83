//! `ringside devices`: the sound cards, with the names `[audio]` accepts.

use std::io::Write;

#[cfg(feature = "sound-card")]
use crate::media::sound_card::{list_devices, DeviceInfo};

/// One line per device: name, what it does, its rate, and its id (also accepted as a name).
#[cfg(feature = "sound-card")]
pub fn render(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "no sound cards found (ALSA lists none). Calls still work with [audio] device = \"none\" or \"file\".\n".to_owned();
    }
    let mut text = String::new();
    for device in devices {
        let mut roles = Vec::new();
        if device.input {
            roles.push(if device.default_input {
                "input (default)"
            } else {
                "input"
            });
        }
        if device.output {
            roles.push(if device.default_output {
                "output (default)"
            } else {
                "output"
            });
        }
        if roles.is_empty() {
            roles.push("unusable now");
        }
        let format = match (device.sample_rate, device.channels) {
            (Some(rate), Some(channels)) => format!("{rate} Hz, {channels} ch"),
            _ => "format unknown".to_owned(),
        };
        text.push_str(&format!(
            "{:<32} {:<34} {:<16} {}\n",
            device.name,
            roles.join(", "),
            format,
            device.id
        ));
    }
    text.push_str("\nPut a name (or id) in [audio] device, or input / output for one direction.\n");
    text
}

/// Prints the list; returns the exit code (1 when the sound system cannot be asked).
pub fn run(out: &mut impl Write, err: &mut impl Write) -> i32 {
    #[cfg(feature = "sound-card")]
    {
        match list_devices() {
            Ok(devices) => {
                let _ = out.write_all(render(&devices).as_bytes());
                0
            }
            Err(error) => {
                let _ = writeln!(err, "{error}");
                1
            }
        }
    }
    #[cfg(not(feature = "sound-card"))]
    {
        let _ = out;
        let _ = writeln!(
            err,
            "this ringside was built without sound-card support (cargo feature `sound-card`, which needs libasound2-dev); only [audio] device = \"none\" and \"file\" exist"
        );
        1
    }
}

#[cfg(all(test, feature = "sound-card"))]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_roles_rates_and_ids() {
        let devices = [DeviceInfo {
            name: "USB Headset".into(),
            id: "alsa:hw:CARD=H,DEV=0".into(),
            input: true,
            output: true,
            default_input: false,
            default_output: true,
            sample_rate: Some(48000),
            channels: Some(2),
        }];
        let text = render(&devices);
        assert!(text.starts_with("USB Headset "), "{text}");
        assert!(text.contains("input, output (default)"), "{text}");
        assert!(text.contains("48000 Hz, 2 ch"), "{text}");
        assert!(text.contains("alsa:hw:CARD=H,DEV=0"), "{text}");
        assert!(render(&[]).contains("no sound cards found"));
    }

    #[test]
    fn listing_never_panics_and_keeps_alsa_off_stderr() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run(&mut out, &mut err);
        assert!(code == 0 || !err.is_empty());
    }
}
