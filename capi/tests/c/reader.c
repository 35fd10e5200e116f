#define _GNU_SOURCE /* memmem */
/* The C side of capi/tests/c_readers.rs: reads objects Rust processes
 * publish. `reader MODE NAME`; prints what it found, exits 1 on anything
 * unexpected (with the reason on stderr). Built with
 * -fsanitize=address,undefined by the test. */
#include <inttypes.h>
#include <poll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstate.h"

static int failures = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,      \
                    __LINE__, #cond, shmstate_last_error_message());                     \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

#define OK(call) CHECK((call) == SHMSTATE_OK)

static int str_is(const char *data, size_t len, const char *want) {
    return len == strlen(want) && memcmp(data, want, len) == 0;
}

static void wait_for_go(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "stdin closed before go\n");
        exit(1);
    }
}

/* Every field kind of the `Config` of c_readers.rs. */
static void check_config(const shmstate_snapshot *snap, uint64_t stamp) {
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    const char *s = NULL;
    size_t n = 0;
    shmstate_value v, w, k, x;
    int kind = -1, flag = -1;

    OK(shmstate_get_u64(snap, "stamp", &u));
    CHECK(u == stamp);
    OK(shmstate_get_str(snap, "name", &s, &n));
    CHECK(str_is(s, n, "edge-router"));
    OK(shmstate_get_u64(snap, "limits.max_conns", &u));
    CHECK(u == 1024);
    OK(shmstate_get_f64(snap, "limits.ratio", &f));
    CHECK(f == 0.75);
    OK(shmstate_get_i64(snap, "neg", &i));
    CHECK(i == -7);
    /* u64 of a negative number: out of range, not a wrapped value. */
    CHECK(shmstate_get_u64(snap, "neg", &u) == SHMSTATE_ERR_OUT_OF_RANGE);

    /* Vectors of numbers, in place. */
    const double *weights = NULL;
    uint64_t len = 0;
    OK(shmstate_get(snap, "weights", &v));
    OK(shmstate_value_kind(&v, &kind));
    CHECK(kind == SHMSTATE_KIND_SEQ);
    OK(shmstate_value_f64s(&v, &weights, &len));
    CHECK(len == 4 && weights[0] == 0.5 && weights[3] == 4.0);
    const uint8_t *bytes = NULL;
    size_t size = 0;
    OK(shmstate_snapshot_bytes(snap, &bytes, &size));
    CHECK((const uint8_t *)weights >= bytes && (const uint8_t *)(weights + len) <= bytes + size);
    /* Strings too, short (stored inline) and long. */
    OK(shmstate_get_str(snap, "name", &s, &n));
    CHECK((const uint8_t *)s >= bytes && (const uint8_t *)(s + n) <= bytes + size);
    OK(shmstate_get_str(snap, "by_id[1]", &s, &n));
    CHECK(str_is(s, n, "one") && (const uint8_t *)s >= bytes && (const uint8_t *)(s + n) <= bytes + size);
    CHECK(shmstate_value_u64s(&v, (const uint64_t **)&weights, &len) == SHMSTATE_ERR_WRONG_TYPE);
    const uint32_t *ids = NULL;
    OK(shmstate_get(snap, "ids", &v));
    OK(shmstate_value_u32s(&v, &ids, &len));
    CHECK(len == 3 && ids[0] == 7 && ids[2] == 9);
    OK(shmstate_get_u64(snap, "ids[1]", &u));
    CHECK(u == 8);
    CHECK(shmstate_get_u64(snap, "ids[3]", &u) == SHMSTATE_ERR_NO_SUCH_FIELD);

    /* Maps by string and integer key. */
    OK(shmstate_get_u64(snap, "by_name[\"eu-1\"]", &u));
    CHECK(u == 11);
    CHECK(shmstate_get_u64(snap, "by_name[\"nowhere\"]", &u) == SHMSTATE_ERR_NO_SUCH_FIELD);
    OK(shmstate_get_str(snap, "by_id[42]", &s, &n));
    CHECK(str_is(s, n, "answer"));
    OK(shmstate_get(snap, "by_id", &v));
    OK(shmstate_value_len(&v, &u));
    CHECK(u == 2);
    OK(shmstate_value_entry(&v, 0, &k, &x)); /* a BTreeMap: key order */
    OK(shmstate_value_u64(&k, &u));
    CHECK(u == 1);
    OK(shmstate_value_lookup_u64(&v, 42, &x));
    OK(shmstate_value_str(&x, &s, &n));
    CHECK(str_is(s, n, "answer"));
    /* Keys of any integer width compare by value; a second lookup uses the
     * map's index (built by the first). */
    OK(shmstate_value_lookup_i64(&v, 1, &x));
    OK(shmstate_value_str(&x, &s, &n));
    CHECK(str_is(s, n, "one"));
    CHECK(shmstate_value_lookup_i64(&v, -1, &x) == SHMSTATE_ERR_NO_SUCH_FIELD);
    CHECK(shmstate_value_lookup_str(&v, "42", 2, &x) == SHMSTATE_ERR_NO_SUCH_FIELD);
    OK(shmstate_get(snap, "by_name", &v));
    OK(shmstate_value_lookup_str(&v, "us-2", 4, &x));
    OK(shmstate_value_u64(&x, &u));
    CHECK(u == 22);
    OK(shmstate_value_lookup_str(&v, "eu-1", 4, &x));
    OK(shmstate_value_u64(&x, &u));
    CHECK(u == 11);
    CHECK(shmstate_value_lookup_str(&v, "eu-1x", 4, &x) == SHMSTATE_OK); /* key_len bytes only */
    CHECK(shmstate_value_lookup_str(&v, "eu", 2, &x) == SHMSTATE_ERR_NO_SUCH_FIELD);
    CHECK(shmstate_value_lookup_u64(&v, 11, &x) == SHMSTATE_ERR_NO_SUCH_FIELD);

    /* Enums, options, tuples, chars, bools. */
    OK(shmstate_get(snap, "mode", &v));
    OK(shmstate_value_kind(&v, &kind));
    CHECK(kind == SHMSTATE_KIND_ENUM);
    OK(shmstate_value_variant(&v, &s, &n));
    CHECK(str_is(s, n, "Active"));
    OK(shmstate_value_field_name(&v, 0, &s, &n));
    CHECK(str_is(s, n, "level"));
    OK(shmstate_get_i64(snap, "mode.level", &i));
    CHECK(i == -3);
    OK(shmstate_get(snap, "maybe", &v));
    OK(shmstate_value_option(&v, &flag, &w));
    CHECK(flag == 1);
    OK(shmstate_value_i64(&w, &i));
    CHECK(i == 99);
    OK(shmstate_get(snap, "nothing", &v));
    OK(shmstate_value_option(&v, &flag, &w));
    CHECK(flag == 0);
    CHECK(shmstate_get_u64(snap, "nothing.x", &u) == SHMSTATE_ERR_NO_SUCH_FIELD);
    OK(shmstate_get_u64(snap, "pair.0", &u));
    CHECK(u == 200);
    OK(shmstate_get(snap, "pair.1", &v));
    OK(shmstate_value_bool(&v, &flag));
    CHECK(flag == 1);
    uint32_t c = 0;
    OK(shmstate_get(snap, "letter", &v));
    OK(shmstate_value_char(&v, &c));
    CHECK(c == 0x00E9); /* é */

    /* Walking the root generically. */
    OK(shmstate_root(snap, &v));
    OK(shmstate_value_type_name(&v, &s, &n));
    CHECK(str_is(s, n, "Config"));
    OK(shmstate_value_len(&v, &u));
    CHECK(u == 13);
    OK(shmstate_value_field_name(&v, 1, &s, &n));
    CHECK(str_is(s, n, "name"));
    OK(shmstate_value_index(&v, 1, &w));
    OK(shmstate_value_str(&w, &s, &n));
    CHECK(str_is(s, n, "edge-router"));

    /* Misuse is an error code. */
    CHECK(shmstate_get_u64(snap, "name", &u) == SHMSTATE_ERR_WRONG_TYPE);
    CHECK(shmstate_get_u64(snap, "limits..x", &u) == SHMSTATE_ERR_INVALID_ARGUMENT);
    CHECK(shmstate_get_u64(snap, "no_such", &u) == SHMSTATE_ERR_NO_SUCH_FIELD);
    CHECK(strstr(shmstate_last_error_message(), "no_such") != NULL);
    CHECK(shmstate_get_u64(snap, NULL, &u) == SHMSTATE_ERR_INVALID_ARGUMENT);
    CHECK(shmstate_get_u64(NULL, "stamp", &u) == SHMSTATE_ERR_INVALID_ARGUMENT);
}

