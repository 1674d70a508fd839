/*
 * rtpload: paced G.711 RTP load generator and sink in one single-threaded process.
 *
 * Two sockets stand for the two sides of every call: A (--local:--a-port) and B
 * (--local:--b-port), sending to the relay at --remote (both 127.0.0.1 by default). For session k of the map file ("PORT_A PORT_B" per line), stream 2k
 * goes from A to the relay's PORT_A (the relay delivers it to B) and stream 2k+1 from B to the
 * relay's PORT_B (delivered to A). With --dirs ab only the A->B streams are sent. A direct
 * baseline (no relay) is a map whose lines read "B_PORT A_PORT".
 *
 * Packets: 12-byte RTP header (PT 0, per-stream SSRC, seq +1, timestamp +160 per packet) and
 * 160 bytes of payload that start with a marker, the stream id, a CLOCK_MONOTONIC send time
 * and a warm-up flag. With --srtp-key the A->B packets are protected with libsrtp
 * (AES_CM_128_HMAC_SHA1_80, one master key for every stream: the SSRCs differ, so the key
 * streams do too) and the relay is expected to deliver plain RTP.
 *
 * Pacing: the packets of all streams form one schedule, packet j being due at
 * start + j / total_rate, stream j mod N; so the N streams are evenly staggered and each one
 * sends at total_rate / N. Due packets are sent with sendmmsg in batches of --batch, and what
 * arrived is read with recvmmsg in the same round.
 *
 * Latency (--rx-stamp): "kernel" (the default) takes the arrival time from the kernel's
 * receive timestamp of each datagram (SO_TIMESTAMPNS), so the sink need not be awake when a
 * packet arrives: the process sleeps on the clock only (clock_nanosleep, rounds at least
 * --tick-us apart, default 100 us) and reads in batches, which keeps its own CPU use low and
 * its scheduling delays out of the figures. That timestamp is CLOCK_REALTIME, so the send
 * time in the payload is CLOCK_REALTIME too (a step of the clock during a run would show as
 * an outlier; slewing is negligible over microseconds). "user" stamps with CLOCK_MONOTONIC
 * at both ends, the receive time being read when recvmmsg returns, and sleeps in ppoll on
 * both sockets so that it wakes for every arrival (more precise pacing, more CPU, and the
 * sink's own wake-up delay included in the figures).
 *
 * Phases: --warmup seconds (packets flagged, not counted: latching, caches), --seconds of
 * measurement, then --drain-ms of receiving only. The CPU time of --cpu-pid (utime + stime of
 * /proc/PID/stat, all its threads), this process's own CPU time (getrusage) and the busy time
 * of the whole machine (/proc/stat, all CPUs) are read at the start of the measurement and at
 * the end of the drain, so that all three cover the same window: the driver subtracts the
 * generator's and the machine's figures of a run without relay from them, which counts work
 * a relay causes outside its own process (in-kernel forwarding runs in the softirq of the
 * sender, on loopback this generator). One line "result key=value ..." is printed on stdout
 * at the end.
 *
 * Every loop is bounded by the phase deadlines; the process exits after
 * warmup + seconds + drain at the latest (plus the time of one round).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_SRTP
#include <srtp2/srtp.h>
#endif

#define PAYLOAD 160
#define HDR 12
#define PKT (HDR + PAYLOAD)
#define MAXPKT 256 /* room for the SRTP tag */
#define MAXBATCH 256
#define MAGIC 0x53574231u /* "SWB1" */
#define HIST_US 200000      /* 1 us buckets up to 200 ms; above goes to the overflow bucket */

struct stream {
    uint16_t seq;
    uint32_t ts;
    uint64_t sent;     /* measured packets sent */
    uint64_t recv;     /* measured packets received */
    uint64_t late;     /* received with seq not above the last one (duplicates, reordering) */
    int have_last;
    uint16_t last_seq;
};

static int kstamp = 1; /* latency from the kernel's receive timestamps (see the top comment) */
static int64_t tick_ns = 100000;

static int64_t realtime_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "rtpload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint32_t local_addr = 0x7f000001, remote_addr = 0x7f000001; /* host order */

static int udp_socket(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    /* Large buffers on the harness side only: the sink's two sockets take the whole load, and
     * their drops would be charged to the relay otherwise (the driver reads them per socket). */
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(local_addr)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    int one = 1;
    if (kstamp && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) die("SO_TIMESTAMPNS");
    return fd;
}

