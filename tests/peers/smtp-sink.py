#!/usr/bin/python3
"""A throwaway SMTP server for tests/mail_peer.rs, built on Debian's python3-aiosmtpd.

smtp-sink.py --port PORT --store DIR [--starttls CERT KEY] [--smtps CERT KEY]
             [--auth USER:PASSWORD [--no-auth-plain]]

Listens on 127.0.0.1:PORT only. Every accepted message is written to DIR/NNN.eml exactly as
received (after SMTP's dot-unstuffing) with DIR/NNN.json holding the envelope, whether the
session used TLS and who logged in. Prints "ready" once listening; runs until SIGTERM/SIGINT.
--starttls offers STARTTLS and requires it before MAIL; --smtps speaks TLS from the first
byte; --auth requires AUTH (PLAIN or LOGIN) with that user and password.
"""
import argparse
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            number = self.count
        base = os.path.join(self.directory, "%03d" % number)
        with open(base + ".eml.tmp", "wb") as out:
            out.write(envelope.original_content)
        info = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # session.ssl is only set by STARTTLS; implicit TLS shows on the transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data.login.decode("utf-8", "replace")
            if isinstance(session.auth_data, LoginPassword) else None,
            "helo": session.host_name,
        }
        with open(base + ".json", "w") as out:
            json.dump(info, out)
        # Renamed last: the test polls for *.eml and must never see half a message.
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 stored as %03d" % number


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", metavar="USER:PASSWORD")
    parser.add_argument("--no-auth-plain", action="store_true",
                        help="offer only AUTH LOGIN")
    args = parser.parse_args()
    os.makedirs(args.store, exist_ok=True)

    server_kwargs = {}
    controller_kwargs = {}
    if args.starttls:
        server_kwargs["tls_context"] = tls_context(*args.starttls)
        server_kwargs["require_starttls"] = True
    if args.smtps:
        controller_kwargs["ssl_context"] = tls_context(*args.smtps)
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login == user.encode()
                  and auth_data.password == password.encode())
            # handled=False: aiosmtpd then answers a failure with 535 itself.
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        server_kwargs["authenticator"] = authenticator
        server_kwargs["auth_required"] = True
        # Loopback test server: TLS is still required unless neither TLS mode is on.
        server_kwargs["auth_require_tls"] = bool(args.starttls)
        if args.no_auth_plain:
            server_kwargs["auth_exclude_mechanism"] = ["PLAIN"]

    controller = Controller(
        Store(args.store),
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="sink.test",
        **server_kwargs,
        **controller_kwargs,
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
