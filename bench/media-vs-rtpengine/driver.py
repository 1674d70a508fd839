#!/usr/bin/env python3
"""Orchestration of bench/media-vs-rtpengine (started by ./run, which builds the C programs
and enters a private network namespace first). Starts each relay fresh for every
measurement, creates the calls over its control interface, runs rtpload against it, stops
it by PID, and prints a Markdown report. Environment: see ./run."""

import json
import os
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ng  # noqa: E402

# BENCH_WORK: logs and results; with REPORT_FROM (report only) the directory of that file.
WORK = os.environ.get("BENCH_WORK") or os.path.dirname(os.path.abspath(os.environ.get("REPORT_FROM", ".")))
BIN = os.environ.get("BENCH_BIN", WORK)  # directory of rtpload and fwd
HAVE_SRTP = os.environ.get("BENCH_HAVE_SRTP") == "1"


def env_list(name, default):
    return [int(float(x)) for x in os.environ.get(name, default).split()]


STREAMS = env_list("STREAMS", "500 1000 2000")
RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "10"))
WARMUP_SECONDS = float(os.environ.get("WARMUP_SECONDS", "2"))
STREAM_PPS = 50  # G.711, 20 ms packets
SAT_STREAMS = int(os.environ.get("SAT_STREAMS", "2000"))
SAT_PPS = env_list("SAT_PPS", "100000 125000 150000 175000 200000 250000 300000 400000")
SAT_SECONDS = float(os.environ.get("SAT_SECONDS", "5"))
SRTP_STREAMS = int(os.environ.get("SRTP_STREAMS", "1000"))
# Lost means not delivered within 200 ms (a voice jitter buffer discards anything later), or
# not delivered by the end of the 500 ms drain.
LOSS_LIMIT_PCT = 0.1
THREADS = int(os.environ.get("RELAY_THREADS", "1"))
# PIN=1: every relay (all its threads) on CPU RELAY_CPU, rtpload on CPU GEN_CPU. On a 2-core
# machine the generator needs most of a core at the saturation rates; unpinned, the relay's
# threads and the generator take turns on both cores and the saturation point measures the
# scheduler rather than the relay. Pinned, each relay gets one core and the figures read
# "per core". PIN=0 leaves placement to the scheduler.
PIN = os.environ.get("PIN", "1") == "1" and (os.cpu_count() or 1) >= 2
RELAY_CPU = os.environ.get("RELAY_CPU", "0")
# The machine is shared: at nice -10 the relay and the generator get ~90 % of their CPU
# against ordinary (nice 0) work, so that others' builds take less from the measurement.
NICE = int(os.environ.get("NICE", "-10"))
GEN_CPU = os.environ.get("GEN_CPU", "1")
# sipwarden-kernel (relay-bench --kernel 1: latched flows forwarded by a tc BPF program) is
# in the default set but skipped with a message when the binary does not accept --kernel or
# cannot attach the program here (see kernel_probe).
RELAYS = os.environ.get("RELAYS", "sipwarden sipwarden-kernel rtpengine cfwd").split()
# The direct runs (generator -> sink, no relay) at every size and rate: the latency floor and
# the baseline of the "added CPU" figures. BASELINE=0 drops them, and with them those figures.
BASELINE = os.environ.get("BASELINE", "1") == "1"
# Added CPU and machine-wide added busy time are flagged when they differ by more than this
# share: then something besides the benchmark was busy (or softirq work ran in ksoftirqd).
AGREE_LIMIT = 0.25
# ...and by more than this many ns per packet: /proc/stat counts in 10 ms steps per CPU, and an
# idle machine's own background is about 0.1 s in a 5 s window, so a kernel-forwarding relay
# adding a few hundred ns per packet cannot be checked closer than that.
AGREE_FLOOR_NS = 150
RX_STAMP = os.environ.get("RX_STAMP", "kernel")
TICK_US = float(os.environ.get("TICK_US", "100"))
SIPWARDEN_BIN = os.environ.get("SIPWARDEN_RELAY_BENCH", "")
A_PORT, B_PORT = 20000, 20001  # the endpoints' sockets; relays use 30000-39999
# TOPO=veth (set up by ./run): the endpoints (rtpload) in a namespace of their own, EP_NETNS,
# at EP_ADDR, reaching the relays at RELAY_ADDR over a veth pair. Default: all on loopback.
EP_ADDR = os.environ.get("BENCH_EP_ADDR", "127.0.0.1")
RELAY_ADDR = os.environ.get("BENCH_RELAY_ADDR", "127.0.0.1")
EP_NETNS = os.environ.get("BENCH_EP_NETNS", "")
TOPO = "veth" if EP_NETNS else "loopback"
NG_PORT = 22222
PORT_MIN, PORT_MAX = 30000, 39999
# A fixed test key (30 bytes: 16 of key, 14 of salt), never a secret.
SRTP_KEY = "c2lwd2FyZGVuIG1lZGlhIGJlbmNoIHRlc3Qga2V5"  # b"sipwarden media bench test key"

children = []  # every process started, stopped by PID at the end


def log(*args):
    print("media-vs-rtpengine:", *args, file=sys.stderr, flush=True)


def start(argv, cpu=None, **kw):
    if cpu is not None and NICE:
        argv = ["nice", "-n", str(NICE)] + list(argv)  # nice and taskset exec: the PID is the program's
    if PIN and cpu is not None:
        argv = ["taskset", "-c", cpu] + list(argv)
    p = subprocess.Popen(argv, **kw)
    children.append(p)
    return p


