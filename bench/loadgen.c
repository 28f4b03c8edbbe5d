/*
 * loadgen: a small closed-loop load generator for the memcached text protocol.
 *
 * One thread, one epoll loop, N connections, each keeping `depth` requests in
 * flight. Every reply is parsed and verified (VALUE key, flags, length, data
 * bytes, trailing CRLF, END / STORED), so a broken server shows up as errors
 * instead of as a fast, wrong figure. The run is bounded both in time and in
 * request count, and it only talks to loopback addresses.
 *
 * The last line on stdout is one JSON object with the results; diagnostics go
 * to stderr. Exit status: 0 when the run completed requests without errors,
 * 1 when it saw errors or completed nothing, 2 on bad usage or setup failure.
 *
 * Build: gcc -O2 -Wall -Wextra -std=c11 -o bench/build/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define MAX_DEPTH 1024
#define MAX_MULTIGET 1000
#define MAX_KEYS 50000000u
#define MAX_VALUE (16u << 20)
#define MAX_DURATION_S 600.0
#define MAX_PREFIX 200
#define MAX_LINE 4096          /* longest reply header line we accept */
#define READ_CHUNK (64u << 10) /* free space we want before each read() */
#define ERROR_LOG_LIMIT 5

/* ---------------------------------------------------------------- options */

typedef struct {
    const char *host;
    int port;
    int conns;
    int depth;
    unsigned set_weight;
    unsigned get_weight;
    int multiget;
    uint32_t keys;
    uint32_t value_size;
    double duration_s;
    double warmup_s;
    uint64_t max_requests;
    int preload;
    int preload_depth;
    double preload_timeout_s;
    double drain_timeout_s;
    const char *prefix;
    uint64_t seed;
    int spin_us;
    int each;
} options_t;

static options_t opt = {
    .host = "127.0.0.1",
    .port = 0,
    .conns = 4,
    .depth = 1,
    .set_weight = 1,
    .get_weight = 9,
    .multiget = 1,
    .keys = 10000,
    .value_size = 100,
    .duration_s = 5.0,
    .warmup_s = 0.0,
    .max_requests = 100000000ull,
    .preload = 1,
    .preload_depth = 32,
    .preload_timeout_s = 60.0,
    .drain_timeout_s = 2.0,
    .prefix = "lg:",
    .seed = 1,
    .spin_us = 0,
};

/* ------------------------------------------------------ latency histogram */

/*
 * Log-linear histogram of nanoseconds: exact below 128 ns, then 64 buckets
 * per power of two (about 1.6 % resolution), like HdrHistogram with two
 * significant digits. Fixed size, no allocation while recording.
 */
#define HIST_LINEAR 128
#define HIST_SUB_BITS 6
#define HIST_MAX_MSB 42
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_MSB - 6) * (1 << HIST_SUB_BITS))

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count;
static uint64_t hist_max_ns;
static double hist_sum_ns;

static unsigned hist_bucket(uint64_t ns) {
    if (ns < HIST_LINEAR) return (unsigned)ns;
    int msb = 63 - __builtin_clzll(ns);
    if (msb > HIST_MAX_MSB) return HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(ns >> (msb - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
    return HIST_LINEAR + (unsigned)(msb - 7) * (1u << HIST_SUB_BITS) + sub;
}

/* The middle of a bucket's range, in nanoseconds. */
static double hist_bucket_value(unsigned b) {
    if (b < HIST_LINEAR) return (double)b;
    unsigned rel = b - HIST_LINEAR;
    int msb = (int)(rel >> HIST_SUB_BITS) + 7;
    uint64_t sub = rel & ((1u << HIST_SUB_BITS) - 1);
    uint64_t width = 1ull << (msb - HIST_SUB_BITS);
    uint64_t low = (1ull << msb) + sub * width;
    return (double)low + (double)width / 2.0;
}

static void hist_record(uint64_t ns) {
    hist[hist_bucket(ns)]++;
    hist_count++;
    hist_sum_ns += (double)ns;
    if (ns > hist_max_ns) hist_max_ns = ns;
}

static double hist_percentile_us(double pct) {
    if (hist_count == 0) return 0.0;
    uint64_t rank = (uint64_t)((pct / 100.0) * (double)hist_count + 0.5);
    if (rank < 1) rank = 1;
    if (rank > hist_count) rank = hist_count;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) {
            double v = hist_bucket_value(b);
            if (v > (double)hist_max_ns) v = (double)hist_max_ns;
            return v / 1000.0;
        }
    }
    return (double)hist_max_ns / 1000.0;
}

