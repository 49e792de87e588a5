/*
 * fsync_vfs.c - see fsync_vfs.h. The shim's file object holds the real
 * file right after it; every method but xSync only forwards.
 */
#include "fsync_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>

struct count_file {
    sqlite3_file base; /* pMethods: count_io */
    sqlite3_file *real;
};

static sqlite3_vfs *base_vfs;
static sqlite3_vfs count_vfs;
static sqlite3_io_methods count_io;
static _Atomic uint64_t fsyncs;
static struct metrics_hist sync_time;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

#define REAL(f) (((struct count_file *)(f))->real)

static int c_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;

    return rc;
}
static int c_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int c_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int c_sync(sqlite3_file *f, int flags)
{
    uint64_t start = metrics_now_ns();
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);

    metrics_hist_since(&sync_time, start);
    atomic_fetch_add(&fsyncs, 1);
    return rc;
}
static int c_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int c_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int c_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int c_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int c_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int c_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int c_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int c_shmmap(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int c_shmlock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void c_shmbarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int c_shmunmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int c_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int c_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int c_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                  int *out_flags)
{
    struct count_file *cf = (struct count_file *)f;
    int rc;

    (void)vfs;
    cf->real = (sqlite3_file *)(cf + 1);
    memset(cf->real, 0, (size_t)base_vfs->szOsFile);
    rc = base_vfs->xOpen(base_vfs, name, cf->real, flags, out_flags);
    /* Only a file the base VFS opened gets methods; SQLite calls xClose only then. */
    cf->base.pMethods = cf->real->pMethods ? &count_io : NULL;
    return rc;
}

/* VFS-level calls: forwarded with the base VFS as their first argument. */
static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return base_vfs->xDelete(base_vfs, name, sync_dir);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return base_vfs->xAccess(base_vfs, name, flags, out);
}
static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return base_vfs->xFullPathname(base_vfs, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return base_vfs->xDlOpen(base_vfs, name);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    base_vfs->xDlError(base_vfs, n, out);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return base_vfs->xDlSym(base_vfs, h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
    (void)v;
    base_vfs->xDlClose(base_vfs, h);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return base_vfs->xRandomness(base_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return base_vfs->xSleep(base_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return base_vfs->xCurrentTime(base_vfs, out);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return base_vfs->xGetLastError(base_vfs, n, out);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

static void do_register(void)
{
    base_vfs = sqlite3_vfs_find(NULL);
    if (!base_vfs)
        return;
    count_io = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = c_close,
        .xRead = c_read,
        .xWrite = c_write,
        .xTruncate = c_truncate,
        .xSync = c_sync,
        .xFileSize = c_size,
        .xLock = c_lock,
        .xUnlock = c_unlock,
        .xCheckReservedLock = c_reserved,
        .xFileControl = c_fcntl,
        .xSectorSize = c_sector,
        .xDeviceCharacteristics = c_devchar,
        .xShmMap = c_shmmap,
        .xShmLock = c_shmlock,
        .xShmBarrier = c_shmbarrier,
        .xShmUnmap = c_shmunmap,
        .xFetch = c_fetch,
        .xUnfetch = c_unfetch,
    };
    count_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct count_file) + base_vfs->szOsFile,
        .mxPathname = base_vfs->mxPathname,
        .zName = FSYNC_VFS_NAME,
        .xOpen = c_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_fullpath,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64,
    };
    register_rc = sqlite3_vfs_register(&count_vfs, 0);
}

int fsync_vfs_register(void)
{
    pthread_once(&once, do_register);
    return register_rc;
}

void fsync_vfs_metrics(struct metrics_text *t)
{
    metrics_counter(t, "tpc_fsyncs_total", "fsyncs SQLite asked for (xSync calls), all databases.",
                    fsync_vfs_count());
    metrics_histogram(t, "tpc_fsync_duration_seconds", "Time of one fsync (xSync call).",
                      &sync_time);
}

uint64_t fsync_vfs_count(void)
{
    return atomic_load(&fsyncs);
}
