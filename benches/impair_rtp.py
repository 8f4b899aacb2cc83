#!/usr/bin/env python3
"""Seeded network impairment of a captured RTP stream, for benches/audio_quality.sh.

usage: impair_rtp.py PACKETS.txt LOSS_PERCENT JITTER_MS SEED OUT.txt OUT.pcap
PACKETS.txt has `<seconds> <hex datagram>` per line (tshark -e frame.time_relative
-e udp.payload). Each packet is dropped with LOSS_PERCENT and otherwise delayed by
20 ms + uniform(0, JITTER_MS), the model and xorshift generator of tests/sim_media.rs, so
later packets can overtake earlier ones. Writes the survivors in arrival order twice: as text
for examples/rtp_replay.rs and as a classic pcap (Ethernet/IPv4/UDP, 127.0.0.1) that SIPp's
play_pcap_audio sends with the same timing.
"""
import struct
import sys

MASK = (1 << 64) - 1


class XorShift:
    def __init__(self, seed):
        self.state = (seed | 1) & MASK

    def next(self):
        x = self.state
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        self.state = x
        return x


def frame(datagram):
    udp = struct.pack("!HHHH", 40000, 40000, 8 + len(datagram), 0) + datagram
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    return b"\0" * 12 + b"\x08\x00" + ip + udp


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    source, loss, jitter, seed, out_text, out_pcap = sys.argv[1:]
    loss, jitter, seed = int(loss), int(jitter), int(seed)
    rng = XorShift(seed)
    arrivals = []
    with open(source) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) != 2:
                continue
            sent, datagram = float(fields[0]), bytes.fromhex(fields[1].replace(":", ""))
            if len(datagram) < 12 or 200 <= datagram[1] <= 204:
                continue  # RTCP (SR, RR, SDES, BYE, APP) goes to another port
            if loss and rng.next() % 100 < loss:
                continue
            delay_ms = 20 + (rng.next() % jitter if jitter else 0)
            arrivals.append((sent + delay_ms / 1000.0, datagram))
    arrivals.sort(key=lambda a: a[0])
    with open(out_text, "w") as text, open(out_pcap, "wb") as pcap:
        pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for at, datagram in arrivals:
            text.write(f"{at:.6f} {datagram.hex()}\n")
            packet = frame(datagram)
            seconds = int(at)
            micros = int(round((at - seconds) * 1e6))
            if micros >= 1_000_000:
                seconds, micros = seconds + 1, micros - 1_000_000
            pcap.write(struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet)
    print(f"{len(arrivals)} packets kept")


if __name__ == "__main__":
    main()