/* Reads the object, holds the snapshot while the writer publishes on (the
 * test writes a line when it has), then reads the newer one. */
static int mode_fields(const char *name) {
    shmstate_reader *r = NULL;
    const shmstate_snapshot *snap = NULL;
    CHECK(shmstate_abi_version() == SHMSTATE_ABI_VERSION);
    OK(shmstate_reader_open(name, NULL, &r));
    if (!r) return 1;
    OK(shmstate_read(r, &snap));
    if (!snap) return 1;
    uint64_t held = shmstate_snapshot_generation(snap);
    check_config(snap, held);
    const char *schema = NULL;
    size_t schema_len = 0;
    OK(shmstate_reader_schema(r, &schema, &schema_len));
    CHECK(schema_len > 0 && memmem(schema, schema_len, "struct Config", 13) != NULL);

    shmstate_value weights;
    const double *w = NULL;
    uint64_t n = 0;
    OK(shmstate_get(snap, "weights", &weights));
    OK(shmstate_value_f64s(&weights, &w, &n));
    shmstate_value name_v;
    const char *name_s = NULL;
    size_t name_n = 0;
    OK(shmstate_get(snap, "name", &name_v));
    OK(shmstate_value_str(&name_v, &name_s, &name_n));
    printf("held %" PRIu64 "\n", held);
    fflush(stdout);
    wait_for_go();

    /* The writer has published more generations: ours is unchanged. */
    CHECK(shmstate_reader_generation(r) > held);
    CHECK(shmstate_snapshot_generation(snap) == held);
    check_config(snap, held);
    CHECK(n == 4 && w[0] == 0.5 && w[3] == 4.0);
    CHECK(str_is(name_s, name_n, "edge-router"));

    const shmstate_snapshot *newer = NULL;
    OK(shmstate_read(r, &newer));
    uint64_t latest = shmstate_snapshot_generation(newer);
    CHECK(latest > held);
    check_config(newer, latest);
    /* A value of the released snapshot is refused, not misread. */
    CHECK(shmstate_value_f64s(&weights, &w, &n) == SHMSTATE_ERR_STALE_VALUE);
    CHECK(shmstate_value_str(&name_v, &name_s, &name_n) == SHMSTATE_ERR_STALE_VALUE);
    /* The same generation again: the same snapshot, values still good. */
    shmstate_value stamp;
    OK(shmstate_get(newer, "stamp", &stamp));
    OK(shmstate_read(r, &newer));
    uint64_t u = 0;
    OK(shmstate_value_u64(&stamp, &u));
    CHECK(u == latest);
    shmstate_release(r);
    CHECK(shmstate_value_u64(&stamp, &u) == SHMSTATE_ERR_STALE_VALUE);
    CHECK(shmstate_get_u64(newer, "stamp", &u) == SHMSTATE_ERR_NO_SNAPSHOT);
    shmstate_reader_close(r);
    printf("read %" PRIu64 "\n", latest);
    return failures != 0;
}

