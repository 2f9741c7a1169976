/* Compiled fast path of the log verifier (napari_clinlabel.core.log_blocks).
 *
 * scan() walks complete lines of a log held in a buffer and accepts a line only when it can
 * prove that the Python checks (log_checks.scan with strict=True) would accept it with no
 * warning and no side effect other than moving the chain on:
 *   - the line is canonical JSON exactly as json.dumps(sort_keys=True, separators=(",", ":"),
 *     ensure_ascii=False) writes it, with the twelve v1 fields, "hash" moved last;
 *   - sha256(line minus its hash member) is that hash (so it is the spec's hash);
 *   - v is 1, seq the next number, prev the previous hash, action a non-empty string other than
 *     "sign", data an object without "head" whose "objects" (if any) name sha256 digests,
 *     schema null or an object, time UTC ISO 8601 not before the previous record's;
 *   - actor, source and image are byte for byte those of a record the Python checks accepted.
 * Anything else - a fault, a first record, a new actor, a signature, a float it cannot prove
 * canonical - stops the scan at that line ("bail"), and the caller checks that line in Python,
 * which gives the reason and the seq. This file never decides that a log is broken.
 *
 * sha256 comes from the libcrypto that Python's own hashlib is linked against, found at run
 * time; without it the module does not import and the verifier stays in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef unsigned char u8;

/* ---- sha256 from libcrypto ------------------------------------------------------------- */
/* SHA256_CTX is 112 bytes in every OpenSSL release; the buffer is larger and aligned. */
typedef struct { _Alignas(16) u8 opaque[512]; } sha_ctx;
static int (*sha_init)(void *);
static int (*sha_update)(void *, const void *, size_t);
static int (*sha_final)(u8 *, void *);

static int load_libcrypto(void) {
    const char *names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", "libcrypto.dylib"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib) continue;
        sha_init = (int (*)(void *))dlsym(lib, "SHA256_Init");
        sha_update = (int (*)(void *, const void *, size_t))dlsym(lib, "SHA256_Update");
        sha_final = (int (*)(u8 *, void *))dlsym(lib, "SHA256_Final");
        if (sha_init && sha_update && sha_final) return 0;
    }
    return -1;
}

/* ---- canonical JSON -------------------------------------------------------------------- */
#define MAX_DEPTH 200
static u8 plain[256];  /* 1: a byte that stands for itself inside a canonical string */
static u8 hexval[256]; /* 1 + value for 0-9 a-f, 0 otherwise (lowercase only) */

static void init_tables(void) {
    for (int c = 0x20; c < 0x80; c++) plain[c] = 1;
    plain['"'] = plain['\\'] = 0;
    for (int c = '0'; c <= '9'; c++) hexval[c] = (u8)(1 + c - '0');
    for (int c = 'a'; c <= 'f'; c++) hexval[c] = (u8)(11 + c - 'a');
}

/* One UTF-8 character at p (a byte >= 0x80): its length, or 0 when not valid UTF-8. */
static int utf8_len(const u8 *p, const u8 *end) {
    u8 c = p[0];
    int n;
    u8 lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (end - p < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* The first byte at or after p that does not stand for itself in a canonical string. */
static inline const u8 *skip_plain(const u8 *p, const u8 *end) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* signed compare: bytes 0x80-0xff are negative, so "< 0x20" also flags non-ASCII */
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                    _mm_cmplt_epi8(v, space));
        int m = _mm_movemask_epi8(stop);
        if (m) return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && plain[*p]) p++;
    return p;
}

/* A canonical string whose opening quote is at p[-1]; returns the byte after its closing quote.
 * *escaped is set when it holds an escape sequence. */
static const u8 *skip_string(const u8 *p, const u8 *end, int *escaped) {
    for (;;) {
        p = skip_plain(p, end);
        if (p >= end) return NULL;
        u8 c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            *escaped = 1;
            if (end - p < 2) return NULL;
            switch (p[1]) {
            case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;
            case 'u': {
                /* only control characters without a short form are written as \u00xx */
                if (end - p < 6 || p[2] != '0' || p[3] != '0') return NULL;
                if (!hexval[p[4]] || !hexval[p[5]] || p[4] > '1') return NULL;
                int v = (hexval[p[4]] - 1) * 16 + hexval[p[5]] - 1;
                if (v == 0x08 || v == 0x09 || v == 0x0a || v == 0x0c || v == 0x0d) return NULL;
                p += 6;
                continue;
            }
            default:
                return NULL;
            }
        }
        if (c < 0x20) return NULL;
        int n = utf8_len(p, end);
        if (!n) return NULL;
        p += n;
    }
}

