"""A local SMTP server that captures every message: the stack's stand-in for a mail relay.

Listens on EVENTSHOP_SMTP_CAPTURE_ADDR (host:port, default 127.0.0.1:2525) and writes each
accepted message, as received, to EVENTSHOP_SMTP_CAPTURE_DIR/<n>.eml (n = 1, 2, 3 ... continuing
after the files already there), with the envelope in X-Envelope-From / X-Envelope-To headers
prepended. A file appears whole (written under a temporary name, then renamed).
"""
import asyncio
import os
import signal
import threading

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)
        existing = [int(f[:-4]) for f in os.listdir(directory)
                    if f.endswith(".eml") and f[:-4].isdigit()]
        self.next = max(existing, default=0) + 1

    async def handle_DATA(self, server, session, envelope):
        head = (f"X-Envelope-From: {envelope.mail_from}\r\n"
                f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        with self.lock:
            n = self.next
            self.next += 1
        tmp = os.path.join(self.directory, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(head + data)
        os.rename(tmp, os.path.join(self.directory, f"{n}.eml"))
        return "250 Message accepted for delivery"


def main():
    host, _, port = os.environ.get("EVENTSHOP_SMTP_CAPTURE_ADDR", "127.0.0.1:2525").rpartition(":")
    directory = os.environ.get("EVENTSHOP_SMTP_CAPTURE_DIR", "mail")
    controller = Controller(Capture(directory), hostname=host or "127.0.0.1", port=int(port))
    controller.start()
    print(f"smtp capture on {host}:{port} writing to {directory}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
