/* The C side of capi/tests/c_maps.rs: reads map objects a Rust MapWriter
 * commits. `map MODE NAME`; prints what it found, exits 1 on anything
 * unexpected (with the reason on stderr). Built with
 * -fsanitize=address,undefined by the test. */
#include <inttypes.h>
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

static shmstate_error_t get(shmstate_map *m, const char *key, shmstate_value *out) {
    return shmstate_map_get(m, key, strlen(key), out);
}

/* The `Item` of key `key` has id `id` and name "item <id>". */
static void check_item(shmstate_map *m, const char *key, uint64_t id) {
    shmstate_value v, f;
    uint64_t u = 0;
    const char *s = NULL;
    size_t n = 0;
    char want[64];
    OK(get(m, key, &v));
    OK(shmstate_value_field(&v, "id", &f));
    OK(shmstate_value_u64(&f, &u));
    CHECK(u == id);
    OK(shmstate_value_get(&v, "name", &f));
    OK(shmstate_value_str(&f, &s, &n));
    snprintf(want, sizeof want, "item %" PRIu64, id);
    CHECK(s != NULL && str_is(s, n, want));
}

/* Holds a generation while the writer commits, then reads the newest. */
static void read_mode(const char *name) {
    shmstate_map *m = NULL;
    shmstate_value v, f;
    uint64_t g = 0, g2 = 0, len = 0, u = 0;
    int kind = -1;
    shmstate_value old;

    OK(shmstate_map_open(name, &m));
    CHECK(shmstate_map_len(m, &len) == SHMSTATE_ERR_NO_SNAPSHOT);
    OK(shmstate_map_read(m, &g));
    OK(shmstate_map_len(m, &len));
    CHECK(len == 300);
    check_item(m, "k0042", 42);
    check_item(m, "k0299", 299);
    OK(get(m, "k0007", &v));
    OK(shmstate_value_kind(&v, &kind));
    CHECK(kind == SHMSTATE_KIND_STRUCT);
    CHECK(shmstate_snapshot_generation(v.snapshot) == g);
    OK(shmstate_get_u64(v.snapshot, "id", &u));
    CHECK(u == 7);
    CHECK(get(m, "nope", &v) == SHMSTATE_ERR_NO_SUCH_FIELD);
    CHECK(shmstate_map_get(m, NULL, 3, &v) == SHMSTATE_ERR_INVALID_ARGUMENT);
    CHECK(shmstate_map_get(NULL, "k0001", 5, &v) == SHMSTATE_ERR_INVALID_ARGUMENT);
    printf("held %" PRIu64 "\n", g);
    fflush(stdout);
    wait_for_go();

    /* The writer committed k0042 = 9999 and more: the held generation is unchanged. */
    check_item(m, "k0042", 42);
    OK(get(m, "k0001", &old));
    check_item(m, "k0002", 2);
    /* A value of an earlier get is refused, not misread. */
    CHECK(shmstate_value_field(&old, "id", &f) == SHMSTATE_ERR_STALE_VALUE);

    OK(shmstate_map_read(m, &g2));
    CHECK(g2 > g);
    check_item(m, "k0042", 9999);
    CHECK(get(m, "k0043", &v) == SHMSTATE_ERR_NO_SUCH_FIELD);
    OK(shmstate_map_len(m, &len));
    CHECK(len == 299);
    printf("read %" PRIu64 "\n", g2);
    shmstate_map_release(m);
    CHECK(get(m, "k0001", &v) == SHMSTATE_ERR_NO_SNAPSHOT);
    shmstate_map_close(m);
    shmstate_map_close(NULL);
}

/* Integer keys: decimal text, negative ones too; bad text is refused. */
static void int_mode(const char *name) {
    shmstate_map *m = NULL;
    shmstate_value v, f;
    uint64_t u = 0;
    OK(shmstate_map_open(name, &m));
    OK(shmstate_map_read(m, NULL));
    OK(get(m, "-3", &v));
    OK(shmstate_value_field(&v, "id", &f));
    OK(shmstate_value_u64(&f, &u));
    CHECK(u == 3);
    CHECK(get(m, "x", &v) == SHMSTATE_ERR_INVALID_ARGUMENT);
    CHECK(get(m, "99999999999999999999999", &v) == SHMSTATE_ERR_INVALID_ARGUMENT);
    shmstate_map_close(m);
}

/* Junk pages: every error is a code, never a crash. Prints the codes seen. */
static void corrupt_mode(const char *name) {
    shmstate_map *m = NULL;
    shmstate_value v;
    char key[16];
    shmstate_error_t e = shmstate_map_open(name, &m);
    if (e != SHMSTATE_OK) {
        printf("open %s\n", shmstate_error_name(e));
        return;
    }
    e = shmstate_map_read(m, NULL);
    if (e != SHMSTATE_OK) {
        printf("read %s\n", shmstate_error_name(e));
        shmstate_map_close(m);
        return;
    }
    int errors = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        e = get(m, key, &v);
        if (e != SHMSTATE_OK && e != SHMSTATE_ERR_NO_SUCH_FIELD) {
            if (errors++ == 0) {
                printf("get %s\n", shmstate_error_name(e));
            }
        }
    }
    printf("errors %d\n", errors);
    shmstate_map_close(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: map read|int|corrupt NAME\n");
        return 2;
    }
    if (strcmp(argv[1], "read") == 0) {
        read_mode(argv[2]);
    } else if (strcmp(argv[1], "int") == 0) {
        int_mode(argv[2]);
    } else if (strcmp(argv[1], "corrupt") == 0) {
        corrupt_mode(argv[2]);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
