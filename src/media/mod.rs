//! Media, sans-IO except `device` and `sound_card`: RTP/RTCP, codecs, jitter buffer, DTMF, tones, and the audio
//! devices the media task reads and writes once per frame.

pub mod codec;
pub mod device;
pub mod dtmf;
pub mod jitter;
pub mod quality;
pub mod resample;
pub mod ring;
pub mod rtcp;
pub mod rtp;
pub mod session;
#[cfg(feature = "sound-card")]
pub mod sound_card;
pub mod tones;
