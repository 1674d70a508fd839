/*
 * fwd: the physical reference for the media benchmark. A minimal RTP forwarder with the same
 * socket layout as a media relay (one UDP socket per port, two ports per call) and nothing
 * else: no latching, no parsing, no timers. Packets that arrive on a call's PORT_A are sent
 * from its PORT_B to B's address, and the reverse, with recvmmsg/sendmmsg in batches.
 *
 * It speaks the control contract of sipwarden's relay-bench example, so that the benchmark
 * drives both the same way:
 *   fwd --addr 127.0.0.1 --port-min 30000 --port-max 39999 [--workers N] [--batch N] [--connect 0|1]
 *   prints "ready", then one answer line per command line on stdin:
 *   create ID A_IP:A_PORT B_IP:B_PORT [srtp=BASE64]  -> ok ID PORT_A PORT_B
 *   delete ID                                        -> ok ID
 *   stats    -> {"packets_in":..,"packets_out":..,"bytes":..,"drops":{"send":..,"srtp":..}}
 *   EOF      -> the workers stop and the process exits.
 * The mapping is static: the destinations are the addresses given to create.
 * With srtp=KEY (30 bytes of base64, AES_CM_128_HMAC_SHA1_80), what A sends is SRTP and is
 * authenticated and decrypted before it goes to B; B's direction stays plain RTP. The SRTP
 * transform is written here on OpenSSL's AES-128-CTR and HMAC-SHA1 (RFC 3711 sections 4.1.1,
 * 4.2, 4.3 with a key derivation rate of 0, roll-over counter guessed as in its Appendix A,
 * no replay list): Debian's libsrtp2 is built with its own AES, several times slower than
 * OpenSSL's AES-NI path, which would make the reference slower than the relays it bounds.
 * The generator encrypts with libsrtp2, so a run without authentication failures also
 * checks this code against it.
 *
 * Workers: call k is served by worker k mod N, each worker with its own epoll set, so a
 * socket is only ever read by one thread (and a call's SRTP context used by one thread).
 * delete closes the sockets after removing them from the epoll set; it is meant for an idle
 * call (the benchmark deletes nothing while traffic flows).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef WITH_SRTP
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif

#define MAXBATCH 64
#define MAXPKT 2048
#define MAXCALLS 20000

struct call;
struct end {
    struct call *call;
    int side; /* 0: PORT_A (A sends here), 1: PORT_B */
};

struct call {
    int fd[2];
    int port[2];
    struct sockaddr_in dst[2]; /* dst[0]: A's address, dst[1]: B's */
    struct end ends[2];
    int worker;
    int live;
#ifdef WITH_SRTP
    struct srtp_in *srtp_in; /* decrypts what A sends */
#endif
};

struct worker {
    pthread_t th;
    int ep;
    /* Counters, written by the worker only and read by the main thread (relaxed). */
    uint64_t in, out, bytes, drop_send, drop_srtp;
    char pad[64];
};

#ifdef WITH_SRTP
struct srtp_in {
    EVP_CIPHER_CTX *aes; /* AES-128-CTR with the session encryption key */
    HMAC_CTX *mac;       /* HMAC-SHA1 with the session authentication key */
    uint8_t salt[14];
    int have;            /* a packet was accepted: ssrc, s_l and roc are valid */
    uint32_t ssrc, roc;
    uint16_t s_l;
};

/* AES-CM keystream of `len` bytes for the IV (the key derivation of RFC 3711 4.3.1). */
static int aes_cm(const uint8_t key[16], const uint8_t iv[16], uint8_t *out, int len) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t zero[64] = {0};
    int n = 0, ok = c && len <= (int)sizeof zero && EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv) == 1 &&
                    EVP_EncryptUpdate(c, out, &n, zero, len) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