/* Opens and reads once; prints both outcomes (bad objects). */
static int mode_probe(const char *name) {
    shmstate_reader *r = NULL;
    int code = shmstate_reader_open(name, NULL, &r);
    printf("open %s %s\n", shmstate_error_name(code), code ? shmstate_last_error_message() : "");
    if (code == SHMSTATE_OK) {
        const shmstate_snapshot *snap = NULL;
        code = shmstate_read(r, &snap);
        printf("read %s %s\n", shmstate_error_name(code), code ? shmstate_last_error_message() : "");
        CHECK((code == SHMSTATE_OK) == (snap != NULL));
        /* Again: still an error, never a crash. */
        CHECK(shmstate_read(r, &snap) == code);
        shmstate_reader_close(r);
    } else {
        CHECK(r == NULL);
    }
    return failures != 0;
}

/* The writer aborted after publishing: the last snapshot reads, a wait ends
 * with WRITER_DEAD. */
static int mode_crash(const char *name) {
    shmstate_open_options o;
    OK(shmstate_open_options_init(&o));
    o.writer_grace_ns = 0;
    shmstate_reader *r = NULL;
    OK(shmstate_reader_open(name, &o, &r));
    if (!r) return 1;
    const shmstate_snapshot *snap = NULL;
    OK(shmstate_read(r, &snap));
    if (!snap) return 1;
    uint64_t g = shmstate_snapshot_generation(snap);
    check_config(snap, g);
    int code = shmstate_wait_newer(r, g, 20000000000ull, NULL);
    printf("wait %s\n", shmstate_error_name(code));
    shmstate_reader_close(r);
    return failures != 0;
}

/* The object is removed and created again with another type: a plain reader
 * gets REPLACED, a following one reads the new type. */