def stop(p, grace=5.0):
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if p in children:
        children.remove(p)


def stop_all():
    for p in list(children):
        try:
            if p.stdin:
                p.stdin.close()
        except OSError:
            pass
        stop(p)


class RelayError(RuntimeError):
    pass


class ContractRelay:
    """A relay driven over the relay-bench stdin/stdout contract (sipwarden's example and the
    C forwarder): `create ID A B [srtp=KEY]` -> `ok ID PORT_A PORT_B`."""

    def __init__(self, name, argv):
        self.name, self.argv, self.p = name, argv, None

    def start(self):
        self.err = open(os.path.join(WORK, "%s.stderr" % self.name), "ab")
        self.p = start(self.argv, cpu=RELAY_CPU, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        line = self._line(10.0)
        if line != "ready":
            raise RelayError("%s did not print ready (got %r)" % (self.name, line))

    def pid(self):
        return self.p.pid

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RelayError("%s: no answer within %.0f s" % (self.name, timeout))
            chunk = os.read(fd, 1)  # byte by byte: answers are short and must not be over-read
            if not chunk:
                raise RelayError("%s exited (see %s.stderr)" % (self.name, self.name))
            buf += chunk
        return buf.decode().strip()

    def create_calls(self, n, srtp_key=None):
        ports = []
        extra = " srtp=%s" % srtp_key if srtp_key else ""
        chunk = 100  # pipelined, in chunks that fit the pipes
        for base in range(0, n, chunk):
            ids = range(base, min(n, base + chunk))
            cmds = "".join(
                "create %d %s:%d %s:%d%s\n" % (k, EP_ADDR, A_PORT, EP_ADDR, B_PORT, extra) for k in ids
            )
            self.p.stdin.write(cmds.encode())
            self.p.stdin.flush()
            for k in ids:
                words = self._line(10.0).split()
                if len(words) != 4 or words[0] != "ok" or words[1] != str(k):
                    if srtp_key:
                        raise RelayError("%s refused `create ... srtp=KEY` (no SRTP support yet?): %r"
                                         % (self.name, " ".join(words)))
                    raise RelayError("%s: create %d answered %r" % (self.name, k, " ".join(words)))
                ports.append((int(words[2]), int(words[3])))
        return ports

    def stats(self):
        self.p.stdin.write(b"stats\n")
        self.p.stdin.flush()
        return json.loads(self._line(5.0))

    def stop(self):
        if self.p:
            try:
                self.p.stdin.close()  # EOF: the contract's way to exit
                self.p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            stop(self.p)
            self.err.close()


class Rtpengine:
    """rtpengine in userspace (table -1) on loopback, calls set up with ng offer/answer."""

    def __init__(self):
        self.name, self.p = "rtpengine", None

    def start(self):
        self.err = open(os.path.join(WORK, "rtpengine.stderr"), "ab")
        conf = os.path.join(HERE, "rtpengine.conf")
        if RELAY_ADDR != "127.0.0.1":
            # The same configuration with the relay's address as its interface.
            with open(conf) as f:
                text = "".join("interface = %s\n" % RELAY_ADDR if line.startswith("interface") else line
                               for line in f)
            conf = os.path.join(WORK, "rtpengine.conf")
            with open(conf, "w") as f:
                f.write(text)
        argv = [
            "rtpengine",
            "--config-file=%s" % conf,
            "--config-section=rtpengine",
            "--listen-ng=127.0.0.1:%d" % NG_PORT,
            "--num-threads=%d" % THREADS,
        ]
        self.p = start(argv, cpu=RELAY_CPU, stdout=self.err, stderr=self.err)
        self.ng = ng.NgClient("127.0.0.1", NG_PORT, timeout=0.5, retries=3)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.ng.request("ping")
                return
            except (ng.NgError, OSError):
                if self.p.poll() is not None or time.monotonic() > deadline:
                    raise RelayError("rtpengine did not answer ping (see rtpengine.stderr)")
                time.sleep(0.1)

    def pid(self):
        return self.p.pid

    @staticmethod
    def _sdp(port, proto="RTP/AVP", crypto=None):
        lines = [
            "v=0",
            "o=- 1 1 IN IP4 %s" % EP_ADDR,
            "s=-",
            "c=IN IP4 %s" % EP_ADDR,
            "t=0 0",
            "m=audio %d %s 0" % (port, proto),
            "a=rtpmap:0 PCMU/8000",
            "a=sendrecv",
        ]
        if crypto:
            lines.append("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s" % crypto)
        return "\r\n".join(lines) + "\r\n"

    @staticmethod
    def _port(sdp):
        for line in sdp.split("\n"):
            if line.startswith("m=audio "):
                return int(line.split()[1])
        raise RelayError("rtpengine: no m=audio line in %r" % sdp)

    def create_calls(self, n, srtp_key=None):
        ports = []
        common = {"ICE": "remove", "replace": ["origin", "session-connection"]}
        for k in range(n):
            cid = "bench-%d" % k
            if srtp_key:
                offer_sdp = self._sdp(A_PORT, "RTP/SAVP", srtp_key)
                extra = {"transport-protocol": "RTP/AVP"}  # B gets plain RTP
            else:
                offer_sdp, extra = self._sdp(A_PORT), {}
            r = self.ng.request("offer", **{"call-id": cid, "from-tag": "a", "sdp": offer_sdp, **common, **extra})
            port_b = self._port(r["sdp"])  # where B sends: rtpengine's side facing B
            r = self.ng.request(
                "answer", **{"call-id": cid, "from-tag": "a", "to-tag": "b", "sdp": self._sdp(B_PORT), **common}
            )
            port_a = self._port(r["sdp"])  # where A sends
            ports.append((port_a, port_b))
        return ports

    def stats(self):
        return {}

    def stop(self):
        if self.p:
            stop(self.p)
            self.ng.close()
            self.err.close()


class Direct:
    """No relay: A sends straight to B's socket and B to A's (the harness's own floor)."""

    name = "direct"

    def start(self):
        pass

    def pid(self):
        return 0

    def create_calls(self, n, srtp_key=None):
        return [(B_PORT, A_PORT)] * n

    def stats(self):
        return {}

    def stop(self):
        pass


SIPWARDEN_EXTRA = {
    # The same relay without connected sockets for latched peers, to measure what they bring.
    "sipwarden-unconn": ["--connect", "0"],
    # A 1 ms io_uring batch window instead of 200 µs (fewer wake-ups, more latency).
    "sipwarden-w1000": ["--batch-wait-us", "1000"],
    # Latched flows forwarded in the kernel (tcx ingress BPF program), the rest in userspace.
    "sipwarden-kernel": ["--kernel", "1"],
}


def sipwarden_argv(name, port_min=PORT_MIN, port_max=PORT_MAX):
    return [SIPWARDEN_BIN, "--addr", RELAY_ADDR, "--port-min", str(port_min), "--port-max", str(port_max),
            "--workers", str(THREADS)] + SIPWARDEN_EXTRA.get(name, [])


def kernel_probe():
    """Whether relay-bench accepts `--kernel 1` and gets as far as `ready` with it (the program
    loaded and attached): a dry start with empty input, which the contract answers by exiting.
    Returns None when it does, else why not. relay-bench has no --help; an unknown argument
    makes it exit with status 2 before `ready`."""
    try:
        p = subprocess.run(sipwarden_argv("sipwarden-kernel", PORT_MAX - 9, PORT_MAX), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if p.stdout.decode(errors="replace").split("\n")[0].strip() == "ready":
        return None
    err = p.stderr.decode(errors="replace").strip().splitlines()
    return "exit status %d%s" % (p.returncode, (": " + err[-1]) if err else "")


def make_relay(name):
    if name in ("sipwarden",) + tuple(SIPWARDEN_EXTRA):
        return ContractRelay(name, sipwarden_argv(name))
    if name in ("cfwd", "cfwd-conn"):
        # cfwd-conn: the same forwarder with every port's socket connect(2)ed to its peer, the
        # kernel's cheapest UDP path (early demux on receive, cached route on send).
        return ContractRelay(
            name,
            [os.path.join(BIN, "fwd"), "--addr", RELAY_ADDR, "--port-min", str(PORT_MIN), "--port-max",
             str(PORT_MAX), "--workers", str(THREADS), "--batch", "64",
             "--connect", "1" if name == "cfwd-conn" else "0"],
        )
    if name == "rtpengine":
        return Rtpengine()
    if name == "direct":
        return Direct()
    raise ValueError(name)


def softirqd_pids():
    """The kernel's ksoftirqd threads (one per CPU): softirq work deferred to them under load
    is charged to them instead of the sender, so the added-CPU figure counts them too."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().startswith("ksoftirqd/"):
                        pids.append(int(d))
            except OSError:
                pass
    return sorted(pids)


SOFTIRQD_PIDS = softirqd_pids()


def rss_kb(pid, field="VmHWM"):
    if pid <= 0:
        return 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_one(name, streams, pps, seconds, test, dirs="both", srtp=False):
    """One measurement with a fresh relay. Returns the rtpload result as a dict (plus a few
    fields), or {"error": ...}."""
    relay = make_relay(name)
    sessions = streams // 2 if dirs == "both" else streams
    tag = "%s-%s-%d-%d" % (name, "srtp" if srtp else "rtp", streams, pps)
    res = {"relay": name, "test": test, "streams": streams, "pps": pps, "srtp": srtp}
    try:
        relay.start()
        t0 = time.monotonic()
        ports = relay.create_calls(sessions, SRTP_KEY if srtp else None)
        res["setup_s"] = time.monotonic() - t0
        mapfile = os.path.join(WORK, "%s.map" % tag)
        with open(mapfile, "w") as f:
            f.writelines("%d %d\n" % p for p in ports)
        argv = [
            os.path.join(BIN, "rtpload"), "--map", mapfile, "--a-port", str(A_PORT), "--b-port", str(B_PORT),
            "--pps", str(pps), "--seconds", str(seconds), "--warmup", str(WARMUP_SECONDS), "--drain-ms", "500",
            "--dirs", dirs, "--batch", "64", "--cpu-pid", str(relay.pid()),
            "--rx-stamp", RX_STAMP, "--tick-us", str(TICK_US),
            "--local", EP_ADDR, "--remote", EP_ADDR if name == "direct" else RELAY_ADDR,
        ]
        if EP_NETNS:
            argv = ["ip", "netns", "exec", EP_NETNS] + argv  # execs rtpload: the PID stays
        if PIN:
            argv += ["--relay-cpu", RELAY_CPU]
        if SOFTIRQD_PIDS:
            argv += ["--softirqd-pids", ",".join(map(str, SOFTIRQD_PIDS))]
        if srtp:
            argv += ["--srtp-key", SRTP_KEY]
        gen = start(argv, cpu=GEN_CPU, stdout=subprocess.PIPE, stderr=open(os.path.join(WORK, "%s.rtpload.stderr" % tag), "wb"))
        try:
            out, _ = gen.communicate(timeout=seconds + WARMUP_SECONDS + 30)
        except subprocess.TimeoutExpired:
            stop(gen)
            raise RelayError("rtpload did not finish")
        children.remove(gen)
        line = [l for l in out.decode().splitlines() if l.startswith("result ")]
        if gen.returncode != 0 or not line:
            raise RelayError("rtpload failed (rc %s, see %s.rtpload.stderr)" % (gen.returncode, tag))
        for kv in line[0].split()[1:]:
            k, _, v = kv.partition("=")
            res[k] = float(v)
        res["hwm_mib"] = rss_kb(relay.pid()) / 1024
        try:
            st = relay.stats()
            if st:
                res["relay_stats"] = st
        except (RelayError, ValueError, OSError) as e:
            res["relay_stats"] = {"error": str(e)}
    except (RelayError, ng.NgError, OSError) as e:
        res["error"] = str(e)
    finally:
        relay.stop()
    with open(os.path.join(WORK, "results.jsonl"), "a") as f:
        f.write(json.dumps(res) + "\n")
    return res


def describe(r):
    if "error" in r:
        return "%-9s %5d streams %7d pps: ERROR %s" % (r["relay"], r["streams"], r["pps"], r["error"])
    return (
        "%-9s %5d streams %7d pps: sent %.1f%% of schedule, loss %.3f%% (%d of %d; %d later than 200 ms; sink drops %d, relay-socket drops %d), "
        "p50 %d us, p99 %d us, relay CPU %.0f ns/pkt (%.0f%% of a core), rtpload %.0f%%, machine busy %.2f s "
        "(softirq %.2f s), pacer lag max %.1f ms%s"
        % (
            r["relay"], r["streams"], r["pps"], 100 * offered(r), r["loss_pct"], r["lost"], r["sent"], r["late200"], r["sink_drops"],
            r["relay_drops"], r["p50_us"], r["p99_us"], r["relay_cpu_ns_per_pkt"], r["relay_cpu_pct"],
            r["gen_cpu_pct"], r.get("machine_busy_s", -1), r.get("machine_softirq_s", -1), r["max_lag_us"] / 1000,
            kernel_stats(r),
        )
    )


def kernel_stats(r):
    """The relay's own counters about in-kernel forwarding, whatever relay-bench calls them, so
    that a kernel run that silently stayed in userspace shows."""
    st = r.get("relay_stats") or {}
    kv = ["%s=%s" % (k, v) for k, v in sorted(st.items()) if "kernel" in k or "bpf" in k]
    return (", " + " ".join(kv)) if kv else ""


OFFERED_MIN = 0.99  # a step counts only if the generator sent 99 % of its schedule


def offered(r):
    return r["sent"] / r["scheduled"] if r.get("scheduled") else 0.0


def ok(r):
    return (
        "error" not in r
        and r["lost_or_late_pct"] < LOSS_LIMIT_PCT
        and r["send_errors"] == 0
        and offered(r) >= OFFERED_MIN
    )


def others(r):
    v = r.get("relay_core_others_pct", -1)
    return "-" if v < 0 or r["relay"] == "direct" else "%.0f" % max(v, 0)


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(a, b):
    return "-" if a is None or not b else "%.2f" % (a / b)


def report_from(path):
    """REPORT_FROM=results.jsonl: the report of an earlier run again, from its per-run lines
    (after a change to the report, or to compare runs); the sizes and rates come from the file,
    the other knobs from the environment as usual."""
    global STREAMS, SAT_PPS, SAT_STREAMS, SRTP_STREAMS, RUN_SECONDS
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if "test" in r]
    relays = []
    for r in rows:
        if r["relay"] != "direct" and r["relay"] not in relays:
            relays.append(r["relay"])
    results = [r for r in rows if r["test"] in ("ladder", "saturation")]
    srtp_results = [r for r in rows if r["test"] == "srtp"]
    STREAMS = sorted({int(r["streams"]) for r in rows if r["test"] == "ladder"})
    SAT_PPS = sorted({r["pps"] for r in rows if r["test"] == "saturation"})
    SAT_STREAMS = next((int(r["streams"]) for r in rows if r["test"] == "saturation"), SAT_STREAMS)
    SRTP_STREAMS = next((int(r["streams"]) for r in srtp_results), 0)
    RUN_SECONDS = next((r["scheduled"] / r["offered_pps"] for r in rows
                        if r["test"] == "ladder" and r.get("offered_pps")), RUN_SECONDS)
    sat = {name: {"best": None, "fail": None} for name in relays}
    for r in sorted((r for r in results if r["test"] == "saturation" and r["relay"] != "direct"),
                    key=lambda r: r["pps"]):
        x = sat[r["relay"]]
        if x["fail"] is None:
            x["best" if ok(r) else "fail"] = r
    report(relays, results, sat, srtp_results, ["?"] * 3, ["?"] * 3, 0)
    return 0


def main():
    if os.environ.get("REPORT_FROM"):
        return report_from(os.environ["REPORT_FROM"])
    relays = []
    for name in RELAYS:
        if name.startswith("sipwarden") and not (SIPWARDEN_BIN and os.access(SIPWARDEN_BIN, os.X_OK)):
            log("SKIPPING %s: %s not found; build it with "
                "`cargo build --release -p media-relay --example relay-bench` "
                "(or set SIPWARDEN_RELAY_BENCH=PATH)" % (name, SIPWARDEN_BIN or "relay-bench"))
            continue
        if name == "sipwarden-kernel":
            why = kernel_probe()
            if why is not None:
                log("SKIPPING sipwarden-kernel: `relay-bench --kernel 1` did not start (%s); it needs a "
                    "relay-bench with in-kernel forwarding (crates media-kernel-forward and media-relay's "
                    "RelayConfig::kernel_forward) and the right to load and attach a tc BPF program" % why)
                continue
        if name == "rtpengine" and subprocess.call(["sh", "-c", "command -v rtpengine >/dev/null"]) != 0:
            log("SKIPPING rtpengine: not installed (apt-get install rtpengine-daemon)")
            continue
        relays.append(name)
    if not relays:
        log("nothing to measure")
        return 2
    if not BASELINE:
        log("BASELINE=0: no direct runs, so no added-CPU figures (only the relays' process CPU)")
    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.monotonic()
    results = []

    # 1. The stream ladder at 50 packets/s per stream, alternating the order of the relays.
    # The direct run is one of the alternating entries: it is the baseline of the added-CPU
    # figures, so it should see the same conditions as the relays.
    measured = relays + (["direct"] if BASELINE else [])
    for i, n in enumerate(STREAMS):
        order = measured if i % 2 == 0 else list(reversed(measured))
        for name in order:
            r = run_one(name, n, n * STREAM_PPS, RUN_SECONDS, "ladder")
            results.append(r)
            log(describe(r))

    # 2. Saturation: SAT_STREAMS streams, the total rate raised step by step; a relay leaves
    # the ladder at its first step with loss >= 0.1 %.
    alive = list(relays)
    sat = {name: {"best": None, "fail": None} for name in relays}
    for i, pps in enumerate(SAT_PPS):
        if not alive:
            break
        step = alive + (["direct"] if BASELINE else [])
        order = step if i % 2 == 0 else list(reversed(step))
        for name in order:
            r = run_one(name, SAT_STREAMS, pps, SAT_SECONDS, "saturation")
            results.append(r)
            log(describe(r))
            if name == "direct":
                continue
            if ok(r):
                sat[name]["best"] = r
            else:
                sat[name]["fail"] = r
                alive.remove(name)

    # 3. SRTP in, RTP out (A -> B only), at SRTP_STREAMS streams.
    srtp_results = []
    if HAVE_SRTP and SRTP_STREAMS > 0:
        # The direct SRTP run only serves as the generator's baseline (it encrypts there too);
        # its sink gets SRTP it does not decrypt and counts nothing as received.
        for name in relays + (["direct"] if BASELINE else []):
            r = run_one(name, SRTP_STREAMS, SRTP_STREAMS * STREAM_PPS, RUN_SECONDS, "srtp", dirs="ab", srtp=True)
            srtp_results.append(r)
            log(describe(r))
    elif SRTP_STREAMS > 0:
        log("SKIPPING the SRTP runs: rtpload was built without libsrtp2 (apt-get install libsrtp2-dev)")

    elapsed = time.monotonic() - started
    load_after = open("/proc/loadavg").read().split()[:3]
    report(relays, results, sat, srtp_results, load_before, load_after, elapsed)
    return 0


def irq_time_accounting():
    """Whether the kernel charges softirq time to no task (CONFIG_IRQ_TIME_ACCOUNTING=y): then
    the loopback delivery and in-kernel forwarding done in a process's softirq are missing from
    every process figure, and only the machine-wide figure counts them. None: unknown."""
    import gzip
    release = os.uname().release
    for path, opener in (("/proc/config.gz", gzip.open), ("/boot/config-%s" % release, open)):
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_IRQ_TIME_ACCOUNTING="):
                        return line.strip().endswith("=y")
            return False
        except OSError:
            continue
    return None


def find_direct(r, results):
    if r["relay"] == "direct":
        return None
    for d in results:
        if (d["relay"] == "direct" and "error" not in d and d.get("test") == r.get("test")
                and d["streams"] == r["streams"] and d["pps"] == r["pps"] and d["srtp"] == r["srtp"]):
            return d
    return None


def add_added(results):
    """Per relay run, the CPU it adds to the whole machine, per relayed packet:
    added = relay process CPU + (generator CPU in this run - generator CPU in the direct run of
    the same test, streams and rate) + (the same difference for the ksoftirqd threads), all
    over the same window (rtpload reads them together);
    machine = machine-wide busy time of this run - that of the direct run (the cross-check; rtpload
    takes it as wall time x CPUs - idle - iowait, since the tick-sampled busy fields of
    /proc/stat miss short bursts).
    Left out when the direct run is missing, or when either generator fell behind its schedule
    (its CPU then measures how far it got, not the same work)."""
    for r in results:
        if "error" in r or r["relay"] == "direct" or "gen_cpu_s" not in r or not r.get("recv"):
            continue
        d = find_direct(r, results)
        if d is None or offered(r) < OFFERED_MIN or offered(d) < OFFERED_MIN:
            continue
        per = 1e9 / r["recv"]
        gen = (r["gen_cpu_s"] - d["gen_cpu_s"]) * per
        sirqd = (r.get("softirqd_cpu_s", 0) - d.get("softirqd_cpu_s", 0)) * per
        add = r["relay_cpu_ns_per_pkt"] + gen + sirqd
        machine = (r["machine_busy_s"] - d["machine_busy_s"]) * per
        r["added"] = {
            "gen_ns": gen, "softirqd_ns": sirqd, "added_ns": add, "machine_ns": machine,
            "softirq_ns": (r["machine_softirq_s"] - d["machine_softirq_s"]) * per,
            "agree": abs(machine - add) <= max(AGREE_LIMIT * add, AGREE_FLOOR_NS),
        }
        if os.environ.get("REPORT_FROM"):
            continue  # a report of an earlier run: its added.jsonl is there already
        with open(os.path.join(WORK, "added.jsonl"), "a") as f:
            f.write(json.dumps({k: r.get(k) for k in ("relay", "test", "streams", "pps", "srtp", "added")}) + "\n")


def added_cols(r):
    """Added CPU, the generator's and ksoftirqd's shares of it, and the machine-wide figure
    (flagged with "(!)" when it differs from the added CPU by more than AGREE_LIMIT), for a
    table row."""
    x = r.get("added")
    if not x:
        return "- | - | - | -"
    return "%.0f | %.0f | %.0f | %.0f%s" % (x["added_ns"], x["gen_ns"], x["softirqd_ns"], x["machine_ns"],
                                           "" if x["agree"] else " (!)")


def added_ns(r):
    return (r.get("added") or {}).get("added_ns") if r else None


ADDED_HEAD = ("added CPU per packet (ns) | of which rtpload over direct (ns) | of which ksoftirqd over direct (ns) "
              "| machine-wide added (ns)")


def report(relays, results, sat, srtp_results, load_before, load_after, elapsed):
    add_added(results + srtp_results)
    out = []
    w = out.append
    rtpe = subprocess.run(["sh", "-c", "rtpengine --version 2>&1 | head -n 1"], capture_output=True, text=True)
    placement = ("relay on CPU %s, rtpload on CPU %s (taskset)" % (RELAY_CPU, GEN_CPU)) if PIN else "not pinned"
    w("Date: %s; %d CPUs; relays: %s, %d worker threads each; %s; rtpengine %s; load average before %s, after %s; "
      "%.0f s" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(), ", ".join(relays), THREADS,
                  placement,
                  rtpe.stdout.strip().replace("Version: ", ""), " ".join(load_before), " ".join(load_after), elapsed))
    w("Command: RELAYS=\"%s\" STREAMS=\"%s\" RUN_SECONDS=%g WARMUP_SECONDS=%g SAT_STREAMS=%d SAT_PPS=\"%s\" "
      "SAT_SECONDS=%g SRTP_STREAMS=%d RELAY_THREADS=%d PIN=%d NICE=%d RX_STAMP=%s TICK_US=%g TOPO=%s "
      "bench/media-vs-rtpengine/run"
      % (" ".join(relays), " ".join(map(str, STREAMS)), RUN_SECONDS, WARMUP_SECONDS, SAT_STREAMS,
         " ".join(map(str, SAT_PPS)), SAT_SECONDS, SRTP_STREAMS, THREADS, int(PIN), NICE, RX_STAMP, TICK_US, TOPO))
    ita = irq_time_accounting()
    if ita:
        w("")
        w("**Warning**: this kernel has CONFIG_IRQ_TIME_ACCOUNTING=y: softirq time (loopback delivery, "
          "in-kernel forwarding) is charged to no process, so the process and added-CPU figures miss it for "
          "every relay; use the machine-wide column.")
    elif ita is None:
        w("")
        w("(Kernel config not readable: whether softirq time is charged to the interrupted process, as the "
          "added-CPU figure assumes, is unknown; compare with the machine-wide column.)")
    w("")
    w("CPU figures per relayed packet. **Added CPU** (the headline) = the relay's process CPU + the generator's CPU "
      "over that of the direct run (no relay) at the same streams and rate: in-kernel forwarding runs in the "
      "softirq of the sender, on loopback the generator (and ksoftirqd's over the direct run's, where the "
      "kernel deferred softirq work). **Machine-wide added**: busy time of all CPUs "
      "(/proc/stat) over the direct run's, the cross-check; \"(!)\" where it differs from the added CPU by more "
      "than %d %% and %d ns (other work on the machine). **Relay CPU**: the relay's process alone, as before." % (
          100 * AGREE_LIMIT, AGREE_FLOOR_NS))
    w("")
    w("### G.711 streams at 50 packets/s (each call: one stream each way)")
    w("")
    w("| streams | relay | offered pkt/s | relayed pkt/s | sent, %% of schedule | loss %% | sink / relay socket drops | latency p50 (µs) "
      "| p99 (µs) | p99.9 (µs) | %s | relay CPU per packet (ns) | relay CPU (%% of a core) "
      "| others on the relay's core (%%) | rtpload CPU (%%) | machine busy (s) | relay VmHWM (MiB) | call setup (s) |"
      % ADDED_HEAD)
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted((r for r in results if r["test"] == "ladder"), key=lambda r: (r["streams"], r["relay"])):
        if "error" in r:
            w("| %d | %s | %d | error: %s ||||||||||||||||||" % (r["streams"], r["relay"], r["pps"], r["error"]))
            continue
        relayed = r["recv"] / RUN_SECONDS
        w("| %d | %s | %d | %.0f | %.1f | %.3f | %d / %d | %d | %d | %d | %s | %s | %s | %s | %.0f | %.2f | %.0f | %.1f |" % (
            r["streams"], r["relay"], r["pps"], relayed, 100 * offered(r), r["loss_pct"], r["sink_drops"], r["relay_drops"],
            r["p50_us"], r["p99_us"], r["p999_us"], added_cols(r),
            fmt(r["relay_cpu_ns_per_pkt"] if r["relay"] != "direct" else None),
            fmt(r["relay_cpu_pct"] if r["relay"] != "direct" else None), others(r), r["gen_cpu_pct"],
            r.get("machine_busy_s", -1), r["hwm_mib"], r["setup_s"]))
    w("")
    w("Summary: latency added over the direct run (generator to sink without relay) at the same size.")
    w("")
    w("| streams | relay | added CPU per packet (ns) | machine-wide added (ns) | relay CPU per packet (ns) "
      "| latency p50 / p99 (µs) | added p50 / p99 (µs) |")
    w("|---:|---|---:|---:|---:|---:|---:|")
    direct = {r["streams"]: r for r in results if r["test"] == "ladder" and r["relay"] == "direct" and "error" not in r}
    for r in sorted((r for r in results if r["test"] == "ladder"), key=lambda r: (r["streams"], r["relay"])):
        if "error" in r or r["relay"] == "direct":
            continue
        base = direct.get(r["streams"])
        lat = "%d / %d" % (r["p50_us"] - base["p50_us"], r["p99_us"] - base["p99_us"]) if base else "-"
        x = r.get("added")
        w("| %d | %s | %s | %s | %.0f | %d / %d | %s |" % (
            r["streams"], r["relay"], fmt(x and x["added_ns"]),
            "-" if not x else "%.0f%s" % (x["machine_ns"], "" if x["agree"] else " (!)"),
            r["relay_cpu_ns_per_pkt"], r["p50_us"], r["p99_us"], lat))
    kern = [r for r in results + srtp_results
            if "error" not in r and "packets_kernel" in (r.get("relay_stats") or {}) and r["relay"] != "direct"]
    kern = [r for r in kern if r["relay"] == "sipwarden-kernel" or r["relay_stats"]["packets_kernel"]]
    if kern:
        w("")
        w("Packets the kernel forwarded (relay-bench `packets_kernel` of `packets_out`, whole run with warm-up): "
          + "; ".join("%s %s %d: %.1f %%" % (
              r["relay"], "SRTP" if r["srtp"] else r["test"], r["pps"] if r["test"] == "saturation" else r["streams"],
              100.0 * r["relay_stats"]["packets_kernel"] / max(1, r["relay_stats"].get("packets_out", 0)))
              for r in kern) + ".")
    w("")
    w("### Saturation: %d streams, total rate raised until loss >= %.1f %%" % (SAT_STREAMS, LOSS_LIMIT_PCT))
    w("")
    w("| offered pkt/s | relay | sent, %% of schedule | loss %% | lost or > 200 ms, %% | sink / relay socket drops "
      "| latency p50 (µs) | p99 (µs) | %s | relay CPU per packet (ns) | relay CPU (%% of a core) "
      "| others on the relay's core (%%) | rtpload CPU (%%) | verdict |" % ADDED_HEAD)
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted((r for r in results if r["test"] == "saturation"), key=lambda r: (r["pps"], r["relay"])):
        if "error" in r:
            w("| %d | %s | error: %s |||||||||||||||" % (r["pps"], r["relay"], r["error"]))
            continue
        direct_row = r["relay"] == "direct"
        verdict = "baseline" if direct_row else "ok" if ok(r) else (
            "loss" if r["lost_or_late_pct"] >= LOSS_LIMIT_PCT else "not offered (generator behind)")
        w("| %d | %s | %.1f | %.3f | %.3f | %d / %d | %d | %d | %s | %s | %s | %s | %.0f | %s |" % (
            r["pps"], r["relay"], 100 * offered(r), r["loss_pct"], r["lost_or_late_pct"], r["sink_drops"],
            r["relay_drops"], r["p50_us"], r["p99_us"], added_cols(r),
            fmt(None if direct_row else r["relay_cpu_ns_per_pkt"]), fmt(None if direct_row else r["relay_cpu_pct"]),
            others(r), r["gen_cpu_pct"], verdict))
    w("")
    for n in relays if SAT_PPS else []:  # SAT_PPS="" skips the saturation test
        b, f = sat[n]["best"], sat[n]["fail"]
        line = "- %s: highest offered rate with < %.1f %% loss: %s" % (
            n, LOSS_LIMIT_PCT, "%d pkt/s" % b["pps"] if b else "below %d pkt/s" % SAT_PPS[0])
        if f is None and b:
            line += " (the top of the ladder)"
        elif f is not None and "error" not in f:
            line += "; at %d pkt/s: %.3f %% lost or later than 200 ms, %.1f %% of the schedule sent" % (
                f["pps"], f["lost_or_late_pct"], 100 * offered(f))
        w(line)
    if srtp_results:
        w("")
        w("### SRTP in (AES_CM_128_HMAC_SHA1_80), RTP out: %d streams A -> B at 50 packets/s" % SRTP_STREAMS)
        w("")
        w("(The direct run, the baseline of the added figures, is not listed: its sink gets SRTP it does not "
          "decrypt.)")
        w("")
        w("| relay | offered pkt/s | loss %% | latency p50 (µs) | p99 (µs) | %s | relay CPU per packet (ns) "
          "| relay CPU (%% of a core) |" % ADDED_HEAD)
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in srtp_results:
            if r["relay"] == "direct":
                continue
            if "error" in r:
                w("| %s | %d | error: %s |||||||||" % (r["relay"], r["pps"], r["error"]))
            else:
                w("| %s | %d | %.3f | %d | %d | %s | %.0f | %.0f |" % (
                    r["relay"], r["pps"], r["loss_pct"], r["p50_us"], r["p99_us"], added_cols(r),
                    r["relay_cpu_ns_per_pkt"], r["relay_cpu_pct"]))
    # Ratios.
    w("")
    w("### Ratios (sipwarden / other; below 1 is better for sipwarden)")
    w("")
    w("Headline: added CPU per packet (what the relay costs the whole machine); second column: the relay's "
      "process CPU alone, as in earlier runs.")
    w("")
    if "sipwarden" not in relays and "sipwarden-kernel" not in relays:
        w("sipwarden was not measured (relay-bench example not built), so no ratios; rtpengine / C forwarder "
          "for reference:")
        w("")
    pairs = []
    if "sipwarden-kernel" in relays:
        pairs += [("sipwarden-kernel", "rtpengine"), ("sipwarden-kernel", "cfwd"), ("sipwarden-kernel", "sipwarden")]
    pairs += [("sipwarden", "rtpengine"), ("sipwarden", "cfwd"), ("rtpengine", "cfwd")]
    if "sipwarden-w1000" in relays:
        pairs += [("sipwarden-w1000", "rtpengine"), ("sipwarden-w1000", "cfwd")]
    if "sipwarden-unconn" in relays:
        pairs += [("sipwarden", "sipwarden-unconn"), ("sipwarden-unconn", "rtpengine")]
    if "cfwd-conn" in relays:
        pairs += [("sipwarden", "cfwd-conn"), ("rtpengine", "cfwd-conn"), ("cfwd-conn", "cfwd")]
    w("| streams | ratio | added CPU per packet | relay process CPU per packet | latency p50 | latency p99 |")
    w("|---:|---|---:|---:|---:|---:|")
    lad = {(r["relay"], r["streams"]): r for r in results if r["test"] == "ladder" and "error" not in r}
    for n in STREAMS:
        for a, b in pairs:
            ra, rb = lad.get((a, n)), lad.get((b, n))
            if ra and rb:
                w("| %d | %s / %s | %s | %s | %s | %s |" % (
                    n, a, b, ratio(added_ns(ra), added_ns(rb)),
                    ratio(ra["relay_cpu_ns_per_pkt"], rb["relay_cpu_ns_per_pkt"]),
                    ratio(ra["p50_us"], rb["p50_us"]), ratio(ra["p99_us"], rb["p99_us"])))
    srtp_by = {r["relay"]: r for r in srtp_results if "error" not in r}
    for a, b in pairs:
        ra, rb = srtp_by.get(a), srtp_by.get(b)
        if ra and rb:
            w("| SRTP, %d | %s / %s | %s | %s | %s | %s |" % (
                SRTP_STREAMS, a, b, ratio(added_ns(ra), added_ns(rb)),
                ratio(ra["relay_cpu_ns_per_pkt"], rb["relay_cpu_ns_per_pkt"]),
                ratio(ra["p50_us"], rb["p50_us"]), ratio(ra["p99_us"], rb["p99_us"])))
    for a, b in pairs:
        ba, bb = sat.get(a, {}).get("best"), sat.get(b, {}).get("best")
        if a in relays and b in relays and SAT_PPS:
            w("| saturation | %s / %s max pkt/s | %s | | | |" % (a, b, ratio(ba and ba["pps"], bb and bb["pps"])))
    flagged = [r for r in results + srtp_results if r.get("added") and not r["added"]["agree"]]
    w("")
    if flagged:
        w("Runs whose machine-wide added busy time differs from the added CPU by more than %d %% and %d ns "
          "(something else was busy): %s." % (100 * AGREE_LIMIT, AGREE_FLOOR_NS, "; ".join(
              "%s %s %d streams %d pkt/s: %.0f against %.0f ns" % (
                  r["relay"], "SRTP" if r["srtp"] else r["test"], r["streams"], r["pps"], r["added"]["machine_ns"],
                  r["added"]["added_ns"]) for r in flagged)))
    elif any(r.get("added") for r in results + srtp_results):
        w("The machine-wide added busy time agrees with the added CPU within %d %% (or %d ns) in every run "
          "with a baseline." % (100 * AGREE_LIMIT, AGREE_FLOOR_NS))
    else:
        w("No added-CPU figures: no direct run to subtract (BASELINE=0, or the direct runs failed).")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if os.environ.get("OUT"):
        with open(os.environ["OUT"], "w") as f:
            f.write(text)


if __name__ == "__main__":
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sys.exit(main())
    finally:
        stop_all()