static int is_digit(u8 c) { return c >= '0' && c <= '9'; }

/* Set while scan() runs without the GIL (other threads verify other chunks meanwhile). */
static _Thread_local PyThreadState *released;

/* A float token [a, b) in plain decimal notation that is certainly repr() of its value: at most
 * 15 significant digits (so no other string of as few digits reads as the same double, and
 * repr picks the shortest), no trailing zero in the fraction unless it is ".0" after an
 * integer, and a decimal point where repr writes one (no exponent: 1e-4 <= |x| < 1e16).
 * 0: not shown here (the caller then compares with repr itself). */
static int float_is_short_repr(const u8 *a, const u8 *b) {
    if (a < b && *a == '-') a++;
    const u8 *dot = a;
    while (dot < b && is_digit(*dot)) dot++;
    if (dot == b || *dot != '.') return 0; /* an exponent: leave it to repr */
    const u8 *frac = dot + 1;
    for (const u8 *q = frac; q < b; q++)
        if (!is_digit(*q)) return 0;
    Py_ssize_t nint = dot - a, nfrac = b - frac;
    if (nfrac < 1 || nint < 1 || nint > 16) return 0;
    if (nfrac == 1 && frac[0] == '0') return nint <= 15 || a[0] == '0'; /* X.0 */
    if (b[-1] == '0') return 0;
    Py_ssize_t sig;
    if (nint == 1 && a[0] == '0') {
        Py_ssize_t lead = 0;
        while (lead < nfrac && frac[lead] == '0') lead++;
        if (lead > 3) return 0; /* below 1e-4 repr uses an exponent */
        sig = nfrac - lead;
    } else {
        sig = nint + nfrac;
    }
    return sig <= 15;
}

/* A canonical number at p: an int as str(int) writes it, a float as repr(float) does. */
static const u8 *skip_number(const u8 *p, const u8 *end) {
    const u8 *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) p++;
    } else return NULL; /* -Infinity and the like: left to Python */
    int is_float = 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
        is_float = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
        is_float = 1;
    }
    Py_ssize_t len = p - start;
    if (!is_float) {
        if (len == 2 && start[0] == '-' && start[1] == '0') return NULL; /* "-0" loads as 0 */
        if (len > 4000) return NULL; /* Python's int-to-str digit limit: left to Python */
        return p;
    }
    if (float_is_short_repr(start, p)) return p;
    char buf[64];
    if (len >= (Py_ssize_t)sizeof buf) return NULL;
    memcpy(buf, start, (size_t)len);
    buf[len] = 0;
    int same = 0;
    if (released) PyEval_RestoreThread(released); /* repr() needs the interpreter */
    double x = PyOS_string_to_double(buf, NULL, NULL);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
    } else {
        char *r = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!r) PyErr_Clear();
        else {
            same = strlen(r) == (size_t)len && memcmp(r, buf, (size_t)len) == 0;
            PyMem_Free(r);
        }
    }
    if (released) released = PyEval_SaveThread();
    return same ? p : NULL;
}

static int key_less(const u8 *a, size_t na, const u8 *b, size_t nb) {
    /* UTF-8 byte order is code point order, which is how sort_keys orders str keys */
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i];
    return na < nb;
}

static const u8 *skip_value(const u8 *p, const u8 *end, int depth);

static const u8 *skip_object(const u8 *p, const u8 *end, int depth) {
    /* p is just after '{' */
    if (p < end && *p == '}') return p + 1;
    const u8 *prev_key = NULL;
    size_t prev_len = 0;
    for (;;) {
        if (p >= end || *p != '"') return NULL;
        int escaped = 0;
        const u8 *k = p + 1;
        p = skip_string(k, end, &escaped);
        if (!p || escaped) return NULL; /* escaped keys sort by their decoded text: Python */
        size_t klen = (size_t)(p - 1 - k);
        if (prev_key && !key_less(prev_key, prev_len, k, klen)) return NULL;
        prev_key = k;
        prev_len = klen;
        if (p >= end || *p != ':') return NULL;
        p = skip_value(p + 1, end, depth + 1);
        if (!p || p >= end) return NULL;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') return p + 1;
        return NULL;
    }
}