/* ------------------------------------------------------------- counters */

typedef struct {
    uint64_t issued;        /* requests sent in the load phase (warm-up included) */
    uint64_t completed;     /* measured: replies received in the window */
    uint64_t ok;            /* measured: replies that verified clean */
    uint64_t sets;          /* measured, ok */
    uint64_t gets;          /* measured, ok (a multi-get counts once) */
    uint64_t keys;          /* measured, ok: keys carried (set = 1, get = its key count) */
    uint64_t hits;          /* measured */
    uint64_t misses;        /* measured */
    uint64_t error_replies; /* ERROR / CLIENT_ERROR / SERVER_ERROR / NOT_STORED ... */
    uint64_t verify_errors; /* wrong key, flags, length or data in a VALUE */
    uint64_t protocol_errors; /* unparseable replies: the connection is dropped */
    uint64_t conns_lost;    /* connections closed by the server or dropped */
    uint64_t unfinished;    /* requests still in flight when the run gave up */
    uint64_t preloaded;     /* keys stored by the preload */
    uint64_t bytes_sent;
    uint64_t bytes_recv;
} counters_t;

static counters_t stats;
static int errors_logged;

static void log_error(const char *fmt, ...) {
    if (errors_logged >= ERROR_LOG_LIMIT) return;
    errors_logged++;
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ----------------------------------------------------------------- time */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t seconds_ns(double s) { return (uint64_t)(s * 1e9); }

/* CPU seconds (user + system) this process has used so far. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ------------------------------------------------------ keys and values */

static size_t prefix_len;
static char *filler; /* value_size bytes of a fixed pattern */

/* Writes key `idx` (prefix + decimal index) into out; returns its length. */
static size_t key_format(uint32_t idx, char *out) {
    char digits[16];
    int n = 0;
    do {
        digits[n++] = (char)('0' + idx % 10);
        idx /= 10;
    } while (idx);
    memcpy(out, opt.prefix, prefix_len);
    for (int i = 0; i < n; i++) out[prefix_len + (size_t)i] = digits[n - 1 - i];
    return prefix_len + (size_t)n;
}

/* Parses a key this run could have generated; returns 0 and its index, or -1. */
static int key_parse(const char *s, size_t len, uint32_t *idx) {
    if (len <= prefix_len || memcmp(s, opt.prefix, prefix_len) != 0) return -1;
    const char *d = s + prefix_len;
    size_t n = len - prefix_len;
    if (n > 10 || (n > 1 && d[0] == '0')) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') return -1;
        v = v * 10 + (uint64_t)(d[i] - '0');
    }
    if (v >= opt.keys) return -1;
    *idx = (uint32_t)v;
    return 0;
}

/* The flags every key is stored with, so a mixed-up item is caught. */
static uint32_t key_flags(uint32_t idx) { return idx & 0xffffu; }

/*
 * A key's value is the key, a '|', then the filler pattern; so a reply carrying
 * another key's data, or shifted data, fails the comparison.
 */
static int value_matches(uint32_t idx, const char *data) {
    char key[MAX_PREFIX + 16];
    size_t klen = key_format(idx, key);
    size_t n = opt.value_size;
    if (n <= klen) return memcmp(data, filler, n) == 0;
    return memcmp(data, key, klen) == 0 && data[klen] == '|' &&
           memcmp(data + klen + 1, filler + klen + 1, n - klen - 1) == 0;
}

/* ----------------------------------------------------------- connections */

typedef struct {
    uint64_t start_ns;
    uint32_t first_key; /* a get asks first_key, first_key+1, ... (mod keys) */
    uint16_t nkeys;
    uint8_t is_set;
} request_t;

typedef struct {
    int fd;
    int alive;
    int want_out;
    char *rbuf;
    size_t rcap, rstart, rend, rneed;
    char *wbuf;
    size_t wcap, wstart, wend;
    request_t *queue; /* ring of in-flight requests, oldest at qhead */
    unsigned qcap, qhead, qlen;
    unsigned next_key; /* parse progress inside the oldest get reply */
    unsigned hits;
    int failed; /* the oldest request saw an error */
    uint64_t rng;
} conn_t;

static conn_t *conns;
static int epfd;
static int alive_conns;

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) fatal("out of memory (%zu bytes)", n);
    return q;
}