#define MAXPIDS 64

static uint64_t proc_cpu_ticks(int pid);

/* CPU ticks of a comma-separated list of PIDs (the ksoftirqd threads). */
static uint64_t pids_cpu_ticks(const int *pids, int n) {
    uint64_t t = 0;
    for (int i = 0; i < n; i++) t += proc_cpu_ticks(pids[i]);
    return t;
}

static uint64_t proc_cpu_ticks(int pid) {
    if (pid <= 0) return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return 0;
    p += 2;
    /* fields after the name: 3 state ... 14 utime 15 stime */
    unsigned long long ut = 0, st = 0;
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) { st = strtoull(tok, NULL, 10); break; }
    }
    return ut + st;
}

/* Receive-buffer drops of UDP sockets: those of the two harness sockets (the sink), from this
 * process's network namespace, and those of every other socket (the relay's), from the
 * relay's (/proc/PID/net/udp: the relay may live in another namespace). */
static void udp_drops_of(const char *path, int a_port, int b_port, uint64_t *sink, uint64_t *other) {
    *sink = *other = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    if (!fgets(line, sizeof line, f)) { fclose(f); return; }
    while (fgets(line, sizeof line, f)) {
        unsigned addr, port;
        if (sscanf(line, " %*d: %x:%x", &addr, &port) != 2) continue;
        char *last = strrchr(line, ' ');
        if (!last) continue;
        uint64_t d = strtoull(last + 1, NULL, 10);
        if ((int)port == a_port || (int)port == b_port) *sink += d;
        else *other += d;
    }
    fclose(f);
}

static void udp_drops(int relay_pid, int a_port, int b_port, uint64_t *sink, uint64_t *other) {
    uint64_t unused;
    char path[64];
    udp_drops_of("/proc/self/net/udp", a_port, b_port, sink, &unused);
    if (relay_pid > 0) snprintf(path, sizeof path, "/proc/%d/net/udp", relay_pid);
    else snprintf(path, sizeof path, "/proc/self/net/udp");
    udp_drops_of(path, a_port, b_port, &unused, other);
}

/* Ticks of one line of /proc/stat: "cpuN " for one CPU, "cpu " for the sum over all CPUs.
 * busy: user + nice + system + irq + softirq + steal (everything but idle and iowait);
 * softirq apart, since in-kernel forwarding and the loopback delivery are accounted there;
 * idle: idle + iowait. *ncpu (if given): the number of "cpuN" lines, the CPUs online. */
static void cpu_line_of(const char *want, uint64_t *busy, uint64_t *total, uint64_t *softirq, uint64_t *idle,
                        int *ncpu) {
    *busy = *total = *softirq = *idle = 0;
    if (ncpu) *ncpu = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (ncpu && !strncmp(line, "cpu", 3) && line[3] >= '0' && line[3] <= '9') (*ncpu)++;
        if (strncmp(line, want, strlen(want))) continue;
        unsigned long long v[10] = {0};
        sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
        for (int i = 0; i < 8; i++) *total += v[i];
        *busy = *total - v[3] - v[4];
        *softirq = v[6];
        *idle = v[3] + v[4];
    }
    fclose(f);
}

static void cpu_line(int cpu, uint64_t *busy, uint64_t *total) {
    *busy = *total = 0;
    if (cpu < 0) return;
    char want[32];
    uint64_t softirq, idle;
    snprintf(want, sizeof want, "cpu%d ", cpu);
    cpu_line_of(want, busy, total, &softirq, &idle, NULL);
}

