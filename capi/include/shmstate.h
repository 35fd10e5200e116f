/*
 * shmstate.h: read shmstate objects from C (libshmstate.so / libshmstate.a).
 *
 * The contract (ownership, lifetimes, errors, threads, versioning) is
 * docs/C_API.md. In short:
 *   - every function that can fail returns a shmstate_error_t (0 = success);
 *     after a failure, shmstate_last_error_message() says why;
 *   - a shmstate_reader is created by shmstate_reader_open and freed by
 *     shmstate_reader_close; it holds at most one snapshot (its pin);
 *   - a snapshot, every shmstate_value taken from it and every pointer they
 *     return stay valid until the next shmstate_read, shmstate_release or
 *     shmstate_reader_close on the same reader; the memory they point to is
 *     read-only and shared: never write through it;
 *   - strings are UTF-8, given as pointer + length, NOT NUL-terminated;
 *   - one thread at a time per reader (a reader may move between threads);
 *     different readers are independent.
 *
 * Hand-written; capi/tests/header.rs checks it declares exactly the
 * functions the library exports.
 */
#ifndef SHMSTATE_H
#define SHMSTATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change; compare with shmstate_abi_version(). */
#define SHMSTATE_ABI_VERSION 1u

/* Error codes: an int, 0 for success. Numbers never change; new ones are
 * appended. */
typedef int shmstate_error_t;
enum shmstate_error {
    SHMSTATE_OK = 0,
    SHMSTATE_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad UTF-8, bad path, bad option */
    SHMSTATE_ERR_NOT_FOUND = 2,        /* no object of this name */
    SHMSTATE_ERR_EMPTY = 3,            /* the object has published nothing yet */
    SHMSTATE_ERR_CORRUPT = 4,          /* the object's segments (header, slots, schema) are inconsistent */
    SHMSTATE_ERR_INVALID_DATA = 5,     /* the snapshot does not validate under its schema */
    SHMSTATE_ERR_TYPE_MISMATCH = 6,    /* reserved: typed opens (not in ABI 1) */
    SHMSTATE_ERR_REPLACED = 7,         /* the name refers to another object now (e.g. a type change): reopen */
    SHMSTATE_ERR_REMOVED = 8,          /* the object was removed and its writer is gone */
    SHMSTATE_ERR_TIMEOUT = 9,          /* the wait's timeout passed */
    SHMSTATE_ERR_WRITER_DEAD = 10,     /* the writer died and none took over within the grace period */
    SHMSTATE_ERR_NO_SUCH_FIELD = 11,   /* no such field, index, key; or an Option on the path is None */
    SHMSTATE_ERR_WRONG_TYPE = 12,      /* the value is not of the kind asked for */
    SHMSTATE_ERR_OUT_OF_RANGE = 13,    /* the number does not fit the type asked for */
    SHMSTATE_ERR_STALE_VALUE = 14,     /* the value belongs to a snapshot no longer held */
    SHMSTATE_ERR_NO_SNAPSHOT = 15,     /* the reader holds no snapshot (call shmstate_read) */
    SHMSTATE_ERR_PERMISSION_DENIED = 16,
    SHMSTATE_ERR_FORMAT_VERSION = 17,  /* written by an incompatible shmstate version */
    SHMSTATE_ERR_READERS_FULL = 18,    /* the object's reader table is full */
    SHMSTATE_ERR_NOT_INITIALIZED = 19, /* the writer is still creating the object */
    SHMSTATE_ERR_OS = 20,              /* a system call failed (the message names it) */
    SHMSTATE_ERR_PANIC = 21,           /* a bug in shmstate, caught at the boundary; please report it */
    SHMSTATE_ERR_WRITER_BUSY = 22,     /* another live writer holds the object */
    SHMSTATE_ERR_NO_SPACE = 23,        /* /dev/shm is full (the message says how much is needed and free) */
    SHMSTATE_ERR_TOO_LARGE = 24,       /* the snapshot exceeds the object's size limit */
    SHMSTATE_ERR_ALL_SLOTS_PINNED = 25 /* every slot is pinned by readers; publish again later */
};