static int mode_replace(const char *name) {
    shmstate_open_options o;
    OK(shmstate_open_options_init(&o));
    o.flags = SHMSTATE_OPEN_FOLLOW;
    shmstate_reader *plain = NULL, *follow = NULL;
    OK(shmstate_reader_open(name, NULL, &plain));
    OK(shmstate_reader_open(name, &o, &follow));
    if (!plain || !follow) return 1;
    const shmstate_snapshot *a = NULL, *b = NULL;
    OK(shmstate_read(plain, &a));
    OK(shmstate_read(follow, &b));
    if (!a || !b) return 1;
    uint64_t g = shmstate_snapshot_generation(a);
    printf("ready\n");
    fflush(stdout);
    wait_for_go();

    int code = shmstate_wait_newer(plain, g, 20000000000ull, NULL);
    printf("plain wait %s\n", shmstate_error_name(code));
    /* The inline fast path must see the replacement the wait found too. */
    code = shmstate_read_fast(plain, shmstate_reader_fast_path(plain), &a);
    printf("plain read %s\n", shmstate_error_name(code));

    uint64_t next = 0;
    code = shmstate_wait_newer(follow, g, 20000000000ull, &next);
    printf("follow wait %s\n", shmstate_error_name(code));
    OK(shmstate_read_fast(follow, shmstate_reader_fast_path(follow), &b));
    if (b) {
        uint64_t extra = 0;
        OK(shmstate_get_u64(b, "extra", &extra));
        printf("follow extra %" PRIu64 " generation %" PRIu64 "\n", extra, shmstate_snapshot_generation(b));
        const char *s = NULL;
        size_t n = 0;
        OK(shmstate_get_str(b, "name", &s, &n));
        CHECK(str_is(s, n, "v2"));
    }
    shmstate_reader_close(plain);
    shmstate_reader_close(follow);
    return failures != 0;
}

/* Reads while the writer publishes: every snapshot is whole (its stamp is
 * its generation, its vector intact), generations only go up, waits end. */
static int mode_live(const char *name) {
    shmstate_reader *r = NULL;
    OK(shmstate_reader_open(name, NULL, &r));
    if (!r) return 1;
    uint64_t last = 0, reads = 0;
    /* Every read through the inline fast path: it must notice each publish. */
    const shmstate_fast_path *fast = shmstate_reader_fast_path(r);
    CHECK(fast != NULL && shmstate_reader_fast_path(NULL) == NULL);
    printf("ready\n");
    fflush(stdout);
    while (last < 500) {
        const shmstate_snapshot *snap = NULL;
        int code = shmstate_read_fast(r, fast, &snap);
        if (code == SHMSTATE_ERR_EMPTY) {
            OK(shmstate_wait_newer(r, 0, 20000000000ull, NULL));
            continue;
        }
        OK(code);
        if (!snap) return 1;
        uint64_t g = shmstate_snapshot_generation(snap), stamp = 0;
        CHECK(g >= last);
        OK(shmstate_get_u64(snap, "stamp", &stamp));
        CHECK(stamp == g);
        shmstate_value v;
        const double *w = NULL;
        uint64_t n = 0;
        OK(shmstate_get(snap, "weights", &v));
        OK(shmstate_value_f64s(&v, &w, &n));
        CHECK(n == 4 && w[0] == 0.5 && w[1] == 1.0 && w[2] == 2.0 && w[3] == 4.0);
        last = g;
        reads++;
        if (reads % 2 == 0 && last < 500) {
            code = shmstate_wait_newer(r, last, 20000000000ull, NULL);
            CHECK(code == SHMSTATE_OK);
        }
        if (failures) break;
    }
    /* Released, the fast path pins again instead of handing out the old snapshot. */
    const shmstate_snapshot *snap = NULL;
    OK(shmstate_read_fast(r, fast, &snap));
    shmstate_value root;
    int kind = 0;
    OK(shmstate_root(snap, &root));
    shmstate_release(r);
    CHECK(shmstate_value_kind(&root, &kind) == SHMSTATE_ERR_STALE_VALUE);
    OK(shmstate_read_fast(r, fast, &snap));
    CHECK(snap != NULL && shmstate_snapshot_generation(snap) == last);
    printf("last %" PRIu64 " reads %" PRIu64 "\n", last, reads);
    shmstate_reader_close(r);
    return failures != 0;
}

