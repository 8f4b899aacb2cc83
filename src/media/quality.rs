//! Call quality: the ITU-T G.107 E-model reduced to what a softphone measures (one-way delay,
//! packet loss, codec), giving an R-factor and the MOS people know from call-center reports.

use std::time::Duration;

/// Codec impairment (Ie) and packet-loss robustness (Bpl), both on the narrowband E-model
/// scale (R up to 93.2) for every codec: G.107.1's wideband scale would rate G.722 and Opus
/// above G.711, but one scale keeps the MOS comparable across calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    pub ie: f64,
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment, ITU-T G.113 Appendix I: Ie 0, Bpl 25.1 (4.3 without
    /// concealment, which we always do).
    pub const G711: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
    /// G.722 at 64 kbit/s: on the narrowband scale it has no coding impairment a 3.1 kHz
    /// listener would hear, and it shares G.711's concealment, so it rates as G.711.
    pub const G722: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
    /// Opus as we run it (24 kbit/s wideband SILK, in-band FEC asked for in our fmtp and
    /// decoded when a packet is missing). ITU-T G.113 has no Opus planning values; these come
    /// from benches/audio_quality.sh by the ITU-T P.834 method (Ie and Bpl from an instrumental
    /// score, PESQ P.862 at 8 kHz, G.711 as the Ie = 0 anchor, R from G.107's MOS curve):
    /// clean Opus scored 3.55 against G.711's 3.99, i.e. R 10 lower, so Ie = 10 (inside the
    /// 0-11 the literature reports around 24 kbit/s); at 5.2 % random loss + 30 ms jitter, mean
    /// of six seeds, ringside's Opus kept Ie,eff at 15 (Bpl ≈ 80) where G.711 fell to 24
    /// (Bpl ≈ 15 by the same method, harsher than G.113's 25.1, so 80 is on the safe side).
    /// A peer that sends no FEC gets concealment only: the same method gave Bpl ≈ 24 for a
    /// decoder that ignores FEC, so for such peers this estimate is optimistic under loss.
    pub const OPUS: CodecImpairment = CodecImpairment {
        ie: 10.0,
        bpl: 80.0,
    };

    pub fn for_codec(name: &str) -> CodecImpairment {
        match name.to_ascii_uppercase().as_str() {
            "G722" => CodecImpairment::G722,
            "OPUS" => CodecImpairment::OPUS,
            _ => CodecImpairment::G711,
        }
    }
}

/// What the quality estimate is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInputs {
    /// Mouth-to-ear delay one way: half the RTCP round trip, plus jitter-buffer and codec delay.
    pub one_way_delay: Duration,
    /// Packets lost (including those discarded as too late), 0.0 to 1.0.
    pub loss_ratio: f64,
    pub codec: CodecImpairment,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub r_factor: f64,
    pub mos: f64,
}

impl Quality {
    /// A word for the call pane.
    pub fn label(&self) -> &'static str {
        match self.mos {
            m if m >= 4.3 => "excellent",
            m if m >= 4.0 => "good",
            m if m >= 3.6 => "fair",
            m if m >= 3.1 => "poor",
            _ => "bad",
        }
    }
}

/// R = R0 − Is − Id − Ie,eff + A with the G.107 defaults (R0 − Is = 93.2, A = 0).
pub fn estimate(inputs: QualityInputs) -> Quality {
    let d = inputs.one_way_delay.as_secs_f64() * 1000.0;
    // Delay impairment, the usual simplification of G.107's Idd for d in ms.
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = (inputs.loss_ratio.clamp(0.0, 1.0)) * 100.0;
    let ie_eff = inputs.codec.ie + (95.0 - inputs.codec.ie) * ppl / (ppl + inputs.codec.bpl);
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    Quality {
        r_factor: r,
        mos: mos_from_r(r),
    }
}

/// G.107 Annex B: MOS (conversational quality) from R.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(delay_ms: u64, loss: f64) -> Quality {
        estimate(QualityInputs {
            one_way_delay: Duration::from_millis(delay_ms),
            loss_ratio: loss,
            codec: CodecImpairment::G711,
        })
    }

    #[test]
    fn a_clean_short_call_is_excellent() {
        let clean = q(20, 0.0);
        assert!((clean.r_factor - 92.72).abs() < 0.01, "{clean:?}");
        assert!((clean.mos - 4.40).abs() < 0.01, "{clean:?}");
        assert_eq!(clean.label(), "excellent");
    }

    #[test]
    fn loss_and_delay_lower_the_score_monotonically() {
        let mut last = 5.0;
        for loss in [0.0, 0.01, 0.03, 0.05, 0.10, 0.20] {
            let m = q(80, loss).mos;
            assert!(m < last, "loss {loss}: {m} !< {last}");
            last = m;
        }
        // 5 % loss on G.711 with PLC: Ie,eff = 95·5/(5+25.1) = 15.78 → R ≈ 75.5 → MOS ≈ 3.8.
        let five = q(80, 0.05);
        assert!((five.r_factor - 75.5).abs() < 0.2, "{five:?}");
        assert!(q(400, 0.0).mos < q(150, 0.0).mos);
        assert_eq!(mos_from_r(-3.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
    }

    fn mos(codec: &str, loss: f64) -> f64 {
        estimate(QualityInputs {
            one_way_delay: Duration::from_millis(60),
            loss_ratio: loss,
            codec: CodecImpairment::for_codec(codec),
        })
        .mos
    }

    #[test]
    fn opus_starts_below_g711_but_holds_up_better_under_loss() {
        // Clean: Opus's Ie of 10 costs R 10 (G.711: R 91.76 → MOS 4.38; Opus 81.76 → 4.09).
        assert!(
            (mos("PCMU", 0.0) - 4.38).abs() < 0.01,
            "{}",
            mos("PCMU", 0.0)
        );
        assert!(
            (mos("opus", 0.0) - 4.09).abs() < 0.01,
            "{}",
            mos("opus", 0.0)
        );
        // 5 %: G.711's Ie,eff = 95·5/30.1 = 15.8; Opus's 10 + 85·5/85 = 15.0.
        assert!(mos("opus", 0.05) > mos("PCMU", 0.05));
        // 10 %: FEC's advantage grows (G.711 Ie,eff 26.5, Opus 19.4).
        let gap = |loss| mos("OPUS", loss) - mos("PCMA", loss);
        assert!(gap(0.0) < 0.0 && gap(0.05) > 0.0 && gap(0.10) > gap(0.05) + 0.2);
        // G.722 rates as G.711 on the narrowband scale; unknown names fall back to G.711.
        assert_eq!(mos("G722", 0.05), mos("PCMU", 0.05));
        assert_eq!(CodecImpairment::for_codec("g729"), CodecImpairment::G711);
    }
}