static double cpu_seconds_self(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

#ifdef WITH_SRTP
static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int b64decode(const char *s, uint8_t *out, int max) {
    int n = 0, bits = 0;
    uint32_t acc = 0;
    for (; *s && *s != '='; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= max) return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}
#endif

static struct stream *g_st;
static uint64_t g_send_errors, *g_sent_measured;

/* Sends the batch; what the kernel refused is counted as a send error and taken out of the
 * sent counts, so that it is not reported as loss of the relay. */
static void flush(int fd, struct mmsghdr *m, const int *sid, int *count) {
    int off = 0;
    while (off < *count) {
        int r = sendmmsg(fd, m + off, (unsigned)(*count - off), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            /* Drop only the first packet and retry the rest: a full send buffer empties at once
             * on loopback. Bounded: each pass removes at least one packet. */
            g_send_errors++;
            if (sid[off] >= 0) { g_st[sid[off]].sent--; (*g_sent_measured)--; }
            off++;
            continue;
        }
        off += r;
    }
    *count = 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: rtpload --map FILE --a-port P --b-port P --pps TOTAL --seconds S [--warmup S]\n"
            "               [--drain-ms MS] [--dirs both|ab] [--batch N] [--cpu-pid PID]\n"
            "               [--srtp-key BASE64] [--rx-stamp kernel|user] [--tick-us US]\n"
            "               [--relay-cpu N] [--softirqd-pids PID,PID,...] [--local IP] [--remote IP]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *map = NULL, *srtp_key = NULL;
    int a_port = 0, b_port = 0, batch = 64, cpu_pid = 0, both = 1, relay_cpu = -1;
    int sirq_pids[MAXPIDS], nsirq = 0;
    double pps = 0, seconds = 0, warmup = 1, drain_ms = 500;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(o, "--map")) map = v;
        else if (!strcmp(o, "--a-port")) a_port = atoi(v);
        else if (!strcmp(o, "--b-port")) b_port = atoi(v);
        else if (!strcmp(o, "--pps")) pps = atof(v);
        else if (!strcmp(o, "--seconds")) seconds = atof(v);
        else if (!strcmp(o, "--warmup")) warmup = atof(v);
        else if (!strcmp(o, "--drain-ms")) drain_ms = atof(v);
        else if (!strcmp(o, "--dirs")) both = strcmp(v, "ab") != 0;
        else if (!strcmp(o, "--batch")) batch = atoi(v);
        else if (!strcmp(o, "--cpu-pid")) cpu_pid = atoi(v);
        else if (!strcmp(o, "--srtp-key")) srtp_key = v;
        else if (!strcmp(o, "--rx-stamp")) kstamp = strcmp(v, "user") != 0;
        else if (!strcmp(o, "--tick-us")) tick_ns = (int64_t)(atof(v) * 1000);
        else if (!strcmp(o, "--relay-cpu")) relay_cpu = atoi(v);
        else if (!strcmp(o, "--local") || !strcmp(o, "--remote")) {
            struct in_addr ia;
            if (inet_pton(AF_INET, v, &ia) != 1) usage();
            if (!strcmp(o, "--local")) local_addr = ntohl(ia.s_addr);
            else remote_addr = ntohl(ia.s_addr);
        }
        else if (!strcmp(o, "--softirqd-pids")) {
            /* Softirq work the kernel defers to its ksoftirqd threads is charged to them, not to
             * the process whose send raised it; their CPU time is read with the others. */
            for (const char *q = v; *q && nsirq < MAXPIDS;) {
                int pid = atoi(q);
                if (pid > 0) sirq_pids[nsirq++] = pid;
                const char *c = strchr(q, ',');
                if (!c) break;
                q = c + 1;
            }
        }
        else usage();
    }
    if (!map || a_port <= 0 || b_port <= 0 || pps <= 0 || seconds <= 0 || batch < 1 ||
        batch > MAXBATCH || warmup < 0 || seconds > 3600 || warmup > 600 || drain_ms < 0 ||
        drain_ms > 60000 || tick_ns < 0 || tick_ns > 20000000)
        usage();

    /* The sessions: relay ports (host order). */
    FILE *mf = fopen(map, "r");
    if (!mf) die(map);
    int cap = 1024, nsess = 0;
    int (*ports)[2] = malloc(sizeof(int[2]) * cap);
    int pa, pb;
    while (fscanf(mf, "%d %d", &pa, &pb) == 2) {
        if (pa <= 0 || pa > 65535 || pb <= 0 || pb > 65535) { fprintf(stderr, "rtpload: bad port in map\n"); return 2; }
        if (nsess == cap) { cap *= 2; ports = realloc(ports, sizeof(int[2]) * cap); }
        if (!ports) die("realloc");
        ports[nsess][0] = pa;
        ports[nsess][1] = pb;
        nsess++;
    }
    fclose(mf);
    if (nsess == 0) { fprintf(stderr, "rtpload: empty map\n"); return 2; }
    int nstreams = both ? 2 * nsess : nsess;

