"""A static file server that keeps connections open, as a CDN or package mirror does.

`python -m http.server` answers HTTP/1.0 and closes every connection, so a client downloading
thousands of small files pays a TCP handshake (and the server a new thread) per file. Here:
HTTP/1.1 keep-alive, and Nagle's algorithm off (the handler writes headers and body separately;
with Nagle on, each response after the first waits for the client's delayed ACK, ~40 ms).

    python -m testkit.static_http PORT DIRECTORY
"""

from __future__ import annotations

import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class KeepAliveHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:
        pass


def main() -> None:
    port, directory = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(KeepAliveHandler, directory=directory))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
