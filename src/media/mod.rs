//! Media, sans-IO except `device`: RTP/RTCP, codecs, jitter buffer, DTMF, tones, and the audio
//! devices the media task reads and writes once per frame.

pub mod codec;
pub mod device;
pub mod dtmf;
pub mod jitter;
pub mod quality;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod tones;
