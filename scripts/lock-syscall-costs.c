/* What each syscall of a lock-pin publish and new-generation read costs on
 * this machine (BENCHMARKS.md, "Issue 26: lock pins and lanes"), in thread
 * CPU time, on a shm object with a writer's write lock on byte 0 and a
 * reader's read lock on one slot byte, as the library holds them.
 * Run by scripts/lock-syscall-costs.sh. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int lock(int fd, int cmd, short type, off_t byte) {
    struct flock l = {0};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_start = byte;
    l.l_len = 1;
    return fcntl(fd, cmd, &l);
}

#define N 200000
#define TIME(label, body)                                                  \
    do {                                                                   \
        double t0 = now_ns();                                              \
        for (int i = 0; i < N; i++) { body; }                              \
        printf("| %s | %.0f ns |\n", label, (now_ns() - t0) / N);         \
    } while (0)

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "/lock-syscall-costs-%d", (int)getpid());
    int w = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    int r = shm_open(name, O_RDONLY, 0);
    if (w < 0 || r < 0 || ftruncate(w, 4096) != 0) { perror("shm"); return 1; }
    shm_unlink(name);
    uint32_t *word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, w, 0);
    if (word == MAP_FAILED) { perror("mmap"); return 1; }
    const off_t slot = 1ll << 41;
    if (lock(w, F_OFD_SETLK, F_WRLCK, 0) || lock(r, F_OFD_SETLK, F_RDLCK, slot)) { perror("lock"); return 1; }
    printf("| syscall | per call |\n| --- | ---: |\n");
    TIME("getppid (the floor of a syscall)", syscall(SYS_getppid));
    TIME("writer: F_OFD_GETLK probe of a free slot byte", lock(w, F_OFD_GETLK, F_WRLCK, slot + 1));
    TIME("writer: F_OFD_GETLK probe of a read-locked slot byte", lock(w, F_OFD_GETLK, F_WRLCK, slot));
    TIME("writer: FUTEX_WAKE (shared), nobody waiting", syscall(SYS_futex, word + 16, FUTEX_WAKE, 1, 0, 0, 0));
    TIME("reader: F_OFD_SETLK read-lock + unlock of one byte",
         lock(r, F_OFD_SETLK, F_RDLCK, slot + 2); lock(r, F_OFD_SETLK, F_UNLCK, slot + 2));
    TIME("reader: switch slots (lock the new byte, unlock the old)",
         lock(r, F_OFD_SETLK, F_RDLCK, slot + 2 + (i & 1)); lock(r, F_OFD_SETLK, F_UNLCK, slot + 2 + !(i & 1)));
    return 0;
}