static void wbuf_reserve(conn_t *c, size_t n) {
    if (c->wstart > 0 && c->wstart == c->wend) c->wstart = c->wend = 0;
    if (c->wcap - c->wend >= n) return;
    if (c->wstart > 0) {
        memmove(c->wbuf, c->wbuf + c->wstart, c->wend - c->wstart);
        c->wend -= c->wstart;
        c->wstart = 0;
    }
    if (c->wcap - c->wend >= n) return;
    size_t cap = c->wcap ? c->wcap : 4096;
    while (cap - c->wend < n) cap *= 2;
    c->wbuf = xrealloc(c->wbuf, cap);
    c->wcap = cap;
}

static void wbuf_put(conn_t *c, const void *p, size_t n) {
    memcpy(c->wbuf + c->wend, p, n);
    c->wend += n;
}

static void conn_set_events(conn_t *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0)};
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fatal("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

static void conn_drop(conn_t *c, const char *why) {
    if (!c->alive) return;
    log_error("connection %d dropped: %s (%u requests in flight)", (int)(c - conns), why, c->qlen);
    stats.conns_lost++;
    stats.unfinished += c->qlen;
    c->qlen = 0;
    c->alive = 0;
    alive_conns--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void conn_flush(conn_t *c) {
    while (c->alive && c->wstart < c->wend) {
        ssize_t n = write(c->fd, c->wbuf + c->wstart, c->wend - c->wstart);
        if (n > 0) {
            c->wstart += (size_t)n;
            stats.bytes_sent += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_events(c, 1);
            return;
        } else {
            conn_drop(c, n < 0 ? strerror(errno) : "write returned 0");
            return;
        }
    }
    if (c->alive) conn_set_events(c, 0);
}

static int fcntl_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void conn_open(conn_t *c, const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fatal("socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds the blocking connect */
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
        fatal("connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl_nonblock(fd) < 0) fatal("fcntl: %s", strerror(errno));
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->alive = 1;
    c->qcap = (unsigned)(opt.depth > opt.preload_depth ? opt.depth : opt.preload_depth);
    c->queue = xrealloc(NULL, c->qcap * sizeof(request_t));
    c->rcap = READ_CHUNK * 2;
    c->rbuf = xrealloc(NULL, c->rcap);
    c->rng = opt.seed * 0x9E3779B97F4A7C15ull + (uint64_t)(c - conns) * 0xD1B54A32D192ED03ull + 1;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) fatal("epoll_ctl: %s", strerror(errno));
    alive_conns++;
}

/* ------------------------------------------------------------- requests */

static void push_set(conn_t *c, uint32_t idx, uint64_t now) {
    char key[MAX_PREFIX + 16];
    size_t klen = key_format(idx, key);
    char head[MAX_PREFIX + 96];
    int hl = snprintf(head, sizeof head, "set %.*s %u 0 %u\r\n", (int)klen, key, key_flags(idx),
                      opt.value_size);
    size_t n = opt.value_size;
    wbuf_reserve(c, (size_t)hl + n + 2);
    wbuf_put(c, head, (size_t)hl);
    if (n <= klen) {
        wbuf_put(c, filler, n);
    } else {
        wbuf_put(c, key, klen);
        wbuf_put(c, "|", 1);
        wbuf_put(c, filler + klen + 1, n - klen - 1);
    }
    wbuf_put(c, "\r\n", 2);
    request_t *r = &c->queue[(c->qhead + c->qlen++) % c->qcap];
    *r = (request_t){.start_ns = now, .first_key = idx, .nkeys = 1, .is_set = 1};
}

static void push_get(conn_t *c, uint32_t first, unsigned nkeys, uint64_t now) {
    wbuf_reserve(c, 8 + (size_t)nkeys * (prefix_len + 12));
    wbuf_put(c, "get", 3);
    for (unsigned i = 0; i < nkeys; i++) {
        char key[MAX_PREFIX + 16];
        size_t klen = key_format((uint32_t)((first + (uint64_t)i) % opt.keys), key);
        wbuf_put(c, " ", 1);
        wbuf_put(c, key, klen);
    }
    wbuf_put(c, "\r\n", 2);
    request_t *r = &c->queue[(c->qhead + c->qlen++) % c->qcap];
    *r = (request_t){.start_ns = now, .first_key = first, .nkeys = (uint16_t)nkeys, .is_set = 0};
}

/* ---------------------------------------------------------------- phases */

enum { PHASE_PRELOAD, PHASE_LOAD };

static int phase;
static int stopping;
static uint32_t preload_next;
static uint64_t warm_end_ns, end_ns, last_done_ns;

/* Tops a connection up to its pipeline depth with new requests. */
static void conn_fill(conn_t *c, uint64_t now) {
    if (!c->alive) return;
    if (phase == PHASE_PRELOAD) {
        while (c->qlen < (unsigned)opt.preload_depth && preload_next < opt.keys)
            push_set(c, preload_next++, now);
    } else {
        while (!stopping && c->qlen < (unsigned)opt.depth) {
            if (stats.issued >= opt.max_requests) {
                stopping = 1;
                break;
            }
            stats.issued++;
            uint64_t r = rng_next(&c->rng);
            uint32_t key = (uint32_t)((r >> 32) % opt.keys);
            int is_set = (uint32_t)r % (opt.set_weight + opt.get_weight) < opt.set_weight;
            if (is_set)
                push_set(c, key, now);
            else
                push_get(c, key, (unsigned)opt.multiget, now);
        }
    }
    conn_flush(c);
}

static void request_done(conn_t *c, uint64_t now) {
    request_t *r = &c->queue[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    unsigned hits = c->hits, nkeys = r->nkeys;
    int failed = c->failed;
    c->next_key = 0;
    c->hits = 0;
    c->failed = 0;
    if (phase == PHASE_PRELOAD) {
        if (!failed) stats.preloaded++;
        return;
    }
    if (now < warm_end_ns || now >= end_ns || r->start_ns < warm_end_ns) return;
    last_done_ns = now;
    stats.completed++;
    if (failed) return;
    stats.ok++;
    hist_record(now - r->start_ns);
    stats.keys += nkeys;
    if (r->is_set) {
        stats.sets++;
    } else {
        stats.gets++;
        stats.hits += hits;
        stats.misses += nkeys - hits;
    }
}

/* ------------------------------------------------------------- parsing */

static int is_error_line(const char *p, size_t n) {
    static const char *words[] = {"ERROR", "CLIENT_ERROR", "SERVER_ERROR", "NOT_STORED",
                                  "EXISTS", "NOT_FOUND"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t w = strlen(words[i]);
        if (n >= w && memcmp(p, words[i], w) == 0 && (n == w || p[w] == ' ')) return 1;
    }
    return 0;
}

/* Parses an unsigned decimal token; returns the position after it or NULL. */
static const char *parse_u64(const char *p, const char *end, uint64_t *out) {
    uint64_t v = 0;
    const char *s = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return NULL;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (p == s) return NULL;
    *out = v;
    return p;
}

/*
 * Checks one "VALUE <key> <flags> <bytes>" line (plus its data block, which the
 * caller made sure is buffered) against the oldest get in flight.
 * Returns 0 when the framing is sound (verification failures only mark the
 * request failed), -1 when the reply cannot be trusted any more.
 */
static int check_value(conn_t *c, const char *line, size_t len, const char *data, uint64_t bytes) {
    const request_t *r = &c->queue[c->qhead];
    const char *end = line + len;
    const char *k = line + 6;
    const char *sp = memchr(k, ' ', (size_t)(end - k));
    if (!sp) return -1;
    uint64_t flags, n;
    const char *p = parse_u64(sp + 1, end, &flags);
    if (!p || *p != ' ' || !parse_u64(p + 1, end, &n) || n != bytes) return -1;
    uint32_t idx;
    if (key_parse(k, (size_t)(sp - k), &idx) < 0) {
        log_error("VALUE for a key this run never asked for: %.*s", (int)(sp - k), k);
        c->failed = 1;
        stats.verify_errors++;
        return 0;
    }
    uint32_t offset = (uint32_t)((idx + (uint64_t)opt.keys - r->first_key) % opt.keys);
    if (offset < c->next_key || offset >= r->nkeys) {
        log_error("VALUE for key %.*s out of order or not requested", (int)(sp - k), k);
        c->failed = 1;
        stats.verify_errors++;
        return 0;
    }
    c->next_key = offset + 1;
    c->hits++;
    if (flags != key_flags(idx) || bytes != opt.value_size || !value_matches(idx, data)) {
        log_error("VALUE for key %.*s has wrong flags, length or data (flags %llu, %llu bytes)",
                  (int)(sp - k), k, (unsigned long long)flags, (unsigned long long)bytes);
        c->failed = 1;
        stats.verify_errors++;
    }
    return 0;
}

/* With --each, a new request goes out as each reply arrives (memtier's --pipeline), so
 * the server sees many small reads rather than one batch per round trip. */
static void reply_done(conn_t *c, uint64_t now) {
    request_done(c, now);
    if (opt.each && phase == PHASE_LOAD) conn_fill(c, now);
}

/*
 * Consumes complete replies for the oldest requests. Returns 0, or -1 when the
 * stream is out of step with the requests (the connection is then dropped).
 */
static int parse_replies(conn_t *c, uint64_t now) {
    c->rneed = 0;
    while (c->qlen > 0) {
        const char *p = c->rbuf + c->rstart;
        size_t avail = c->rend - c->rstart;
        const char *nl = memchr(p, '\n', avail < MAX_LINE ? avail : MAX_LINE);
        if (!nl) {
            if (avail >= MAX_LINE) return -1;
            return 0;
        }
        size_t linelen = (size_t)(nl - p) + 1;
        if (linelen < 2 || nl[-1] != '\r') return -1;
        size_t n = linelen - 2;
        const request_t *r = &c->queue[c->qhead];
        if (r->is_set) {
            if (n == 6 && memcmp(p, "STORED", 6) == 0) {
                c->rstart += linelen;
                reply_done(c, now);
                continue;
            }
        } else if (n == 3 && memcmp(p, "END", 3) == 0) {
            c->rstart += linelen;
            reply_done(c, now);
            continue;
        } else if (n > 6 && memcmp(p, "VALUE ", 6) == 0) {
            const char *end = p + n, *q = p + 6;
            const char *sp = memchr(q, ' ', n - 6);
            uint64_t flags, bytes;
            if (!sp) return -1;
            q = parse_u64(sp + 1, end, &flags);
            if (!q || *q != ' ' || !(q = parse_u64(q + 1, end, &bytes))) return -1;
            if (bytes > MAX_VALUE * 4ull) return -1;
            size_t need = linelen + (size_t)bytes + 2;
            if (avail < need) {
                c->rneed = need;
                return 0;
            }
            const char *data = p + linelen;
            if (data[bytes] != '\r' || data[bytes + 1] != '\n') return -1;
            if (check_value(c, p, n, data, bytes) < 0) return -1;
            c->rstart += need;
            continue;
        }
        if (is_error_line(p, n)) {
            log_error("server replied '%.*s' to a %s", (int)(n > 200 ? 200 : n), p,
                      r->is_set ? "set" : "get");
            stats.error_replies++;
            c->failed = 1;
            c->rstart += linelen;
            reply_done(c, now);
            continue;
        }
        log_error("unexpected reply line '%.*s'", (int)(n > 200 ? 200 : n), p);
        return -1;
    }
    if (c->rend > c->rstart) {
        log_error("%zu reply bytes with no request in flight", c->rend - c->rstart);
        return -1;
    }
    return 0;
}

static void conn_read(conn_t *c, uint64_t now) {
    for (;;) {
        if (c->rstart == c->rend) c->rstart = c->rend = 0;
        size_t want = READ_CHUNK;
        if (c->rneed > c->rend - c->rstart && c->rneed - (c->rend - c->rstart) > want)
            want = c->rneed - (c->rend - c->rstart);
        if (c->rcap - c->rend < want) {
            if (c->rstart > 0) {
                memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
                c->rend -= c->rstart;
                c->rstart = 0;
            }
            if (c->rcap - c->rend < want) {
                while (c->rcap - c->rend < want) c->rcap *= 2;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
        }
        size_t space = c->rcap - c->rend;
        ssize_t n = read(c->fd, c->rbuf + c->rend, space);
        if (n > 0) {
            c->rend += (size_t)n;
            stats.bytes_recv += (uint64_t)n;
            if (parse_replies(c, now) < 0) {
                stats.protocol_errors++;
                conn_drop(c, "reply out of step with the requests");
                return;
            }
            if ((size_t)n < space) return; /* drained for now; epoll says when there is more */
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_drop(c, n < 0 ? strerror(errno) : "closed by the server");
            return;
        }
    }
}

/* ----------------------------------------------------------- event loop */

static unsigned in_flight(void) {
    unsigned n = 0;
    for (int i = 0; i < opt.conns; i++)
        if (conns[i].alive) n += conns[i].qlen;
    return n;
}

/* Runs the loop until `done` or the deadline; returns 0, or -1 on the deadline. */
static int run_until(int (*done)(uint64_t now), uint64_t deadline) {
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (done(now)) return 0;
        if (now >= deadline || alive_conns == 0) return -1;
        uint64_t left_ms = (deadline - now) / 1000000ull + 1;
        int timeout = left_ms > 50 ? 50 : (int)left_ms;
        /*
         * With --spin-us, poll without sleeping for a while before blocking:
         * a sleep and wake-up per reply costs more than the request itself,
         * which would make the client, not the server, set the pace. Only
         * sensible when the load generator has a core of its own.
         */
        int n = 0;
        if (opt.spin_us > 0) {
            uint64_t spin_end = now + (uint64_t)opt.spin_us * 1000ull;
            do {
                n = epoll_wait(epfd, events, 256, 0);
            } while (n == 0 && now_ns() < spin_end);
        }
        if (n == 0) n = epoll_wait(epfd, events, 256, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            fatal("epoll_wait: %s", strerror(errno));
        }
        now = now_ns();
        if (phase == PHASE_LOAD && now >= end_ns) stopping = 1;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c->alive) continue;
            /* Fresh timestamps per connection: a batch of 50 events takes a while. */
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c, now_ns());
            if (c->alive && (events[i].events & EPOLLOUT)) conn_flush(c);
            if (c->alive) conn_fill(c, now_ns());
        }
    }
}

static int preload_done(uint64_t now) {
    (void)now;
    return preload_next >= opt.keys && in_flight() == 0;
}

static int load_done(uint64_t now) {
    if (now >= end_ns) stopping = 1;
    return stopping && in_flight() == 0;
}

/* --------------------------------------------------------------- output */

static void print_json(double preload_s, double elapsed_s, double cpu_util) {
    double el = elapsed_s > 0 ? elapsed_s : 1e-9;
    uint64_t errors = stats.error_replies + stats.verify_errors + stats.protocol_errors +
                      stats.conns_lost + stats.unfinished;
    printf("{\"tool\":\"loadgen\",\"host\":\"%s\",\"port\":%d,\"conns\":%d,\"depth\":%d,"
           "\"set_weight\":%u,\"get_weight\":%u,\"multiget\":%d,\"keys\":%u,\"value_size\":%u,"
           "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"elapsed_s\":%.6f,\"preload_s\":%.3f,"
           "\"preloaded\":%llu,\"issued\":%llu,\"completed\":%llu,\"ok\":%llu,\"sets\":%llu,"
           "\"gets\":%llu,\"keys_done\":%llu,\"rps\":%.1f,\"keys_per_s\":%.1f,"
           "\"hits\":%llu,\"misses\":%llu,\"errors\":%llu,\"error_replies\":%llu,"
           "\"verify_errors\":%llu,\"protocol_errors\":%llu,\"conns_lost\":%llu,"
           "\"unfinished\":%llu,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,"
           "\"p999_us\":%.2f,\"mean_us\":%.2f,\"max_us\":%.2f,\"bytes_sent\":%llu,"
           "\"bytes_recv\":%llu,\"cpu_util\":%.3f}\n",
           opt.host, opt.port, opt.conns, opt.depth, opt.set_weight, opt.get_weight,
           opt.multiget, opt.keys, opt.value_size, opt.warmup_s, opt.duration_s, elapsed_s,
           preload_s, (unsigned long long)stats.preloaded, (unsigned long long)stats.issued,
           (unsigned long long)stats.completed, (unsigned long long)stats.ok,
           (unsigned long long)stats.sets, (unsigned long long)stats.gets,
           (unsigned long long)stats.keys, (double)stats.ok / el, (double)stats.keys / el,
           (unsigned long long)stats.hits, (unsigned long long)stats.misses,
           (unsigned long long)errors, (unsigned long long)stats.error_replies,
           (unsigned long long)stats.verify_errors, (unsigned long long)stats.protocol_errors,
           (unsigned long long)stats.conns_lost, (unsigned long long)stats.unfinished,
           hist_percentile_us(50), hist_percentile_us(90), hist_percentile_us(99),
           hist_percentile_us(99.9), hist_count ? hist_sum_ns / (double)hist_count / 1000.0 : 0.0,
           (double)hist_max_ns / 1000.0, (unsigned long long)stats.bytes_sent,
           (unsigned long long)stats.bytes_recv, cpu_util);
    fflush(stdout);
}

/* ---------------------------------------------------------------- usage */

static void usage(FILE *f) {
    fputs("usage: loadgen --port N [options]\n"
          "  --host ADDR           loopback IPv4 address (127.0.0.0/8) [127.0.0.1]\n"
          "  --port N              server port (required)\n"
          "  --conns N             connections [4]\n"
          "  --depth N             requests in flight per connection (pipeline depth) [1]\n"
          "  --ratio S:G           set:get ratio, e.g. 1:9, 1:1, 0:1 [1:9]\n"
          "  --multiget N          keys per get request [1]\n"
          "  --keys N              key space size [10000]\n"
          "  --value-size N        value bytes for every set [100]\n"
          "  --duration S          measured seconds, after the warm-up (<= 600) [5]\n"
          "  --warmup S            seconds of load before measuring [0]\n"
          "  --requests N          cap on requests issued, warm-up included [100000000]\n"
          "  --no-preload          skip storing every key before the load\n"
          "  --preload-depth N     requests in flight per connection while preloading [32]\n"
          "  --preload-timeout S   give up preloading after S seconds [60]\n"
          "  --drain-timeout S     wait at most S seconds for replies after the end [2]\n"
          "  --key-prefix P        key prefix; keep one value size per prefix [lg:]\n"
          "  --seed N              random seed [1]\n"
          "  --spin-us N           busy-poll N microseconds before sleeping in epoll_wait;\n"
          "                        use only when pinned to a core of its own [0]\n"
          "  --each                send a new request as each reply arrives (keep depth in\n"
          "                        flight, as memtier's --pipeline), not once per read\n"
          "Prints one JSON line with the results on stdout.\n",
          f);
}

static double parse_double(const char *s, const char *name, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        fatal("--%s wants a number in [%g, %g], got '%s'", name, lo, hi, s);
    return v;
}

static uint64_t parse_count(const char *s, const char *name, uint64_t lo, uint64_t hi) {
    uint64_t v;
    const char *end = parse_u64(s, s + strlen(s), &v);
    if (!end || *end || v < lo || v > hi)
        fatal("--%s wants an integer in [%llu, %llu], got '%s'", name, (unsigned long long)lo,
              (unsigned long long)hi, s);
    return v;
}

static void parse_options(int argc, char **argv) {
    enum {
        O_HOST = 1, O_PORT, O_CONNS, O_DEPTH, O_RATIO, O_MULTIGET, O_KEYS, O_VALUE, O_DURATION,
        O_WARMUP, O_REQUESTS, O_NO_PRELOAD, O_PRELOAD_DEPTH, O_PRELOAD_TIMEOUT, O_DRAIN,
        O_PREFIX, O_SEED, O_SPIN, O_EACH, O_HELP
    };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"conns", required_argument, NULL, O_CONNS},
        {"depth", required_argument, NULL, O_DEPTH},
        {"ratio", required_argument, NULL, O_RATIO},
        {"multiget", required_argument, NULL, O_MULTIGET},
        {"keys", required_argument, NULL, O_KEYS},
        {"value-size", required_argument, NULL, O_VALUE},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"no-preload", no_argument, NULL, O_NO_PRELOAD},
        {"preload-depth", required_argument, NULL, O_PRELOAD_DEPTH},
        {"preload-timeout", required_argument, NULL, O_PRELOAD_TIMEOUT},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"key-prefix", required_argument, NULL, O_PREFIX},
        {"seed", required_argument, NULL, O_SEED},
        {"spin-us", required_argument, NULL, O_SPIN},
        {"each", no_argument, NULL, O_EACH},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case O_HOST: opt.host = optarg; break;
        case O_PORT: opt.port = (int)parse_count(optarg, "port", 1, 65535); break;
        case O_CONNS: opt.conns = (int)parse_count(optarg, "conns", 1, MAX_CONNS); break;
        case O_DEPTH: opt.depth = (int)parse_count(optarg, "depth", 1, MAX_DEPTH); break;
        case O_RATIO: {
            uint64_t s, g;
            const char *end = optarg + strlen(optarg);
            const char *p = parse_u64(optarg, end, &s);
            if (!p || *p != ':' || !(p = parse_u64(p + 1, end, &g)) || *p || s + g == 0 ||
                s > 1000000 || g > 1000000)
                fatal("--ratio wants SETS:GETS such as 1:9, got '%s'", optarg);
            opt.set_weight = (unsigned)s;
            opt.get_weight = (unsigned)g;
            break;
        }
        case O_MULTIGET: opt.multiget = (int)parse_count(optarg, "multiget", 1, MAX_MULTIGET); break;
        case O_KEYS: opt.keys = (uint32_t)parse_count(optarg, "keys", 1, MAX_KEYS); break;
        case O_VALUE: opt.value_size = (uint32_t)parse_count(optarg, "value-size", 1, MAX_VALUE); break;
        case O_DURATION: opt.duration_s = parse_double(optarg, "duration", 0.01, MAX_DURATION_S); break;
        case O_WARMUP: opt.warmup_s = parse_double(optarg, "warmup", 0, 60); break;
        case O_REQUESTS: opt.max_requests = parse_count(optarg, "requests", 1, UINT64_MAX / 2); break;
        case O_NO_PRELOAD: opt.preload = 0; break;
        case O_PRELOAD_DEPTH:
            opt.preload_depth = (int)parse_count(optarg, "preload-depth", 1, MAX_DEPTH);
            break;
        case O_PRELOAD_TIMEOUT:
            opt.preload_timeout_s = parse_double(optarg, "preload-timeout", 0.1, 600);
            break;
        case O_DRAIN: opt.drain_timeout_s = parse_double(optarg, "drain-timeout", 0.01, 60); break;
        case O_PREFIX: opt.prefix = optarg; break;
        case O_SEED: opt.seed = parse_count(optarg, "seed", 0, UINT64_MAX); break;
        case O_SPIN: opt.spin_us = (int)parse_count(optarg, "spin-us", 0, 1000000); break;
        case O_EACH: opt.each = 1; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) fatal("unexpected argument '%s'", argv[optind]);
    if (opt.port == 0) {
        usage(stderr);
        exit(2);
    }
    prefix_len = strlen(opt.prefix);
    if (prefix_len > MAX_PREFIX) fatal("--key-prefix is longer than %d bytes", MAX_PREFIX);
    for (size_t i = 0; i < prefix_len; i++)
        if ((unsigned char)opt.prefix[i] <= ' ' || opt.prefix[i] == 0x7f)
            fatal("--key-prefix must not hold spaces or control bytes");
    if ((uint32_t)opt.multiget > opt.keys) fatal("--multiget is larger than --keys");
}

