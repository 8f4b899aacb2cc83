//! Turning the account config into what the sans-IO core needs: names resolved to addresses,
//! the SIP socket bound, and our own address as the PBX will see it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::config::{AccountConfig, Config, ProxyUri, Transport as ConfigTransport};
use crate::sip::msg::Uri;
use crate::sip::sdp::Codec;
use crate::sip::transaction::{Target, Timers, Transport};
use crate::sip::ua::{host_for_uri_text, UaConfig};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{key}: cannot resolve {host}: {reason}. Check the name, or use the PBX's IP address")]
    Dns {
        key: &'static str,
        host: String,
        reason: String,
    },
    #[error("[network].bind: cannot listen on {addr}: {error}. Pick another port, or 0 for any free one")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("no network route to {addr}: {error}")]
    Route {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

pub struct Prepared {
    pub ua: UaConfig,
    pub socket: UdpSocket,
    /// The PBX hop we send to, for messages.
    pub hop: SocketAddr,
}

fn transport(t: ConfigTransport) -> Transport {
    match t {
        ConfigTransport::Udp => Transport::Udp,
        ConfigTransport::Tcp => Transport::Tcp,
    }
}

async fn resolve(key: &'static str, proxy: &ProxyUri) -> Result<SocketAddr, SetupError> {
    let port = proxy.port.unwrap_or(5060);
    if let Ok(ip) = proxy.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((proxy.host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| SetupError::Dns {
            key,
            host: proxy.host.clone(),
            reason: "no address found".into(),
        }),
        Ok(Err(error)) => Err(SetupError::Dns {
            key,
            host: proxy.host.clone(),
            reason: error.to_string(),
        }),
        Err(_) => Err(SetupError::Dns {
            key,
            host: proxy.host.clone(),
            reason: "the DNS lookup timed out after 5 s".into(),
        }),
    }
}

fn proxy_uri(proxy: &ProxyUri) -> Uri {
    let mut uri = Uri::sip(None, &host_for_uri_text(&proxy.host), proxy.port);
    if proxy.transport == ConfigTransport::Tcp {
        uri.set_param("transport", Some("tcp".into()));
    }
    uri
}

/// Resolve, bind and fill in the core's config.
pub async fn prepare(config: &Config, account: &AccountConfig) -> Result<Prepared, SetupError> {
    let (hop_key, hop_proxy) = match &account.outbound_proxy {
        Some(p) => ("[account].outbound_proxy", p),
        None => ("[account].registrar", &account.registrar),
    };
    let hop = resolve(hop_key, hop_proxy).await?;
    let bind = config.network.bind;
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|error| SetupError::Bind { addr: bind, error })?;
    let bound = socket
        .local_addr()
        .map_err(|error| SetupError::Bind { addr: bind, error })?;
    // Listening on every interface: find the address the route to the PBX leaves from, which
    // is the one it can reach us on.
    let local_ip = if bound.ip().is_unspecified() {
        let probe = std::net::UdpSocket::bind(SocketAddr::new(
            if hop.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([0u16; 8])
            },
            0,
        ))
        .map_err(|error| SetupError::Route { addr: hop, error })?;
        probe
            .connect(hop)
            .map_err(|error| SetupError::Route { addr: hop, error })?;
        probe
            .local_addr()
            .map_err(|error| SetupError::Route { addr: hop, error })?
            .ip()
    } else {
        bound.ip()
    };
    let local = SocketAddr::new(local_ip, bound.port());
    let sip_transport = transport(hop_proxy.transport);
    let timers = Timers {
        t1: config.sip.timers.t1,
        t2: config.sip.timers.t2,
        t4: config.sip.timers.t4,
    };
    let ua = UaConfig {
        username: account.username.clone(),
        auth_username: account.auth_username.clone(),
        password: account.password.clone(),
        display_name: account.display_name.clone(),
        domain: account.domain.clone(),
        registrar: proxy_uri(&account.registrar),
        outbound: Target {
            transport: sip_transport,
            addr: hop,
        },
        outbound_proxy: account.outbound_proxy.as_ref().map(proxy_uri),
        transport: sip_transport,
        local,
        expires: account.expires,
        user_agent: config.sip.user_agent_or_default(env!("CARGO_PKG_VERSION")),
        timers,
        reject_incoming: account
            .reject_incoming
            .then(|| account.reject_with.status_code()),
        auto_answer: account.auto_answer,
        external_device: account.external_device.clone(),
        accept_refer: account.accept_refer,
        media_ip: local_ip,
        rtp_ports: config.audio.rtp_ports,
        codecs: config
            .audio
            .codecs
            .iter()
            .filter_map(|name| match name.as_str() {
                "PCMU" => Some(Codec::pcmu()),
                "PCMA" => Some(Codec::pcma()),
                "G722" => Some(Codec::g722()),
                "opus" => Some(Codec::opus(crate::sip::sdp::OPUS_PAYLOAD_TYPE)),
                _ => None,
            })
            .collect(),
        telephone_event: Some(101),
        // The media engine sends RFC 4733 events when the peer negotiated telephone-event.
        rtp_dtmf: true,
        subscribe_mwi: true,
    };
    Ok(Prepared { ua, socket, hop })
}