static struct srtp_in *srtp_in_new(const uint8_t master[30]) {
    const uint8_t *mkey = master, *msalt = master + 16;
    uint8_t ek[16], ak[20], iv[16];
    struct srtp_in *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    /* label 0: encryption key, 1: authentication key, 2: salt (key_id = label || 0). */
    for (int label = 0; label < 3; label++) {
        memset(iv, 0, sizeof iv);
        memcpy(iv, msalt, 14);
        iv[7] ^= (uint8_t)label;
        uint8_t *out = label == 0 ? ek : label == 1 ? ak : s->salt;
        int len = label == 0 ? 16 : label == 1 ? 20 : 14;
        if (aes_cm(mkey, iv, out, len)) { free(s); return NULL; }
    }
    s->aes = EVP_CIPHER_CTX_new();
    s->mac = HMAC_CTX_new();
    if (!s->aes || !s->mac || EVP_EncryptInit_ex(s->aes, EVP_aes_128_ctr(), NULL, ek, NULL) != 1 ||
        HMAC_Init_ex(s->mac, ak, 20, EVP_sha1(), NULL) != 1) {
        EVP_CIPHER_CTX_free(s->aes);
        HMAC_CTX_free(s->mac);
        free(s);
        return NULL;
    }
    return s;
}

/* Checks and decrypts one SRTP packet in place; returns the RTP length or -1. */
static int srtp_unprotect_min(struct srtp_in *s, uint8_t *p, int len) {
    if (len < 12 + 10 || (p[0] >> 6) != 2) return -1;
    int hdr = 12 + 4 * (p[0] & 0x0f);
    if (p[0] & 0x10) {
        if (len < hdr + 4 + 10) return -1;
        hdr += 4 + 4 * ((p[hdr + 2] << 8) | p[hdr + 3]);
    }
    int body = len - 10; /* the 80-bit tag */
    if (body < hdr) return -1;
    uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
    uint32_t ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
    uint32_t roc = 0;
    if (s->have && s->ssrc == ssrc) {
        /* RFC 3711 Appendix A: the roll-over counter this packet most likely belongs to. */
        roc = s->roc;
        if (s->s_l < 32768) {
            if (seq - s->s_l > 32768) roc = s->roc - 1;
        } else if (s->s_l - 32768 > seq) {
            roc = s->roc + 1;
        }
    }
    uint8_t rb[4] = {(uint8_t)(roc >> 24), (uint8_t)(roc >> 16), (uint8_t)(roc >> 8), (uint8_t)roc};
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (HMAC_Init_ex(s->mac, NULL, 0, NULL, NULL) != 1 || HMAC_Update(s->mac, p, (size_t)body) != 1 ||
        HMAC_Update(s->mac, rb, 4) != 1 || HMAC_Final(s->mac, md, &mdlen) != 1 || mdlen < 10)
        return -1;
    uint8_t diff = 0;
    for (int i = 0; i < 10; i++) diff |= md[i] ^ p[body + i];
    if (diff) return -1;
    /* IV = salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16, index = roc * 2^16 + seq. */
    uint8_t iv[16] = {0};
    memcpy(iv, s->salt, 14);
    for (int i = 0; i < 4; i++) iv[4 + i] ^= (uint8_t)(ssrc >> (24 - 8 * i));
    uint64_t index = ((uint64_t)roc << 16) | seq;
    for (int i = 0; i < 6; i++) iv[8 + i] ^= (uint8_t)(index >> (40 - 8 * i));
    int n = 0;
    if (EVP_EncryptInit_ex(s->aes, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(s->aes, p + hdr, &n, p + hdr, body - hdr) != 1)
        return -1;
    if (!s->have || s->ssrc != ssrc) {
        s->have = 1;
        s->ssrc = ssrc;
        s->roc = 0;
        s->s_l = seq;
    } else if (roc == s->roc + 1) {
        s->roc = roc;
        s->s_l = seq;
    } else if (roc == s->roc && seq > s->s_l) {
        s->s_l = seq;
    }
    return body;
}
#endif

static struct call *calls[MAXCALLS];
static struct worker *workers;
static int nworkers = 1, batch = 32;
/* --connect 1: each port's socket is connect(2)ed to the address it sends to (the receive path
 * then uses early demux and the send path the socket's cached route; no msg_name per packet). */
static int connect_mode = 0;
static volatile int stopping;

static void *work(void *arg) {
    struct worker *w = arg;
    static __thread uint8_t buf[MAXBATCH][MAXPKT];
    static __thread struct mmsghdr msg[MAXBATCH];
    static __thread struct iovec iov[MAXBATCH];
    struct epoll_event ev[64];
    while (!__atomic_load_n(&stopping, __ATOMIC_RELAXED)) {
        int n = epoll_wait(w->ep, ev, 64, 100); /* bounded wait: the stop flag is polled */
        for (int e = 0; e < n; e++) {
            struct end *end = ev[e].data.ptr;
            struct call *c = end->call;
            int in = end->side, out = 1 - in;
            for (int i = 0; i < batch; i++) {
                iov[i].iov_base = buf[i];
                iov[i].iov_len = MAXPKT;
                msg[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
            }
            int r = recvmmsg(c->fd[in], msg, (unsigned)batch, MSG_DONTWAIT, NULL);
            if (r <= 0) continue;
            int k = 0;
            uint64_t bytes = 0;
            for (int i = 0; i < r; i++) {
                int len = (int)msg[i].msg_len;
                bytes += (uint64_t)len;
#ifdef WITH_SRTP
                if (in == 0 && c->srtp_in) {
                    len = srtp_unprotect_min(c->srtp_in, buf[i], len);
                    if (len < 0) {
                        __atomic_fetch_add(&w->drop_srtp, 1, __ATOMIC_RELAXED);
                        continue;
                    }
                }
#endif
                iov[k].iov_base = buf[i];
                iov[k].iov_len = (size_t)len;
                msg[k].msg_hdr = connect_mode
                                     ? (struct msghdr){.msg_iov = &iov[k], .msg_iovlen = 1}
                                     : (struct msghdr){.msg_name = &c->dst[out], .msg_namelen = sizeof c->dst[out],
                                                       .msg_iov = &iov[k], .msg_iovlen = 1};
                k++;
            }
            int off = 0;
            while (off < k) {
                int s = sendmmsg(c->fd[out], msg + off, (unsigned)(k - off), MSG_DONTWAIT);
                if (s <= 0) {
                    /* skip the packet the kernel refused, retry the rest */
                    __atomic_fetch_add(&w->drop_send, 1, __ATOMIC_RELAXED);
                    off++;
                    continue;
                }
                off += s;
            }
            __atomic_store_n(&w->in, w->in + (uint64_t)r, __ATOMIC_RELAXED);
            __atomic_store_n(&w->out, w->out + (uint64_t)k, __ATOMIC_RELAXED);
            __atomic_store_n(&w->bytes, w->bytes + bytes, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static int parse_addr(const char *s, struct sockaddr_in *a) {
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon - s >= (long)sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535) return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static struct in_addr bind_addr;
static int next_port, port_min, port_max;

/* Binds the next free port of the range (wrapping once). */
static int bind_next(int *port_out) {
    for (int tries = 0; tries <= port_max - port_min; tries++) {
        int p = next_port;
        next_port = next_port >= port_max ? port_min : next_port + 1;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p), .sin_addr = bind_addr};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            *port_out = p;
            return fd;
        }
        close(fd);
    }
    return -1;
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

static void cmd_create(char *args) {
    char *save = NULL;
    char *id = strtok_r(args, " ", &save), *a = strtok_r(NULL, " ", &save), *b = strtok_r(NULL, " ", &save);
    char *opt = strtok_r(NULL, " ", &save);
    if (!id || !a || !b) { printf("error bad-create\n"); return; }
    long k = strtol(id, NULL, 10);
    if (k < 0 || k >= MAXCALLS || calls[k]) { printf("error %s bad-or-used-id\n", id); return; }
    struct call *c = calloc(1, sizeof *c);
    if (!c || parse_addr(a, &c->dst[0]) || parse_addr(b, &c->dst[1])) { printf("error %s bad-address\n", id); free(c); return; }
#ifdef WITH_SRTP
    if (opt && !strncmp(opt, "srtp=", 5)) {
        uint8_t key[64];
        if (b64decode(opt + 5, key, sizeof key) != 30) { printf("error %s bad-key\n", id); free(c); return; }
        c->srtp_in = srtp_in_new(key);
        if (!c->srtp_in) { printf("error %s srtp\n", id); free(c); return; }
    }
#else
    if (opt) { printf("error %s built-without-srtp\n", id); free(c); return; }
#endif
    c->fd[0] = bind_next(&c->port[0]);
    c->fd[1] = c->fd[0] >= 0 ? bind_next(&c->port[1]) : -1;
    if (c->fd[1] < 0) {
        if (c->fd[0] >= 0) close(c->fd[0]);
        printf("error %s no-port\n", id);
        free(c);
        return;
    }
    if (connect_mode) {
        /* PORT_A talks to A (dst[0]), PORT_B to B (dst[1]). */
        for (int s = 0; s < 2; s++) {
            if (connect(c->fd[s], (struct sockaddr *)&c->dst[s], sizeof c->dst[s])) {
                close(c->fd[0]);
                close(c->fd[1]);
                printf("error %s connect\n", id);
                free(c);
                return;
            }
        }
    }
    c->worker = (int)(k % nworkers);
    calls[k] = c;
    c->live = 1;
    for (int s = 0; s < 2; s++) {
        c->ends[s] = (struct end){.call = c, .side = s};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->ends[s]};
        epoll_ctl(workers[c->worker].ep, EPOLL_CTL_ADD, c->fd[s], &ev);
    }
    printf("ok %s %d %d\n", id, c->port[0], c->port[1]);
}

static void cmd_delete(char *args) {
    long k = strtol(args, NULL, 10);
    if (k < 0 || k >= MAXCALLS || !calls[k] || !calls[k]->live) { printf("error %ld unknown\n", k); return; }
    struct call *c = calls[k];
    for (int s = 0; s < 2; s++) {
        epoll_ctl(workers[c->worker].ep, EPOLL_CTL_DEL, c->fd[s], NULL);
        close(c->fd[s]);
    }
    c->live = 0; /* the struct is kept: a worker may still hold a pointer from this round */
    printf("ok %ld\n", k);
}

static void cmd_stats(void) {
    uint64_t in = 0, out = 0, bytes = 0, ds = 0, dr = 0;
    for (int i = 0; i < nworkers; i++) {
        in += __atomic_load_n(&workers[i].in, __ATOMIC_RELAXED);
        out += __atomic_load_n(&workers[i].out, __ATOMIC_RELAXED);
        bytes += __atomic_load_n(&workers[i].bytes, __ATOMIC_RELAXED);
        ds += __atomic_load_n(&workers[i].drop_send, __ATOMIC_RELAXED);
        dr += __atomic_load_n(&workers[i].drop_srtp, __ATOMIC_RELAXED);
    }
    printf("{\"packets_in\":%llu,\"packets_out\":%llu,\"bytes\":%llu,\"drops\":{\"send\":%llu,\"srtp\":%llu}}\n",
           (unsigned long long)in, (unsigned long long)out, (unsigned long long)bytes, (unsigned long long)ds,
           (unsigned long long)dr);
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1";
    port_min = 30000;
    port_max = 39999;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--addr")) addr = argv[i + 1];
        else if (!strcmp(argv[i], "--port-min")) port_min = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--port-max")) port_max = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers")) nworkers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--connect")) connect_mode = atoi(argv[i + 1]);
        else { fprintf(stderr, "fwd: unknown option %s\n", argv[i]); return 2; }
    }
    if (inet_pton(AF_INET, addr, &bind_addr) != 1 || port_min < 1 || port_max > 65535 || port_min > port_max ||
        nworkers < 1 || nworkers > 64 || batch < 1 || batch > MAXBATCH) {
        fprintf(stderr, "fwd: bad arguments\n");
        return 2;
    }
    next_port = port_min;
    workers = calloc((size_t)nworkers, sizeof *workers);
    if (!workers) return 1;
    for (int i = 0; i < nworkers; i++) {
        workers[i].ep = epoll_create1(0);
        if (workers[i].ep < 0 || pthread_create(&workers[i].th, NULL, work, &workers[i])) {
            fprintf(stderr, "fwd: worker start failed\n");
            return 1;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "create ", 7)) cmd_create(line + 7);
        else if (!strncmp(line, "delete ", 7)) cmd_delete(line + 7);
        else if (!strcmp(line, "stats")) cmd_stats();
        else printf("error unknown-command\n");
    }
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nworkers; i++) pthread_join(workers[i].th, NULL);
    return 0;
}
