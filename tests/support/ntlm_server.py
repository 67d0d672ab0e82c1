#!/usr/bin/env python3
"""A real NTLM acceptor for tests/ntlm.rs: an HTTP/1.1 server on 127.0.0.1 that authenticates
connections with pyspnego's NTLM server context, which verifies the client's NTLMv2 response
against the password in the NTLM_USER_FILE credential store (pyspnego's documented format:
"DOMAIN:USER:PASSWORD", or ":user@REALM:PASSWORD" for a UPN). Like IIS, authentication is per
connection: a request without Authorization on an authenticated connection is served, on any
other connection it gets 401 with the offered schemes. Authenticated POSTs are answered with the
project's recorded EWS fixtures, chosen by operation.

Usage: ntlm_server.py FIXTURES_DIR LOG_FILE [both|negotiate-only] [CERT_PEM KEY_PEM]
With CERT_PEM and KEY_PEM it serves https (TLS) instead of http.
Prints the port on the first line of stdout, then serves until killed."""
import base64, os, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego

FIX = sys.argv[1]
LOG = sys.argv[2]
NEGOTIATE_ONLY = len(sys.argv) > 3 and sys.argv[3] == "negotiate-only"
LOCK = threading.Lock()

ANSWERS = [
    (("<m:GetFolder>", 'Id="calendar"'), "get_folder/success_calendar.xml"),
    (("<m:GetFolder>",), "get_folder/success.xml"),
    (("<m:CalendarView",), "find_item/success_calendar_view.xml"),
    (("<m:FindItem",), "find_item/success_inbox.xml"),
    (("<m:GetUserAvailabilityRequest>",), "get_user_availability/success.xml"),
    (("<m:SyncFolderItems>",), "sync_folder_items/success.xml"),
]


def log(line):
    with LOCK, open(LOG, "a") as f:
        f.write(line + "\n")


def offered():
    return [("WWW-Authenticate", "Negotiate")] + ([] if NEGOTIATE_ONLY else [("WWW-Authenticate", "NTLM")])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.ctx = None
        self.authed = None
        self.conn_id = "%s:%s" % self.client_address

    def log_message(self, *args):
        pass

    def reply(self, code, headers=(), body=b"", ctype="text/plain"):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authenticate(self):
        h = self.headers.get("Authorization")
        if h is None:
            if self.authed:
                return True
            log("%s %s unauthenticated on %s" % (self.command, "-", self.conn_id))
            self.reply(401, offered())
            return False
        scheme, _, token = h.partition(" ")
        if scheme.lower() not in ("ntlm", "negotiate") or (NEGOTIATE_ONLY and scheme.lower() == "ntlm"):
            log("scheme %s refused" % scheme)
            self.reply(401, offered())
            return False
        raw = base64.b64decode(token)
        kind = raw[8:12]
        if kind == b"\x01\x00\x00\x00":
            self.ctx = spnego.server(protocol="ntlm")
            out = self.ctx.step(raw)
            log("negotiate on %s via %s" % (self.conn_id, scheme))
            self.reply(401, [("WWW-Authenticate", "%s %s" % (scheme, base64.b64encode(out).decode()))])
            return False
        if kind == b"\x03\x00\x00\x00" and self.ctx is not None:
            try:
                self.ctx.step(raw)
                ok = self.ctx.complete
            except Exception as e:  # wrong password, bad MIC, unknown user …
                ok = False
                log("rejected on %s: %s" % (self.conn_id, type(e).__name__))
            if ok:
                self.authed = str(self.ctx.client_principal)
                log("authenticated %s on %s" % (self.authed, self.conn_id))
                return True
            self.ctx = None
            self.reply(401, offered())
            return False
        log("unexpected NTLM message")
        self.reply(401, offered())
        return False

    def do_GET(self):
        if self.authenticate():
            self.reply(200, body=b"EWS")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace")
        had_auth = "Authorization" in self.headers
        if not self.authenticate():
            return
        for markers, rel in ANSWERS:
            if all(m in body for m in markers):
                with open(os.path.join(FIX, rel), "rb") as f:
                    data = f.read()
                log("post %s as %s on %s auth-header=%s" % (rel, self.authed, self.conn_id, had_auth))
                self.reply(200, body=data, ctype="text/xml; charset=utf-8")
                return
        log("post unknown operation")
        self.reply(500, body=b"unknown operation")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