/* What a value is (shmstate_value_kind). New kinds may be appended. */
typedef enum shmstate_kind {
    SHMSTATE_KIND_UNIT = 0,
    SHMSTATE_KIND_BOOL = 1,
    SHMSTATE_KIND_UINT = 2,   /* u8..u128, usize */
    SHMSTATE_KIND_INT = 3,    /* i8..i128, isize */
    SHMSTATE_KIND_FLOAT = 4,  /* f32, f64 */
    SHMSTATE_KIND_CHAR = 5,
    SHMSTATE_KIND_STRING = 6, /* String, Box<str>, Arc<str>, Rc<str> */
    SHMSTATE_KIND_SEQ = 7,    /* Vec<T>, Box<[T]>, [T; N] */
    SHMSTATE_KIND_TUPLE = 8,
    SHMSTATE_KIND_OPTION = 9,
    SHMSTATE_KIND_STRUCT = 10,
    SHMSTATE_KIND_ENUM = 11,
    SHMSTATE_KIND_MAP = 12,   /* HashMap, BTreeMap */
    SHMSTATE_KIND_SET = 13    /* HashSet, BTreeSet */
} shmstate_kind_t;

/* Element types of shmstate_value_numbers. */
typedef enum shmstate_number {
    SHMSTATE_U8 = 1,
    SHMSTATE_I8 = 2,
    SHMSTATE_U16 = 3,
    SHMSTATE_I16 = 4,
    SHMSTATE_U32 = 5, /* also usize (32-bit in the archive) */
    SHMSTATE_I32 = 6, /* also isize */
    SHMSTATE_U64 = 7,
    SHMSTATE_I64 = 8,
    SHMSTATE_F32 = 9,
    SHMSTATE_F64 = 10
} shmstate_number_t;

/* A writer of one object (publishes JSON values under its schema). Opaque. */
typedef struct shmstate_writer shmstate_writer;
/* A reader of one object: owns one pin of it. Opaque. */
typedef struct shmstate_reader shmstate_reader;
/* The snapshot a reader holds. Opaque; owned by the reader, never freed. */
typedef struct shmstate_snapshot shmstate_snapshot;
/* A map object read without its Rust types (docs/MAP.md). */
typedef struct shmstate_map shmstate_map;

/* A value inside a held snapshot: plain data, copy it freely, never free it.
 * The fields are the library's; do not set them. */
typedef struct shmstate_value {
    const shmstate_snapshot *snapshot;
    uint64_t at;
    uint32_t type_index;
    uint32_t epoch;
} shmstate_value;

/* Flags of shmstate_open_options. */
#define SHMSTATE_OPEN_FOLLOW 1u          /* follow the name to an object that replaces this one */
#define SHMSTATE_OPEN_WAIT_FOR_WRITER 2u /* wait up to wait_for_writer_ns for the object to exist and publish */

#define SHMSTATE_OPEN_OPTIONS_VERSION 1u

/* Options of shmstate_reader_open: fill with shmstate_open_options_init,
 * then change fields. */
typedef struct shmstate_open_options {
    uint32_t version;            /* SHMSTATE_OPEN_OPTIONS_VERSION */
    uint32_t flags;              /* SHMSTATE_OPEN_* (default 0) */
    uint64_t init_timeout_ns;    /* wait for a writer still initialising the object (default 1 s) */
    uint64_t writer_grace_ns;    /* waits: how long a dead writer may be replaced before WRITER_DEAD (default 3 s) */
    uint64_t wait_for_writer_ns; /* with SHMSTATE_OPEN_WAIT_FOR_WRITER (default 0) */
} shmstate_open_options;

/* ---- the library ---- */

/* SHMSTATE_ABI_VERSION of the library loaded. */
uint32_t shmstate_abi_version(void);
/* The library's version, e.g. "0.1.0" (static, NUL-terminated). */
const char *shmstate_version(void);
/* "SHMSTATE_ERR_TIMEOUT" for a code (static, NUL-terminated; unknown codes too). */
const char *shmstate_error_name(int code);
/* The message of the last failure on this thread (NUL-terminated). Meaningful
 * right after a function returned an error; valid until the next call into
 * the library on this thread. Never NULL. */
