/* The C half of capi/examples/compare.rs: times reads of the object Rust
 * publishes. `c_read NAME ITERATIONS`; prints `<case> <ns per op>` lines. */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmstate.h"

/* CPU time of this thread: on a loaded machine wall time counts the time
 * the scheduler gave to others (the Rust side measures the same way). */
static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

#define DIE(what) do { fprintf(stderr, "%s: %s\n", what, shmstate_last_error_message()); return 1; } while (0)

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    shmstate_reader *r = NULL;
    const shmstate_snapshot *snap = NULL;
    if (shmstate_reader_open(argv[1], NULL, &r)) DIE("open");
    if (shmstate_read(r, &snap)) DIE("read");
    volatile uint64_t sink = 0;

    double t = now_ns();
    for (long i = 0; i < n; i++) {
        if (shmstate_read(r, &snap)) DIE("read");
        sink += (uintptr_t)snap;
    }
    printf("unchanged_read %.2f\n", (now_ns() - t) / n);

    /* The same through the header's inline fast path (no call when unchanged). */
    const shmstate_fast_path *fast = shmstate_reader_fast_path(r);
    t = now_ns();
    for (long i = 0; i < n; i++) {
        if (shmstate_read_fast(r, fast, &snap)) DIE("read_fast");
        sink += (uintptr_t)snap;
    }
    printf("unchanged_read_fast %.2f\n", (now_ns() - t) / n);

    /* The field looked up by path on every read. */
    t = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t v = 0;
        if (shmstate_read(r, &snap) || shmstate_get_u64(snap, "limits.max_conns", &v)) DIE("path");
        sink += v;
    }
    printf("field_by_path %.2f\n", (now_ns() - t) / n);

    /* The field's value resolved once per snapshot, read on every read. */
    shmstate_value field;
    if (shmstate_get(snap, "limits.max_conns", &field)) DIE("get");
    t = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t v = 0;
        if (shmstate_read(r, &snap) || shmstate_value_u64(&field, &v)) DIE("value");
        sink += v;
    }
    printf("field_by_value %.2f\n", (now_ns() - t) / n);

    /* A vector of 1000 f64 viewed in place and summed. */
    shmstate_value weights;
    if (shmstate_get(snap, "weights", &weights)) DIE("weights");
    t = now_ns();
    for (long i = 0; i < n; i++) {
        const double *w = NULL;
        uint64_t len = 0;
        if (shmstate_read(r, &snap) || shmstate_value_f64s(&weights, &w, &len)) DIE("view");
        sink += (uint64_t)w[len - 1];
    }
    printf("vector_view %.2f\n", (now_ns() - t) / n);

    /* A string viewed in place. */
    shmstate_value name;
    if (shmstate_get(snap, "name", &name)) DIE("name");
    t = now_ns();
    for (long i = 0; i < n; i++) {
        const char *s = NULL;
        size_t len = 0;
        if (shmstate_read(r, &snap) || shmstate_value_str(&name, &s, &len)) DIE("string");
        sink += len;
    }
    printf("string_view %.2f\n", (now_ns() - t) / n);

    /* Map lookups by key, the keys the Rust side asks for. */
    shmstate_value by_name, by_id;
    if (shmstate_get(snap, "by_name", &by_name) || shmstate_get(snap, "by_id", &by_id)) DIE("maps");
    char keys[1000][8];
    for (int k = 0; k < 1000; k++) snprintf(keys[k], sizeof keys[k], "k%d", k);
    long k = 0;
    t = now_ns();
    for (long i = 0; i < n; i++) {
        shmstate_value x;
        uint64_t v = 0;
        k = (k + 7) % 1000;
        if (shmstate_read(r, &snap) || shmstate_value_lookup_str(&by_name, keys[k], strlen(keys[k]), &x) ||
            shmstate_value_u64(&x, &v))
            DIE("hash lookup");
        sink += v;
    }
    printf("hash_lookup %.2f\n", (now_ns() - t) / n);
    t = now_ns();
    for (long i = 0; i < n; i++) {
        shmstate_value x;
        uint64_t v = 0;
        k = (k + 7) % 1000;
        if (shmstate_read(r, &snap) || shmstate_value_lookup_u64(&by_id, (uint64_t)k, &x) ||
            shmstate_value_u64(&x, &v))
            DIE("btree lookup");
        sink += v;
    }
    printf("btree_lookup %.2f\n", (now_ns() - t) / n);

    /* Per snapshot: release and read again (validated already: a re-pin),
     * with and without the first walk of a path / first map lookup. */
    long m = n / 100 > 1000 ? n / 100 : 1000;
    t = now_ns();
    for (long i = 0; i < m; i++) {
        shmstate_release(r);
        if (shmstate_read(r, &snap)) DIE("re-read");
    }
    double repin = (now_ns() - t) / m;
    t = now_ns();
    for (long i = 0; i < m; i++) {
        uint64_t v = 0;
        shmstate_release(r);
        if (shmstate_read(r, &snap) || shmstate_get_u64(snap, "limits.max_conns", &v)) DIE("first walk");
        sink += v;
    }
    printf("first_walk %.2f\n", (now_ns() - t) / m - repin);
    t = now_ns();
    for (long i = 0; i < m; i++) {
        uint64_t v = 0;
        shmstate_release(r);
        if (shmstate_read(r, &snap) || shmstate_get_u64(snap, "by_name[\"k500\"]", &v)) DIE("first lookup");
        sink += v;
    }
    printf("first_lookup %.2f\n", (now_ns() - t) / m - repin);
    shmstate_reader_close(r);
    return sink == 42; /* keeps the loops */
}