/* Resolves --host to a loopback address; anything else is refused. */
static void loopback_address(struct sockaddr_in *addr) {
    const char *h = strcmp(opt.host, "localhost") == 0 ? "127.0.0.1" : opt.host;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, h, &addr->sin_addr) != 1)
        fatal("--host must be an IPv4 loopback address, got '%s'", opt.host);
    if ((ntohl(addr->sin_addr.s_addr) >> 24) != 127)
        fatal("--host %s is not a loopback address (127.0.0.0/8): refusing", opt.host);
}

int main(int argc, char **argv) {
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr;
    loopback_address(&addr);

    filler = xrealloc(NULL, opt.value_size);
    for (uint32_t i = 0; i < opt.value_size; i++)
        filler[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fatal("epoll_create1: %s", strerror(errno));
    conns = xrealloc(NULL, (size_t)opt.conns * sizeof(conn_t));
    for (int i = 0; i < opt.conns; i++) conn_open(&conns[i], &addr);

    uint64_t t0 = now_ns();
    double preload_s = 0;
    if (opt.preload) {
        phase = PHASE_PRELOAD;
        for (int i = 0; i < opt.conns; i++) conn_fill(&conns[i], t0);
        if (run_until(preload_done, t0 + seconds_ns(opt.preload_timeout_s)) < 0)
            fatal("preload of %u keys did not finish (%llu stored, %d connections left)",
                  opt.keys, (unsigned long long)stats.preloaded, alive_conns);
        preload_s = (double)(now_ns() - t0) / 1e9;
        if (stats.preloaded != opt.keys)
            log_error("preload stored %llu of %u keys", (unsigned long long)stats.preloaded,
                      opt.keys);
    }

    phase = PHASE_LOAD;
    double cpu0 = cpu_seconds();
    uint64_t start = now_ns();
    warm_end_ns = start + seconds_ns(opt.warmup_s);
    end_ns = warm_end_ns + seconds_ns(opt.duration_s);
    for (int i = 0; i < opt.conns; i++) conn_fill(&conns[i], start);
    if (run_until(load_done, end_ns + seconds_ns(opt.drain_timeout_s)) < 0) {
        unsigned left = in_flight();
        if (left) log_error("%u requests got no reply before the drain timeout", left);
        stats.unfinished += left;
    }
    double wall_s = (double)(now_ns() - start) / 1e9;
    double cpu_util = wall_s > 0 ? (cpu_seconds() - cpu0) / wall_s : 0;
    /* A run cut short by --requests is measured up to its last reply. */
    uint64_t measured_end = end_ns;
    if (last_done_ns && last_done_ns < end_ns && stats.issued >= opt.max_requests)
        measured_end = last_done_ns;
    double elapsed_s = measured_end > warm_end_ns ? (double)(measured_end - warm_end_ns) / 1e9 : 0;

    print_json(preload_s, elapsed_s, cpu_util);
    uint64_t errors = stats.error_replies + stats.verify_errors + stats.protocol_errors +
                      stats.conns_lost + stats.unfinished;
    return errors == 0 && stats.ok > 0 ? 0 : 1;
}