#ifdef WITH_SRTP
    srtp_t srtp = NULL;
    if (srtp_key) {
        uint8_t key[64];
        int klen = b64decode(srtp_key, key, sizeof key);
        if (klen != 30) { fprintf(stderr, "rtpload: the SRTP key must be 30 bytes of base64 (key and salt)\n"); return 2; }
        if (srtp_init() != srtp_err_status_ok) { fprintf(stderr, "rtpload: srtp_init failed\n"); return 1; }
        srtp_policy_t pol;
        memset(&pol, 0, sizeof pol);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
        pol.ssrc.type = ssrc_any_outbound;
        pol.key = key;
        pol.window_size = 1024;
        pol.next = NULL;
        if (srtp_create(&srtp, &pol) != srtp_err_status_ok) { fprintf(stderr, "rtpload: srtp_create failed\n"); return 1; }
    }
#else
    if (srtp_key) { fprintf(stderr, "rtpload: built without libsrtp\n"); return 2; }
#endif

    int fd[2] = {udp_socket(a_port), udp_socket(b_port)};
    struct stream *st = calloc((size_t)nstreams, sizeof *st);
    uint32_t *hist = calloc(HIST_US + 1, sizeof *hist);
    if (!st || !hist) die("calloc");

    /* Send batches, one per side, and receive buffers. */
    static uint8_t sbuf[2][MAXBATCH][MAXPKT], rbuf[MAXBATCH][MAXPKT];
    static struct mmsghdr smsg[2][MAXBATCH], rmsg[MAXBATCH];
    static struct iovec siov[2][MAXBATCH], riov[MAXBATCH];
    static char rctl[MAXBATCH][CMSG_SPACE(sizeof(struct timespec))];
    static struct sockaddr_in sdst[2][MAXBATCH];
    int scount[2] = {0, 0};
    static int slot_sid[2][MAXBATCH];
    for (int i = 0; i < MAXBATCH; i++) {
        riov[i].iov_base = rbuf[i];
        riov[i].iov_len = MAXPKT;
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
    }

    const int64_t t_start = now_ns() + 50 * 1000000LL; /* a little lead for the first round */
    const int64_t t_measure = t_start + (int64_t)(warmup * 1e9);
    const int64_t t_end_send = t_measure + (int64_t)(seconds * 1e9);
    const int64_t t_end = t_end_send + (int64_t)(drain_ms * 1e6);
    const double ns_per_pkt = 1e9 / pps;

    uint64_t j = 0; /* next packet of the global schedule */
    uint64_t sent_measured = 0, sent_warm = 0;
    g_st = st;
    g_sent_measured = &sent_measured;
    uint64_t recv_measured = 0, recv_warm = 0, recv_foreign = 0, recv_after_100ms = 0;
    int64_t max_lag = 0, lag_over_5ms = 0;
    uint64_t sirq0 = 0, sirq1 = 0;
    uint64_t cpu0 = 0, cpu1 = 0, sink_drops0 = 0, relay_drops0 = 0, core_busy0 = 0, core_total0 = 0;
    uint64_t all_busy0 = 0, all_total0 = 0, all_softirq0 = 0, all_idle0 = 0;
    int64_t wall0 = 0;
    int ncpu = 0;
    double self0 = 0, self1 = 0;
    int measuring = 0;
    uint64_t max_us = 0;

    for (;;) {
        int64_t now = now_ns(), round_start = now;
        if (!measuring && now >= t_measure) {
            measuring = 1;
            cpu0 = proc_cpu_ticks(cpu_pid);
            sirq0 = pids_cpu_ticks(sirq_pids, nsirq);
            self0 = cpu_seconds_self();
            udp_drops(cpu_pid, a_port, b_port, &sink_drops0, &relay_drops0);
            cpu_line(relay_cpu, &core_busy0, &core_total0);
            cpu_line_of("cpu ", &all_busy0, &all_total0, &all_softirq0, &all_idle0, &ncpu);
            wall0 = now_ns();
        }
        /* The round at or after t_end still reads: what arrived during the last sleep. */
        int last_round = now >= t_end;

        /* Send everything due, but at most 4096 packets per round so that receiving is not
         * starved when the pacer is behind. */
        int budget = 4096;
        while (now < t_end_send && budget > 0) {
            int64_t due = t_start + (int64_t)((double)j * ns_per_pkt);
            if (due > now) break;
            if (now - due > max_lag) max_lag = now - due;
            if (now - due > 5000000) lag_over_5ms++;
            int s = (int)(j % (uint64_t)nstreams);
            int sess = both ? s / 2 : s;
            int side = both ? (s & 1) : 0; /* 0: sent by A to the relay's PORT_A */
            struct stream *x = &st[s];
            int warm = due < t_measure;
            int k = scount[side];
            uint8_t *p = sbuf[side][k];
            p[0] = 0x80;
            p[1] = 0; /* PT 0, PCMU */
            p[2] = (uint8_t)(x->seq >> 8);
            p[3] = (uint8_t)x->seq;
            p[4] = (uint8_t)(x->ts >> 24);
            p[5] = (uint8_t)(x->ts >> 16);
            p[6] = (uint8_t)(x->ts >> 8);
            p[7] = (uint8_t)x->ts;
            uint32_t ssrc = 0x10000000u + (uint32_t)s;
            p[8] = (uint8_t)(ssrc >> 24);
            p[9] = (uint8_t)(ssrc >> 16);
            p[10] = (uint8_t)(ssrc >> 8);
            p[11] = (uint8_t)ssrc;
            uint32_t magic = MAGIC, sid = (uint32_t)s, flags = (uint32_t)warm;
            int64_t stamp = kstamp ? realtime_ns() : now_ns();
            memcpy(p + HDR, &magic, 4);
            memcpy(p + HDR + 4, &sid, 4);
            memcpy(p + HDR + 8, &stamp, 8);
            memcpy(p + HDR + 16, &flags, 4);
            memset(p + HDR + 20, 0xff, PAYLOAD - 20); /* mu-law silence */
            int len = PKT;
#ifdef WITH_SRTP
            if (srtp && side == 0) {
                if (srtp_protect(srtp, p, &len) != srtp_err_status_ok) {
                    fprintf(stderr, "rtpload: srtp_protect failed\n");
                    return 1;
                }
            }
#endif
            siov[side][k].iov_base = p;
            siov[side][k].iov_len = (size_t)len;
            sdst[side][k] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(ports[sess][side]),
                                                 .sin_addr.s_addr = htonl(remote_addr)};
            smsg[side][k].msg_hdr = (struct msghdr){.msg_name = &sdst[side][k],
                                                    .msg_namelen = sizeof(struct sockaddr_in),
                                                    .msg_iov = &siov[side][k], .msg_iovlen = 1};
            slot_sid[side][k] = warm ? -1 : s;
            if (warm) sent_warm++;
            else { x->sent++; sent_measured++; }
            x->seq++;
            x->ts += 160;
            scount[side]++;
            j++;
            budget--;
            if (scount[side] == batch) flush(fd[side], smsg[side], slot_sid[side], &scount[side]);
        }
        for (int sd = 0; sd < 2; sd++)
            if (scount[sd]) flush(fd[sd], smsg[sd], slot_sid[sd], &scount[sd]);

        /* Receive whatever is there, bounded per round. */
        for (int sd = 0; sd < 2; sd++) {
            for (int rounds = 0; rounds < 64; rounds++) {
                for (int q = 0; q < MAXBATCH; q++) {
                    rmsg[q].msg_hdr.msg_control = kstamp ? rctl[q] : NULL;
                    rmsg[q].msg_hdr.msg_controllen = kstamp ? sizeof rctl[q] : 0;
                }
                int r = recvmmsg(fd[sd], rmsg, MAXBATCH, MSG_DONTWAIT, NULL);
                if (r <= 0) break;
                int64_t tmono = now_ns();
                for (int q = 0; q < r; q++) {
                    int64_t t = tmono;
                    if (kstamp) {
                        t = 0;
                        for (struct cmsghdr *c = CMSG_FIRSTHDR(&rmsg[q].msg_hdr); c;
                             c = CMSG_NXTHDR(&rmsg[q].msg_hdr, c)) {
                            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                                struct timespec ts;
                                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                                t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
                            }
                        }
                        if (t == 0) t = realtime_ns(); /* no timestamp: the sink's own clock */
                    }
                    const uint8_t *p = rbuf[q];
                    unsigned len = rmsg[q].msg_len;
                    uint32_t magic, sid, flags;
                    int64_t stamp;
                    if (len < HDR + 20) { recv_foreign++; continue; }
                    memcpy(&magic, p + HDR, 4);
                    memcpy(&sid, p + HDR + 4, 4);
                    memcpy(&stamp, p + HDR + 8, 8);
                    memcpy(&flags, p + HDR + 16, 4);
                    if (magic != MAGIC || sid >= (uint32_t)nstreams) { recv_foreign++; continue; }
                    /* A->B streams (even, or all with --dirs ab) arrive on B, the others on A. */
                    int expect_side = both ? ((sid & 1) ? 0 : 1) : 1;
                    if (expect_side != sd) { recv_foreign++; continue; }
                    if (flags & 1) { recv_warm++; continue; }
                    struct stream *x = &st[sid];
                    uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
                    if (x->have_last && (int16_t)(seq - x->last_seq) <= 0) x->late++;
                    else { x->last_seq = seq; x->have_last = 1; }
                    x->recv++;
                    recv_measured++;
                    if (tmono > t_end_send + 100000000LL) recv_after_100ms++;
                    int64_t d = t - stamp;
                    uint64_t us = d > 0 ? (uint64_t)(d / 1000) : 0;
                    if (us > max_us) max_us = us;
                    hist[us < HIST_US ? us : HIST_US]++;
                }
                if (r < MAXBATCH) break;
            }
        }

        if (last_round) break;

        /* Sleep until the next due packet (or the end), waking for arrivals; during the drain
         * (kernel timestamps) in ticks, so that what arrives is read as it comes. */
        now = now_ns();
        int64_t next = now < t_end_send ? t_start + (int64_t)((double)j * ns_per_pkt) : t_end;
        if (next > t_end_send && now < t_end_send) next = t_end_send;
        if (now >= t_end_send && next > now + 1000000) next = now + 1000000;
        if (!measuring && next > t_measure) next = t_measure;
        if (next > t_end) next = t_end;
        if (kstamp) {
            /* Arrivals carry their own timestamps: sleep on the clock only, at least one tick
             * per round, and take what arrived in batches. */
            if (next < round_start + tick_ns) next = round_start + tick_ns;
            if (next > t_end) next = t_end;
            struct timespec to = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
            if (next > now) clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &to, NULL);
        } else if (next > now) {
            struct pollfd pfd[2] = {{.fd = fd[0], .events = POLLIN}, {.fd = fd[1], .events = POLLIN}};
            int64_t w = next - now;
            struct timespec to = {.tv_sec = w / 1000000000, .tv_nsec = w % 1000000000};
            ppoll(pfd, 2, &to, NULL);
        }
    }
    cpu1 = proc_cpu_ticks(cpu_pid);
    sirq1 = pids_cpu_ticks(sirq_pids, nsirq);
    self1 = cpu_seconds_self();
    uint64_t sink_drops1 = 0, relay_drops1 = 0, core_busy1 = 0, core_total1 = 0;
    /* The machine's busy time is taken as wall time x CPUs - (idle + iowait): /proc/stat's busy
     * fields are sampled by the scheduler tick and miss bursts shorter than a tick (a relay
     * woken every few hundred microseconds is mostly such bursts), while on a tickless
     * (NO_HZ) kernel idle and iowait are measured exactly. machine_busy_ticks_s is the sampled
     * sum, for comparison. */
    uint64_t all_busy1 = 0, all_total1 = 0, all_softirq1 = 0, all_idle1 = 0;
    cpu_line(relay_cpu, &core_busy1, &core_total1);
    cpu_line_of("cpu ", &all_busy1, &all_total1, &all_softirq1, &all_idle1, NULL);
    double wall_s = (double)(now_ns() - wall0) / 1e9;
    udp_drops(cpu_pid, a_port, b_port, &sink_drops1, &relay_drops1);

    uint64_t lost = 0, streams_with_loss = 0, late = 0;
    double worst_stream_loss = 0;
    for (int s = 0; s < nstreams; s++) {
        uint64_t l = st[s].sent > st[s].recv ? st[s].sent - st[s].recv : 0;
        lost += l;
        late += st[s].late;
        if (l) {
            streams_with_loss++;
            double f = (double)l / (double)st[s].sent;
            if (f > worst_stream_loss) worst_stream_loss = f;
        }
    }
    /* Percentiles from the 1 us histogram. */
    uint64_t total = 0;
    for (int i = 0; i <= HIST_US; i++) total += hist[i];
    double qs[3] = {0.50, 0.99, 0.999};
    uint64_t pv[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        uint64_t want = (uint64_t)((double)total * qs[k]), acc = 0;
        if (want == 0) want = 1;
        for (int i = 0; i <= HIST_US; i++) {
            acc += hist[i];
            if (acc >= want) { pv[k] = (uint64_t)i; break; }
        }
    }
    /* Packets the schedule had due in the measured window; fewer sent means the generator fell
     * behind (CPU shared with the relay): the rate was not really offered. */
    double q_lo = (double)(t_measure - t_start) / ns_per_pkt, q_hi = (double)(t_end_send - t_start) / ns_per_pkt;
    uint64_t scheduled = (uint64_t)(q_hi - q_lo + 0.5);
    long hz = sysconf(_SC_CLK_TCK);
    /* The relay's core: how busy it was, and how much of it went to other processes. */
    double core_total = (double)(core_total1 - core_total0);
    double core_busy_pct = core_total > 0 ? 100.0 * (double)(core_busy1 - core_busy0) / core_total : -1;
    double core_others_pct =
        core_total > 0 ? 100.0 * ((double)(core_busy1 - core_busy0) - (double)(cpu1 - cpu0)) / core_total : -1;
    uint64_t late200 = hist[HIST_US];
    double relay_cpu_s = cpu_pid > 0 ? (double)(cpu1 - cpu0) / (double)hz : 0;
    double window_s = seconds + drain_ms / 1000.0;
    printf("result streams=%d sessions=%d offered_pps=%.0f scheduled=%llu sent=%llu recv=%llu lost=%llu loss_pct=%.4f "
           "send_errors=%llu late=%llu streams_with_loss=%llu worst_stream_loss_pct=%.3f foreign=%llu "
           "warm_sent=%llu warm_recv=%llu p50_us=%llu p99_us=%llu p999_us=%llu max_us=%llu "
           "relay_cpu_s=%.3f relay_cpu_ns_per_pkt=%.0f relay_cpu_pct=%.1f gen_cpu_pct=%.1f "
           "max_lag_us=%lld lag_over_5ms=%lld recv_100ms_after_end=%llu sink_drops=%llu relay_drops=%llu "
           "late200=%llu lost_or_late_pct=%.4f relay_core_busy_pct=%.1f relay_core_others_pct=%.1f "
           "gen_cpu_s=%.6f machine_busy_s=%.3f machine_busy_ticks_s=%.3f machine_total_s=%.3f "
           "machine_softirq_s=%.3f machine_idle_s=%.3f machine_wall_s=%.6f machine_cpus=%d softirqd_cpu_s=%.3f\n",
           nstreams, nsess, pps, (unsigned long long)scheduled, (unsigned long long)sent_measured, (unsigned long long)recv_measured,
           (unsigned long long)lost, sent_measured ? 100.0 * (double)lost / (double)sent_measured : 0.0,
           (unsigned long long)g_send_errors, (unsigned long long)late, (unsigned long long)streams_with_loss,
           100.0 * worst_stream_loss, (unsigned long long)recv_foreign, (unsigned long long)sent_warm,
           (unsigned long long)recv_warm, (unsigned long long)pv[0], (unsigned long long)pv[1],
           (unsigned long long)pv[2], (unsigned long long)max_us, relay_cpu_s,
           recv_measured ? relay_cpu_s * 1e9 / (double)recv_measured : 0.0, 100.0 * relay_cpu_s / window_s,
           100.0 * (self1 - self0) / window_s, (long long)(max_lag / 1000), (long long)lag_over_5ms,
           (unsigned long long)recv_after_100ms,
           (unsigned long long)(sink_drops1 - sink_drops0), (unsigned long long)(relay_drops1 - relay_drops0),
           (unsigned long long)late200,
           sent_measured ? 100.0 * (double)(lost + late200) / (double)sent_measured : 0.0, core_busy_pct,
           core_others_pct, self1 - self0, wall_s * ncpu - (double)(all_idle1 - all_idle0) / (double)hz,
           (double)(all_busy1 - all_busy0) / (double)hz, (double)(all_total1 - all_total0) / (double)hz,
           (double)(all_softirq1 - all_softirq0) / (double)hz, (double)(all_idle1 - all_idle0) / (double)hz, wall_s,
           ncpu, (double)(sirq1 - sirq0) / (double)hz);
    return 0;
}