/* Opened before the object exists: the open waits for its first publish. */
static int mode_wait_open(const char *name) {
    shmstate_open_options o;
    OK(shmstate_open_options_init(&o));
    o.flags = SHMSTATE_OPEN_WAIT_FOR_WRITER;
    o.wait_for_writer_ns = 20000000000ull;
    printf("ready\n");
    fflush(stdout);
    shmstate_reader *r = NULL;
    OK(shmstate_reader_open(name, &o, &r));
    if (!r) return 1;
    const shmstate_snapshot *snap = NULL;
    OK(shmstate_read(r, &snap));
    if (snap) {
        check_config(snap, shmstate_snapshot_generation(snap));
        printf("opened %" PRIu64 "\n", shmstate_snapshot_generation(snap));
    }
    shmstate_reader_close(r);
    return failures != 0;
}

/* Publishes from C: stdin holds a schema line ("-" to take the object over
 * with its stored schema) and a JSON value line. */
static int mode_write(const char *name) {
    static char schema[65536], json[65536];
    if (!fgets(schema, sizeof schema, stdin) || !fgets(json, sizeof json, stdin)) return 1;
    schema[strcspn(schema, "\n")] = 0;
    json[strcspn(json, "\n")] = 0;
    shmstate_writer *w = NULL;
    OK(shmstate_writer_open(name, strcmp(schema, "-") ? schema : NULL, &w));
    if (!w) return 1;
    shmstate_writer *second = NULL;
    CHECK(shmstate_writer_open(name, NULL, &second) == SHMSTATE_ERR_WRITER_BUSY && second == NULL);
    uint64_t g = 0;
    CHECK(shmstate_publish_json(w, "{", 1, &g) == SHMSTATE_ERR_INVALID_ARGUMENT);
    const char *wrong = "{\"stamp\": \"seven\"}";
    CHECK(shmstate_publish_json(w, wrong, strlen(wrong), &g) == SHMSTATE_ERR_INVALID_DATA);
    CHECK(strstr(shmstate_last_error_message(), "stamp") != NULL);
    OK(shmstate_publish_json(w, json, strlen(json), &g));
    printf("published %" PRIu64 "\n", g);
    shmstate_writer_close(w);
    shmstate_writer_close(NULL);
    return failures != 0;
}

/* Waits for fd readiness (up to 20 s); returns 1 if readable, and resets it. */
static int fd_fired(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 20000) != 1) return 0;
    uint64_t n = 0;
    return read(fd, &n, sizeof n) == (ssize_t)sizeof n && n > 0;
}

/* An event loop: poll() on the reader's fd until a newer generation is read. */
static int mode_fd(const char *name) {
    shmstate_reader *r = NULL;
    OK(shmstate_reader_open(name, NULL, &r));
    if (!r) return 1;
    int fd = -1, again = -1;
    OK(shmstate_reader_fd(r, &fd));
    OK(shmstate_reader_fd(r, &again));
    CHECK(fd >= 0 && again == fd);
    CHECK(fd_fired(fd)); /* the start signal */
    const shmstate_snapshot *snap = NULL;
    OK(shmstate_read(r, &snap));
    if (!snap) return 1;
    uint64_t first = shmstate_snapshot_generation(snap), now = first;
    printf("ready\n");
    fflush(stdout);
    while (now == first) {
        if (!fd_fired(fd)) {
            fprintf(stderr, "the fd did not fire\n");
            return 1;
        }
        OK(shmstate_read(r, &snap));
        if (!snap) return 1;
        now = shmstate_snapshot_generation(snap);
    }
    printf("woke %" PRIu64 "\n", now);
    shmstate_reader_close(r);
    return failures != 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s fields|probe|crash|replace|live|wait-open|write|fd NAME\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *name = argv[2];
    int rc = 2;
    if (!strcmp(mode, "fields")) rc = mode_fields(name);
    else if (!strcmp(mode, "probe")) rc = mode_probe(name);
    else if (!strcmp(mode, "crash")) rc = mode_crash(name);
    else if (!strcmp(mode, "replace")) rc = mode_replace(name);
    else if (!strcmp(mode, "live")) rc = mode_live(name);
    else if (!strcmp(mode, "wait-open")) rc = mode_wait_open(name);
    else if (!strcmp(mode, "write")) rc = mode_write(name);
    else if (!strcmp(mode, "fd")) rc = mode_fd(name);
    /* NULL everywhere is refused, never a crash. */
    CHECK(shmstate_reader_open(NULL, NULL, NULL) == SHMSTATE_ERR_INVALID_ARGUMENT);
    CHECK(shmstate_read(NULL, NULL) == SHMSTATE_ERR_INVALID_ARGUMENT);
    shmstate_reader_close(NULL);
    shmstate_release(NULL);
    return rc != 0 || failures != 0;
}
