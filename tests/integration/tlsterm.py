"""The TLS terminator of tests/integration/test_tls.py: certificates made with
openssl (a CA, a server certificate for localhost; another CA's, an expired
and a wrong-host one), nginx started as the test's own process with the
server block of docs/deploy.md §4 as it is written (only the listen address,
the host name, the certificate paths and the broker port replaced), and a
byte-recording TCP relay to prove that nothing went out in clear."""

import os
import re
import socket
import subprocess
import threading
import time

import mbtest

NGINX = "/usr/sbin/nginx"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    """ca.pem signs good.pem (localhost, 127.0.0.1), expired.pem and wrong.pem
    (other.example); other-ca.pem signs other.pem (localhost)"""

    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=meshbroker test {ca}",
                    cwd=self.dir)
        self._leaf("good", "ca", "localhost", "DNS:localhost,IP:127.0.0.1", 2)
        self._leaf("expired", "ca", "localhost", "DNS:localhost,IP:127.0.0.1", -1)
        self._leaf("wrong", "ca", "other.example", "DNS:other.example", 2)
        self._leaf("other", "other-ca", "localhost", "DNS:localhost,IP:127.0.0.1", 2)
        self.ca = self.path("ca.pem")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _leaf(self, name, ca, cn, san, days):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=self.dir)
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=self.dir)

    def pair(self, name):
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


def deploy_server_block():
    """the nginx configuration of docs/deploy.md §4, verbatim"""
    text = open(os.path.join(mbtest.REPO, "docs", "deploy.md")).read()
    sec = text[text.index("## 4. TLS in front"):text.index("## 5.")]
    m = re.search(r"```nginx\n(.*?)```", sec, re.S)
    assert m, "docs/deploy.md §4 has no nginx block"
    return m.group(1)


def _sub(text, old, new):
    assert old in text, f"docs/deploy.md §4 no longer says {old!r}: update the test with the guide"
    return text.replace(old, new)


class Terminator:
    """nginx in front of a broker, configured by the deploy guide"""

    def __init__(self, workdir, broker_port, cert, key, port=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = port or mbtest.free_port()
        self.log = os.path.join(self.dir, "error.log")
        self.access = os.path.join(self.dir, "access.log")
        block = deploy_server_block()
        block = _sub(block, "listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;")
        block = _sub(block, "server_name mesh.example.org;", "server_name localhost;")
        block = _sub(block, "/etc/letsencrypt/live/mesh.example.org/fullchain.pem", cert)
        block = _sub(block, "/etc/letsencrypt/live/mesh.example.org/privkey.pem", key)
        block = _sub(block, "http://127.0.0.1:7900", f"http://127.0.0.1:{broker_port}")
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {self.log} info;\n"
                    "events { worker_connections 256; }\n"
                    f"http {{\n  access_log {self.access};\n  client_body_temp_path {d}/body;\n"
                    f"  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n"
                    f"  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{block}}}\n")
        self.p = None

    @property
    def host_url(self):
        return f"localhost:{self.port}"

    def start(self):
        self.p = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf, "-e", self.log, "-g", "daemon off;"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            assert self.p.poll() is None, f"nginx exited {self.p.returncode}: {mbtest.tail(self.log, 20)}"
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                return False

        mbtest.wait_until(up, 15, what="nginx to listen")
        return self

    def stop(self):
        """fast shutdown: every connection dropped at once"""
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.p = None

    def requests(self):
        """the request lines nginx logged"""
        try:
            return [l for l in open(self.access).read().splitlines() if l.strip()]
        except FileNotFoundError:
            return []


class Relay:
    """a TCP relay to target_port recording every byte a client sent; with
    blackhole set it forwards nothing (and closes nothing)"""

    def __init__(self, target_port):
        self.target = target_port
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.stopped = False
        self.blackhole = False  # drop every byte both ways: a network gone without a FIN
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, a, b, record):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if record:
                    with self.lock:
                        self.sent += data
                if not self.blackhole:
                    b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopped = True
        self.srv.close()


def wait_port_free(port, timeout=10):
    def free():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return False
        except OSError:
            return True
    mbtest.wait_until(free, timeout, what=f"port {port} to close")


def monotonic():
    return time.monotonic()
