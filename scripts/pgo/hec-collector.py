#!/usr/bin/env python3
"""A collector that takes every HEC request, for the profile-guided build's training run.

Training has to run the Splunk HEC sink's code (gzip, envelopes, acks): code a training
run never reaches is compiled as cold, and the gzip of a sink left untrained ran 6 % more
instructions (BENCHMARKS.md). A build machine has no Splunk, so this answers the three
calls the sink makes the way Splunk does with indexer acknowledgement on, and keeps
nothing. It is not a test double: the tests use lading and tests/common/hec.rs.

  python3 scripts/pgo/hec-collector.py PORT_FILE   # writes the port it listens on, serves
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count

ACK_IDS = count()


class Collector(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply({"text": "HEC is healthy", "code": 17})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/services/collector/ack"):
            asked = json.loads(body or b"{}").get("acks", [])
            self.reply({"acks": {str(i): True for i in asked}})
        else:
            self.reply({"text": "Success", "code": 0, "ackId": next(ACK_IDS)})

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    with open(sys.argv[1], "w") as port_file:
        port_file.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