const char *shmstate_last_error_message(void);

/* ---- readers ---- */

/* Fills *options with the defaults. */
shmstate_error_t shmstate_open_options_init(shmstate_open_options *options);

/* Opens the object `name` (NUL-terminated UTF-8). `options` may be NULL (the
 * defaults). On success *out is a new reader, to be closed with
 * shmstate_reader_close; on failure *out is NULL. */
shmstate_error_t shmstate_reader_open(const char *name, const shmstate_open_options *options,
                                      shmstate_reader **out);

/* Closes the reader: releases its snapshot and its pin. NULL is ignored.
 * The reader, its snapshot and every value and pointer taken from them are
 * invalid afterwards. */
void shmstate_reader_close(shmstate_reader *reader);

/* The latest published generation (0: nothing yet, or reader is NULL): one
 * atomic load, pins nothing. */
uint64_t shmstate_reader_generation(const shmstate_reader *reader);

/* The stored schema as Rust-like text (pointer + length, not NUL-terminated),
 * valid until the reader is closed or a shmstate_read follows a replacement. */
shmstate_error_t shmstate_reader_schema(shmstate_reader *reader, const char **text, size_t *len);

/* Pins the latest snapshot and sets *out to it (NULL on failure). If the
 * snapshot held is still the latest this is one atomic load, and *out,
 * values and pointers from it stay valid. Otherwise the held one is
 * released first (its values become SHMSTATE_ERR_STALE_VALUE, its pointers
 * dangling) and the new one is validated once for its generation.
 * Errors: EMPTY, CORRUPT, INVALID_DATA, REPLACED (not following), OS. */
shmstate_error_t shmstate_read(shmstate_reader *reader, const shmstate_snapshot **out);

/* Releases the held snapshot (if any), letting the writer reuse its slot. */
void shmstate_release(shmstate_reader *reader);

/* Blocks until a generation newer than `than` is published (futex, no
 * polling) and stores it in *next (NULL allowed). Errors: TIMEOUT,
 * WRITER_DEAD (dead for writer_grace_ns), REPLACED (not following), REMOVED,
 * OS. Pass the generation of the last snapshot read. Following, a
 * replacement ends the wait with the new object's generation (which starts
 * again from 1); the next shmstate_read switches to it. Does not touch the
 * held snapshot. */
shmstate_error_t shmstate_wait_newer(shmstate_reader *reader, uint64_t than, uint64_t timeout_ns,
                                     uint64_t *next);

/* A file descriptor for event loops (poll, epoll, libuv): it becomes readable
 * when a generation newer than the last one signalled is published, and when
 * a wait would end with an error (WRITER_DEAD, REPLACED, REMOVED). Then read
 * 8 bytes from it (eventfd semantics; it is non-blocking) and call
 * shmstate_read or shmstate_wait_newer(reader, g, 0, NULL) to find out what
 * happened. It may also signal when nothing changed (once at the start, and
 * about once a second while the writer is dead). A helper thread per reader
 * waits on the futex; the same fd is returned on every call. Owned by the
 * reader: do not close it; remove it from your event loop before
 * shmstate_reader_close, which ends the helper. */
shmstate_error_t shmstate_reader_fd(shmstate_reader *reader, int *fd);

/* ---- snapshots ---- */

/* The held snapshot's generation (0 if none is held). */
uint64_t shmstate_snapshot_generation(const shmstate_snapshot *snap);
/* The snapshot's archived bytes (rkyv's format, root at the end), read-only. */
shmstate_error_t shmstate_snapshot_bytes(const shmstate_snapshot *snap, const uint8_t **data, size_t *len);
/* The root value. */
shmstate_error_t shmstate_root(const shmstate_snapshot *snap, shmstate_value *out);

/* The value at `path` from the root. Paths: `limits.max_conns`, `hosts[3]`,
 * `by_name["eu-1"]` (\" and \\ escape), `by_id[42]` (integer map key), `pair.0`
 * (tuple field); a field of an Option looks into its Some; "" is the root.
 * Errors: INVALID_ARGUMENT (syntax), NO_SUCH_FIELD, WRONG_TYPE. */