static const u8 *skip_array(const u8 *p, const u8 *end, int depth) {
    if (p < end && *p == ']') return p + 1;
    for (;;) {
        p = skip_value(p, end, depth + 1);
        if (!p || p >= end) return NULL;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']') return p + 1;
        return NULL;
    }
}

static const u8 *skip_literal(const u8 *p, const u8 *end, const char *lit, size_t n) {
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) return NULL;
    return p + n;
}

static const u8 *skip_value(const u8 *p, const u8 *end, int depth) {
    if (p >= end || depth > MAX_DEPTH) return NULL;
    int escaped = 0;
    switch (*p) {
    case '"': return skip_string(p + 1, end, &escaped);
    case '{': return skip_object(p + 1, end, depth);
    case '[': return skip_array(p + 1, end, depth);
    case 't': return skip_literal(p, end, "true", 4);
    case 'f': return skip_literal(p, end, "false", 5);
    case 'n': return skip_literal(p, end, "null", 4);
    default: return skip_number(p, end);
    }
}

/* ---- one record ------------------------------------------------------------------------ */
enum { F_ACTION, F_ACTOR, F_DATA, F_IMAGE, F_PREV, F_SCHEMA, F_SEQ, F_SOURCE, F_TARGET,
       F_TIME, F_V, NFIELDS };
static const char *const KEYS[NFIELDS] = {
    "\"action\":", "\"actor\":", "\"data\":", "\"image\":", "\"prev\":", "\"schema\":",
    "\"seq\":", "\"source\":", "\"target\":", "\"time\":", "\"v\":"};
static size_t KEYLEN[NFIELDS];
#define TAIL_LEN 75 /* ,"hash":"<64 hex>"} */

typedef struct {
    const u8 *a, *b;
} span;

/* The value spans of a line in the writer's layout (canonical body, hash last); 0 on success.
 * known[i], when set, holds canonical bytes the field is expected to repeat (an accepted
 * record's actor, say): when the line holds exactly them, they are not parsed again. */
static int split_fields(const u8 *ls, const u8 *le, span *f, const span *known) {
    if (le - ls < TAIL_LEN + 2 || ls[0] != '{') return -1;
    const u8 *body_end = le - TAIL_LEN;
    if (memcmp(body_end, ",\"hash\":\"", 9) != 0 || le[-2] != '"' || le[-1] != '}') return -1;
    const u8 *p = ls + 1;
    for (int i = 0; i < NFIELDS; i++) {
        if (i) {
            if (p >= body_end || *p != ',') return -1;
            p++;
        }
        if ((size_t)(body_end - p) < KEYLEN[i]) return -1;
        for (size_t j = 0; j < KEYLEN[i]; j++)
            if (p[j] != (u8)KEYS[i][j]) return -1;
        p += KEYLEN[i];
        f[i].a = p;
        if (known && known[i].a) {
            size_t n = (size_t)(known[i].b - known[i].a);
            if ((size_t)(body_end - p) > n && p[n] == ',' && memcmp(p, known[i].a, n) == 0) {
                f[i].b = p + n; /* a complete canonical value followed by ',': that value */
                p += n;
                continue;
            }
        }
        p = skip_value(p, body_end, 1);
        if (!p) return -1;
        f[i].b = p;
    }
    return p == body_end ? 0 : -1;
}

static int span_is(span s, const char *lit, size_t n) {
    return (size_t)(s.b - s.a) == n && memcmp(s.a, lit, n) == 0;
}

static int span_eq(span s, const u8 *c, Py_ssize_t n) {
    return c && (s.b - s.a) == n && memcmp(s.a, c, (size_t)n) == 0;
}

static int is_hex64(const u8 *p) {
    for (int i = 0; i < 64; i++)
        if (!hexval[p[i]]) return 0;
    return 1;
}

/* time as \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z, ASCII digits */
static int time_ok(const u8 *t, Py_ssize_t n) {
    if (n != 20 && (n < 22 || n > 30)) return 0;
    if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' ||
        t[n - 1] != 'Z' || (n > 20 && t[19] != '.'))
        return 0;
    static const u8 digit_at[30] = {1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0,
                                    1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (Py_ssize_t i = 0; i < n - 1; i++)
        if (digit_at[i] && !is_digit(t[i])) return 0;
    return 1;
}