shmstate_error_t shmstate_get(const shmstate_snapshot *snap, const char *path, shmstate_value *out);
/* shmstate_get, then the number or string there. */
shmstate_error_t shmstate_get_u64(const shmstate_snapshot *snap, const char *path, uint64_t *out);
shmstate_error_t shmstate_get_i64(const shmstate_snapshot *snap, const char *path, int64_t *out);
shmstate_error_t shmstate_get_f64(const shmstate_snapshot *snap, const char *path, double *out);
shmstate_error_t shmstate_get_str(const shmstate_snapshot *snap, const char *path, const char **data,
                                  size_t *len);

/* ---- values (each step decodes only what it is asked for) ---- */

/* The value at `path` below `v`. */
shmstate_error_t shmstate_value_get(const shmstate_value *v, const char *path, shmstate_value *out);
/* What `v` is (a shmstate_kind_t). Boxes are looked through everywhere. */
shmstate_error_t shmstate_value_kind(const shmstate_value *v, int *out);
/* The type's name as Rust spells it (`Config`, `Vec<u64>`): pointer + length. */
shmstate_error_t shmstate_value_type_name(const shmstate_value *v, const char **name, size_t *len);
/* Elements of a SEQ/TUPLE/SET, entries of a MAP, fields of a STRUCT or of an
 * ENUM's variant, 0 or 1 for an OPTION. */
shmstate_error_t shmstate_value_len(const shmstate_value *v, uint64_t *out);
/* A named field of a STRUCT or of the variant of an ENUM ("0", "1"… for
 * positional fields and tuples). */
shmstate_error_t shmstate_value_field(const shmstate_value *v, const char *name, shmstate_value *out);
/* Element i of a SEQ/TUPLE/SET, or field i of a STRUCT/ENUM variant. */
shmstate_error_t shmstate_value_index(const shmstate_value *v, uint64_t i, shmstate_value *out);
/* The name of field i of a STRUCT/TUPLE or of an ENUM's variant. */
shmstate_error_t shmstate_value_field_name(const shmstate_value *v, uint64_t i, const char **name,
                                           size_t *len);
/* The name of an ENUM's variant. */
shmstate_error_t shmstate_value_variant(const shmstate_value *v, const char **name, size_t *len);
/* An OPTION: *is_some = 1 and *inner = the value (inner may be NULL), or 0. */
shmstate_error_t shmstate_value_option(const shmstate_value *v, int *is_some, shmstate_value *inner);
/* Entry i of a MAP (BTreeMap in key order, HashMap in bucket order). */
shmstate_error_t shmstate_value_entry(const shmstate_value *v, uint64_t i, shmstate_value *key,
                                      shmstate_value *value);
/* The value under a key of a MAP (a linear scan of its entries). */
shmstate_error_t shmstate_value_lookup_str(const shmstate_value *v, const char *key, size_t key_len,
                                           shmstate_value *out);
shmstate_error_t shmstate_value_lookup_u64(const shmstate_value *v, uint64_t key, shmstate_value *out);
shmstate_error_t shmstate_value_lookup_i64(const shmstate_value *v, int64_t key, shmstate_value *out);

/* Leaves. Any integer that fits converts (else OUT_OF_RANGE); f64 takes f32
 * and f64 only; everything else is WRONG_TYPE. */
shmstate_error_t shmstate_value_u64(const shmstate_value *v, uint64_t *out);
shmstate_error_t shmstate_value_i64(const shmstate_value *v, int64_t *out);
shmstate_error_t shmstate_value_f64(const shmstate_value *v, double *out);
shmstate_error_t shmstate_value_bool(const shmstate_value *v, int *out);
/* A char as its Unicode scalar value. */
shmstate_error_t shmstate_value_char(const shmstate_value *v, uint32_t *out);
/* A string's UTF-8 bytes, NOT NUL-terminated (copied once per snapshot into
 * memory the snapshot owns). */
shmstate_error_t shmstate_value_str(const shmstate_value *v, const char **data, size_t *len);

/* A SEQ of numbers in place, zero-copy: *data points into the shared mapping
 * (aligned for the element type, read-only), *len elements. `number_type`
 * must be the stored element type exactly (else WRONG_TYPE). */