typedef struct {
    Py_ssize_t index;
    const u8 *role;
    Py_ssize_t role_len;
    const u8 *digest;
} named;

typedef struct {
    int64_t expected;
    u8 prev_q[66];         /* the previous hash in quotes, as the next record's prev holds it */
    span schema;           /* the last accepted record's schema (into the buffer), or none */
    int prev_set;          /* prev holds 64 bytes (else: the chain's prev is not a plain hash) */
    const u8 *last_time;   /* into the caller's buffer, or time_buf */
    Py_ssize_t last_len;
    const u8 *actor, *source, *image; /* accepted values' bytes (NULL: none yet) */
    Py_ssize_t actor_len, source_len, image_len;
    int collect;           /* collect the object names of accepted records */
    named *objects;        /* (index, role, digest) of accepted records, into the buffer */
    size_t n_objects, cap_objects;
    Py_ssize_t index;      /* lines accepted in this call */
} state;

static int seq_is(span s, int64_t want) {
    Py_ssize_t n = s.b - s.a;
    if (n < 1 || n > 18 || (n > 1 && s.a[0] == '0')) return 0;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_digit(s.a[i])) return 0;
        v = v * 10 + (s.a[i] - '0');
    }
    return v == want;
}

/* data: an object; no "head"; "objects" an object of 64-hex strings (collected when asked).
 * 1: accept, 0: bail, -1: out of memory. */
static int data_ok(span s, state *st) {
    const u8 *p = s.a, *end = s.b;
    if (*p != '{') return 0;
    p++;
    if (*p == '}') return 1;
    for (;;) {
        /* canonical and unescaped keys are guaranteed by split_fields */
        const u8 *k = p + 1;
        const u8 *q = k;
        while (*q != '"') q++;
        size_t klen = (size_t)(q - k);
        p = q + 2; /* past '":' */
        if (klen == 4 && memcmp(k, "head", 4) == 0) return 0;
        if (klen == 7 && memcmp(k, "objects", 7) == 0) {
            if (*p != '{') return 0;
            p++;
            if (*p == '}') p++;
            else for (;;) {
                const u8 *r = p + 1, *rq = r;
                while (*rq != '"') rq++;
                p = rq + 2;
                if (end - p < 66 || p[0] != '"' || p[65] != '"' || !is_hex64(p + 1)) return 0;
                if (st->collect) {
                    if (st->n_objects == st->cap_objects) {
                        size_t cap = st->cap_objects ? 2 * st->cap_objects : 64;
                        named *grown = realloc(st->objects, cap * sizeof *grown);
                        if (!grown) return -1;
                        st->objects = grown;
                        st->cap_objects = cap;
                    }
                    st->objects[st->n_objects++] =
                        (named){st->index, r, (Py_ssize_t)(rq - r), p + 1};
                }
                p += 66;
                if (*p == ',') { p++; continue; }
                p++; /* '}' */
                break;
            }
        } else {
            p = skip_value(p, end, 1);
        }
        if (*p == ',') { p++; continue; }
        return 1; /* '}' */
    }
}

static const char HEX[] = "0123456789abcdef";

/* 1: the line is accepted (st moved on); 0: bail; -1: out of memory; -2: libcrypto failed. */
static int check_line(const u8 *ls, const u8 *le, state *st, u8 *hash_out) {
    span f[NFIELDS], known[NFIELDS];
    memset(known, 0, sizeof known);
    known[F_ACTOR] = (span){st->actor, st->actor + st->actor_len};
    known[F_SOURCE] = (span){st->source, st->source + st->source_len};
    known[F_IMAGE] = (span){st->image, st->image + st->image_len};
    known[F_SCHEMA] = st->schema;
    if (st->prev_set) known[F_PREV] = (span){st->prev_q, st->prev_q + 66};
    if (split_fields(ls, le, f, known) < 0) return 0;
    span a = f[F_ACTION], t = f[F_TIME];
    if (*a.a != '"' || a.b - a.a < 3 || span_is(a, "\"sign\"", 6)) return 0;
    if (!span_is(f[F_V], "1", 1) || !seq_is(f[F_SEQ], st->expected)) return 0;
    if (!st->prev_set || f[F_PREV].b - f[F_PREV].a != 66 || memcmp(f[F_PREV].a, st->prev_q, 66))
        return 0;
    if (!span_eq(f[F_ACTOR], st->actor, st->actor_len)) return 0;
    if (!span_eq(f[F_SOURCE], st->source, st->source_len)) return 0;
    if (!span_eq(f[F_IMAGE], st->image, st->image_len)) return 0;
    if (!span_is(f[F_SCHEMA], "null", 4) && *f[F_SCHEMA].a != '{') return 0;
    if (*t.a != '"') return 0;
    const u8 *tt = t.a + 1;
    Py_ssize_t tn = t.b - t.a - 2;
    if (!time_ok(tt, tn) || tn != st->last_len || memcmp(tt, st->last_time, (size_t)tn) < 0)
        return 0;
    const u8 *h = le - 66;
    /* data last: it may collect object names, which a bail must not leave behind */
    size_t mark = st->n_objects;
    int d = data_ok(f[F_DATA], st);
    if (d <= 0) goto undo;
    sha_ctx ctx;
    u8 md[32];
    if (!sha_init(&ctx) || !sha_update(&ctx, ls, (size_t)(le - TAIL_LEN - ls)) ||
        !sha_update(&ctx, "}", 1) || !sha_final(md, &ctx)) {
        d = -2;
        goto undo;
    }
    u8 hex[64];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = (u8)HEX[md[i] >> 4];
        hex[2 * i + 1] = (u8)HEX[md[i] & 15];
    }
    if (memcmp(hex, h, 64) != 0) {
        d = 0;
        goto undo;
    }
    memcpy(hash_out, h, 64);
    memcpy(st->prev_q + 1, h, 64);
    st->schema = f[F_SCHEMA];
    st->expected++;
    st->last_time = tt;
    return 1;
undo:
    st->n_objects = mark;
    return d;
}

/* ---- module functions ------------------------------------------------------------------ */
static int opt_bytes(PyObject *o, const u8 **p, Py_ssize_t *n) {
    if (o == Py_None) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    char *c;
    if (PyBytes_AsStringAndSize(o, &c, n) < 0) return -1;
    *p = (const u8 *)c;
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(buf, pos, end, expected, prev, last_time, actor, source, image, collect_objects)\n"
"Accept whole lines of buf[pos:end] while each provably passes every v1 check.\n"
"Returns (pos, expected, prev, last_time, hashes, objects, bailed): pos is where it stopped\n"
"(the start of the line to check in Python when bailed, else after the last newline);\n"
"hashes the accepted records' hashes as one bytes object, 64 ASCII bytes each; objects a\n"
"list of (index, role, digest) of the accepted records when collect_objects, else None.\n"
"It runs without the GIL (buf must not change meanwhile), so threads scan side by side.");

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t pos, end;
    long long expected;
    PyObject *prev, *last_time, *actor, *source, *image;
    int collect;
    if (!PyArg_ParseTuple(args, "y*nnLUUOOOp", &buf, &pos, &end, &expected, &prev, &last_time,
                          &actor, &source, &image, &collect))
        return NULL;
    PyObject *result = NULL;
    u8 *hashes = NULL;
    state st;
    memset(&st, 0, sizeof st);
    st.expected = expected;
    st.collect = collect;
    Py_ssize_t n;
    const char *pv = PyUnicode_AsUTF8AndSize(prev, &n);
    if (!pv) goto done;
    if (n == 64) {
        st.prev_q[0] = st.prev_q[65] = '"';
        memcpy(st.prev_q + 1, pv, 64);
        st.prev_set = 1;
    }
    const char *lt = PyUnicode_AsUTF8AndSize(last_time, &st.last_len);
    if (!lt) goto done;
    st.last_time = (const u8 *)lt;
    if (opt_bytes(actor, &st.actor, &st.actor_len) < 0 ||
        opt_bytes(source, &st.source, &st.source_len) < 0 ||
        opt_bytes(image, &st.image, &st.image_len) < 0)
        goto done;
    if (end > buf.len) end = buf.len;
    if (pos < 0 || pos > end) {
        PyErr_SetString(PyExc_ValueError, "pos outside the buffer");
        goto done;
    }
    /* a record line is at least TAIL_LEN + 2 bytes: room for every hash the range can hold */
    size_t cap = (size_t)(end - pos) / (TAIL_LEN + 3) + 1;
    hashes = malloc(cap * 64);
    if (!hashes) {
        PyErr_NoMemory();
        goto done;
    }
    const u8 *base = (const u8 *)buf.buf;
    int bailed = 0, fault = 0;
    released = PyEval_SaveThread(); /* the buffer is ours for the call: others run meanwhile */
    while (pos < end) {
        const u8 *ls = base + pos;
        const u8 *le = memchr(ls, '\n', (size_t)(end - pos));
        if (!le) break;
        int r = (size_t)st.index < cap ? check_line(ls, le, &st, hashes + 64 * st.index) : 0;
        if (r < 0) {
            fault = r;
            break;
        }
        if (r == 0) {
            bailed = 1;
            break;
        }
        st.index++;
        pos = (le - base) + 1;
    }
    PyEval_RestoreThread(released);
    released = NULL;
    if (fault) {
        if (fault == -1) PyErr_NoMemory();
        else PyErr_SetString(PyExc_RuntimeError, "libcrypto sha256 failed");
        goto done;
    }
    PyObject *named_list = Py_None;
    Py_INCREF(named_list);
    if (collect) {
        Py_DECREF(named_list);
        named_list = PyList_New((Py_ssize_t)st.n_objects);
        if (!named_list) goto done;
        for (size_t i = 0; i < st.n_objects; i++) {
            named o = st.objects[i];
            PyObject *t = Py_BuildValue("(ns#s#)", o.index, (const char *)o.role, o.role_len,
                                        (const char *)o.digest, (Py_ssize_t)64);
            if (!t) {
                Py_DECREF(named_list);
                goto done;
            }
            PyList_SET_ITEM(named_list, (Py_ssize_t)i, t);
        }
    }
    PyObject *new_prev = st.index ? PyUnicode_FromStringAndSize((const char *)st.prev_q + 1, 64)
                                  : Py_NewRef(prev);
    PyObject *new_time = st.index ? PyUnicode_FromStringAndSize((const char *)st.last_time,
                                                                st.last_len)
                                  : Py_NewRef(last_time);
    if (new_prev && new_time)
        result = Py_BuildValue("(nLOOy#OO)", pos, (long long)st.expected, new_prev, new_time,
                               (const char *)hashes, (Py_ssize_t)(64 * st.index), named_list,
                               bailed ? Py_True : Py_False);
    Py_XDECREF(new_prev);
    Py_XDECREF(new_time);
    Py_DECREF(named_list);