shmstate_error_t shmstate_value_numbers(const shmstate_value *v, int number_type, const void **data,
                                        uint64_t *len);

/* Typed shorthands of shmstate_value_numbers. */
static inline shmstate_error_t shmstate_value_f64s(const shmstate_value *v, const double **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_F64, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_f32s(const shmstate_value *v, const float **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_F32, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_u64s(const shmstate_value *v, const uint64_t **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_U64, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_i64s(const shmstate_value *v, const int64_t **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_I64, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_u32s(const shmstate_value *v, const uint32_t **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_U32, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_i32s(const shmstate_value *v, const int32_t **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_I32, (const void **)data, len);
}
static inline shmstate_error_t shmstate_value_u8s(const shmstate_value *v, const uint8_t **data, uint64_t *len) {
    return shmstate_value_numbers(v, SHMSTATE_U8, (const void **)data, len);
}

/* ---- maps (a MapWriter's keyed objects, docs/MAP.md) ---- */

/* Opens the map object `name` (its root object and pages segment, whose
 * stored value schema must match). On success *out is a new map handle, to
 * be closed with shmstate_map_close. One thread at a time per map. Errors as
 * shmstate_reader_open; CORRUPT for a pages segment without a value schema. */
shmstate_error_t shmstate_map_open(const char *name, shmstate_map **out);
/* Closes the map (its generation and value are let go of). NULL is ignored. */
void shmstate_map_close(shmstate_map *map);
/* Pins the latest committed generation (stored in *generation, NULL
 * allowed); the one held before is let go of. The writer never changes what
 * a pinned generation reaches: later commits are not seen until the next read. */
shmstate_error_t shmstate_map_read(shmstate_map *map, uint64_t *generation);
/* Lets go of the held generation (and of its value). */
void shmstate_map_release(shmstate_map *map);
/* Entries of the held generation (NO_SNAPSHOT before shmstate_map_read). */
shmstate_error_t shmstate_map_len(shmstate_map *map, uint64_t *out);
/* The value of a key in the held generation, as a shmstate_value every
 * shmstate_value_* accessor reads (its `snapshot` also works with
 * shmstate_snapshot_generation, shmstate_root and shmstate_get). The key is
 * text, `key_len` bytes: a decimal integer for integer keys, the string for
 * String keys, hex digits for Vec<u8> keys (INVALID_ARGUMENT otherwise).
 * NO_SUCH_FIELD if absent; INVALID_DATA or CORRUPT if the map's blocks are
 * bad. The value stays valid until the next shmstate_map_get, read, release
 * or close of this map; after that its accessors return STALE_VALUE. */
shmstate_error_t shmstate_map_get(shmstate_map *map, const char *key, size_t key_len, shmstate_value *out);

/* ---- writers ---- */

/* Opens `name` for writing. With `schema_json` (a schema file's text, as
 * `shmstate schema NAME` prints it) the object is created, or taken over if
 * it exists with that schema; with NULL the existing object is taken over
 * under its stored schema. Another live writer is WRITER_BUSY. On success
 * *out is a new writer, to be closed with shmstate_writer_close. One thread
 * at a time per writer. */
shmstate_error_t shmstate_writer_open(const char *name, const char *schema_json, shmstate_writer **out);
/* Closes the writer (the object stays, readers keep reading it). NULL is ignored. */
void shmstate_writer_close(shmstate_writer *writer);
/* Publishes the JSON value `json` (`len` bytes, UTF-8, the form `shmstate
 * dump --json` prints) under the writer's schema: encoded by the library's
 * schema-driven encoder and validated before it becomes current, so readers
 * in any language see it as if a Rust writer had published it. Stores the
 * new generation in *generation (NULL allowed). Errors: INVALID_ARGUMENT
 * (not JSON), INVALID_DATA (does not fit the schema: the message names the
 * path), TOO_LARGE, ALL_SLOTS_PINNED, NO_SPACE, OS; nothing is published then. */
shmstate_error_t shmstate_publish_json(shmstate_writer *writer, const char *json, size_t len,
                                       uint64_t *generation);

#ifdef __cplusplus
}
#endif

#endif /* SHMSTATE_H */