done:
    free(hashes);
    free(st.objects);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(spans_doc,
"spans(line) -> (actor, source, image) as bytes, or None when the line is not in the\n"
"writer's layout (canonical JSON, the twelve v1 fields, hash last).");

static PyObject *spans(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const u8 *ls = (const u8 *)buf.buf, *le = ls + buf.len;
    span f[NFIELDS];
    PyObject *r;
    if (split_fields(ls, le, f, NULL) < 0) r = Py_NewRef(Py_None);
    else
        r = Py_BuildValue("(y#y#y#)", (const char *)f[F_ACTOR].a, f[F_ACTOR].b - f[F_ACTOR].a,
                          (const char *)f[F_SOURCE].a, f[F_SOURCE].b - f[F_SOURCE].a,
                          (const char *)f[F_IMAGE].a, f[F_IMAGE].b - f[F_IMAGE].a);
    PyBuffer_Release(&buf);
    return r;
}

PyDoc_STRVAR(canonical_doc,
"is_canonical(value) -> True when the bytes are one JSON value exactly as json.dumps(\n"
"sort_keys=True, separators=(',', ':'), ensure_ascii=False) writes it; False can also mean\n"
"'not provable here' (escaped keys, NaN, nesting over 200).");

static PyObject *is_canonical(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const u8 *p = (const u8 *)buf.buf, *end = p + buf.len;
    const u8 *q = skip_value(p, end, 0);
    PyBuffer_Release(&buf);
    return PyBool_FromLong(q != NULL && q == end);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"spans", spans, METH_VARARGS, spans_doc},
    {"is_canonical", is_canonical, METH_VARARGS, canonical_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_logscan",
    "Compiled fast path of the log verifier (see log_blocks).", -1, methods,
};

PyMODINIT_FUNC PyInit__logscan(void) {
    if (load_libcrypto() < 0) {
        PyErr_SetString(PyExc_ImportError, "libcrypto with SHA256_Init not found");
        return NULL;
    }
    init_tables();
    for (int i = 0; i < NFIELDS; i++) KEYLEN[i] = strlen(KEYS[i]);
    return PyModule_Create(&module);
}
