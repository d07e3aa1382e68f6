/* AML encoder core: see aml.h.  Encodings follow ACPI 6.3 chapters 19-20. */
#include "aml.h"

#include <string.h>

#include "../boot/bytes.h"

/* AML opcodes and prefixes used here. */
#define OP_ZERO 0x00
#define OP_ONE 0x01
#define OP_NAME 0x08
#define OP_BYTE_PREFIX 0x0a
#define OP_WORD_PREFIX 0x0b
#define OP_DWORD_PREFIX 0x0c
#define OP_STRING_PREFIX 0x0d
#define OP_QWORD_PREFIX 0x0e
#define OP_SCOPE 0x10
#define OP_BUFFER 0x11
#define OP_PACKAGE 0x12
#define OP_METHOD 0x14
#define OP_DUAL_NAME 0x2e
#define OP_MULTI_NAME 0x2f
#define OP_EXT_PREFIX 0x5b
#define OP_EXT_DEVICE 0x82
#define OP_ROOT_CHAR '\\'
#define OP_PARENT_CHAR '^'
#define OP_LOCAL0 0x60
#define OP_ARG0 0x68
#define OP_STORE 0x70
#define OP_AND 0x7b
#define OP_NOTIFY 0x86
#define OP_IF 0xa0
#define OP_WHILE 0xa2
#define OP_LEQUAL 0x93
#define OP_LLESS 0x95
#define OP_EXT_MUTEX 0x01
#define OP_EXT_ACQUIRE 0x23
#define OP_EXT_RELEASE 0x27
#define OP_RETURN 0xa4
#define OP_EXT_OPREGION 0x80
#define OP_EXT_FIELD 0x81

/* End Tag closing a ResourceTemplate (small item, type 15, length 1). */
#define RES_END_TAG 0x79

/* Largest PkgLength: 4 bytes encode up to 2^28 - 1. */
#define PKGLEN_MAX_BYTES 4u
#define PKGLEN_LIMIT (1u << 28)

enum frame_kind { F_SCOPE, F_DEVICE, F_METHOD, F_PACKAGE, F_BUFFER, F_RESTEMPLATE, F_FIELD, F_IF, F_WHILE };

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = buf ? cap : 0;
    a->err = buf == NULL;
}

size_t aml_finish(struct aml *a)
{
    if (a->err || a->depth != 0)
        return 0;
    return a->len;
}

static void emit(struct aml *a, const void *p, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        a->err = true;
        return;
    }
    if (n)
        memcpy(a->buf + a->len, p, n);
    a->len += n;
}

static void emit_byte(struct aml *a, uint8_t b)
{
    emit(a, &b, 1);
}

/* A data object that is one element of the enclosing Package, if any. */
static void note_item(struct aml *a)
{
    if (!a->err && a->depth > 0)
        a->frames[a->depth - 1].count++;
}

static bool name_lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
    return name_lead_char(c) || (c >= '0' && c <= '9');
}

/*
 * Encode an ASL path as an AML NameString into out (NULL to only
 * validate).  Returns the encoded length, 0 if the path is invalid.
 */
static size_t encode_name(const char *path, uint8_t *out, size_t outcap)
{
    uint8_t tmp[1 + 255 + 2 + 255 * 4];
    size_t n = 0;
    const char *p = path;

    if (!p)
        return 0;
    if (*p == OP_ROOT_CHAR) {
        tmp[n++] = OP_ROOT_CHAR;
        p++;
    } else {
        while (*p == OP_PARENT_CHAR && n < 255) {
            tmp[n++] = OP_PARENT_CHAR;
            p++;
        }
    }

    /* Count the segments first: the prefix depends on how many there are. */
    unsigned nseg = 0;
    if (*p) {
        nseg = 1;
        for (const char *q = p; *q; q++)
            if (*q == '.')
                nseg++;
    }
    if (nseg > 255)
        return 0;
    if (nseg == 0) {
        /* Only "\" alone is meaningful; "" or "^" is not a name. */
        if (n != 1 || tmp[0] != OP_ROOT_CHAR)
            return 0;
        tmp[n++] = 0x00; /* NullName */
    } else if (nseg == 2) {
        tmp[n++] = OP_DUAL_NAME;
    } else if (nseg > 2) {
        tmp[n++] = OP_MULTI_NAME;
        tmp[n++] = (uint8_t)nseg;
    }
    for (unsigned s = 0; s < nseg; s++) {
        size_t k = 0;
        if (!name_lead_char(*p))
            return 0;
        while (*p && *p != '.') {
            if (k == 4 || !name_char(*p))
                return 0;
            tmp[n + k++] = (uint8_t)*p++;
        }
        while (k < 4)
            tmp[n + k++] = '_';
        n += 4;
        if (*p == '.') {
            p++;
            if (!*p)
                return 0; /* trailing dot */
        }
    }
    if (out) {
        if (n > outcap)
            return 0;
        memcpy(out, tmp, n);
    }
    return n;
}

bool aml_name_valid(const char *path)
{
    return encode_name(path, NULL, 0) != 0;
}

static void emit_name(struct aml *a, const char *path)
{
    uint8_t tmp[1 + 255 + 2 + 255 * 4];
    size_t n;

    if (a->err)
        return;
    n = encode_name(path, tmp, sizeof(tmp));
    if (!n) {
        a->err = true;
        return;
    }
    emit(a, tmp, n);
}

/*
 * Open a PkgLength construct.  One byte is reserved for the PkgLength and
 * widened on close if needed, so the buffer never holds more than the
 * finished AML: a buffer of exactly the final size always suffices.
 */
static void open_frame(struct aml *a, enum frame_kind kind, const uint8_t *op, size_t oplen)
{
    if (a->err)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        a->err = true;
        return;
    }
    emit(a, op, oplen);
    size_t start = a->len;
    emit_byte(a, 0);
    if (a->err)
        return;
    a->frames[a->depth++] = (struct aml_frame){.start = start, .body = a->len, .kind = kind};
}

/* PkgLength covering `total` bytes (itself included); returns its size. */
static size_t encode_pkglen(uint32_t total, uint8_t out[PKGLEN_MAX_BYTES])
{
    if (total < 0x40) {
        out[0] = (uint8_t)total;
        return 1;
    }
    size_t follow = total < (1u << 12) ? 1 : total < (1u << 20) ? 2 : 3;
    out[0] = (uint8_t)((follow << 6) | (total & 0x0f));
    for (size_t i = 0; i < follow; i++)
        out[1 + i] = (uint8_t)(total >> (4 + 8 * i));
    return 1 + follow;
}

/* Shortest integer encoding of v (ZeroOp, OneOp or a prefixed constant). */
static size_t encode_integer(uint64_t v, uint8_t out[9])
{
    if (v == 0) {
        out[0] = OP_ZERO;
        return 1;
    }
    if (v == 1) {
        out[0] = OP_ONE;
        return 1;
    }
    if (v <= 0xff) {
        out[0] = OP_BYTE_PREFIX;
        out[1] = (uint8_t)v;
        return 2;
    }
    if (v <= 0xffff) {
        out[0] = OP_WORD_PREFIX;
        put_le16(out + 1, (uint16_t)v);
        return 3;
    }
    if (v <= 0xffffffffu) {
        out[0] = OP_DWORD_PREFIX;
        put_le32(out + 1, (uint32_t)v);
        return 5;
    }
    out[0] = OP_QWORD_PREFIX;
    put_le64(out + 1, v);
    return 9;
}

/* Insert n bytes at offset `at`, shifting the tail up. */
static void insert(struct aml *a, size_t at, const uint8_t *p, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        a->err = true;
        return;
    }
    memmove(a->buf + at + n, a->buf + at, a->len - at);
    memcpy(a->buf + at, p, n);
    a->len += n;
}

void aml_end(struct aml *a)
{
    uint8_t tmp[9];

    if (a->err)
        return;
    if (a->depth == 0) {
        a->err = true;
        return;
    }
    struct aml_frame *f = &a->frames[a->depth - 1];

    if (f->kind == F_RESTEMPLATE) {
        static const uint8_t end_tag[2] = {RES_END_TAG, 0x00}; /* checksum 0: not checked */
        emit(a, end_tag, sizeof(end_tag));
    }
    if (f->kind == F_PACKAGE) {
        /* NumElements is a single byte; VarPackage is not needed yet. */
        if (f->count > 0xff) {
            a->err = true;
            return;
        }
        a->buf[f->body] = (uint8_t)f->count;
    }
    if (f->kind == F_BUFFER || f->kind == F_RESTEMPLATE) {
        /* BufferSize is a TermArg placed before the bytes it counts. */
        size_t n = encode_integer(a->len - f->body, tmp);
        insert(a, f->body, tmp, n);
    }
    if (a->err)
        return;

    size_t body_len = a->len - f->body;
    if (body_len + PKGLEN_MAX_BYTES >= PKGLEN_LIMIT) {
        a->err = true;
        return;
    }
    /* The PkgLength counts its own bytes, so pick the size that fits. */
    size_t pl = body_len + 1 < 0x40 ? 1 : body_len + 2 < (1u << 12) ? 2
                                      : body_len + 3 < (1u << 20) ? 3 : 4;
    if (encode_pkglen((uint32_t)(body_len + pl), tmp) != pl) {
        a->err = true; /* cannot happen: the sizes above match encode_pkglen */
        return;
    }
    /* Widen the one reserved byte to pl bytes, then fill it in. */
    insert(a, f->body, tmp + 1, pl - 1);
    if (a->err)
        return;
    memcpy(a->buf + f->start, tmp, pl);
    a->depth--;
}

void aml_name(struct aml *a, const char *path)
{
    emit_byte(a, OP_NAME);
    emit_name(a, path);
}

void aml_scope(struct aml *a, const char *path)
{
    static const uint8_t op[] = {OP_SCOPE};
    open_frame(a, F_SCOPE, op, sizeof(op));
    emit_name(a, path);
}

void aml_device(struct aml *a, const char *path)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_DEVICE};
    open_frame(a, F_DEVICE, op, sizeof(op));
    emit_name(a, path);
}

void aml_method(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
    static const uint8_t op[] = {OP_METHOD};
    if (nargs > 7)
        a->err = true;
    open_frame(a, F_METHOD, op, sizeof(op));
    emit_name(a, path);
    /* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3, SyncLevel 0. */
    emit_byte(a, (uint8_t)(nargs | (serialized ? 0x08u : 0u)));
}

void aml_return(struct aml *a)
{
    emit_byte(a, OP_RETURN);
}

void aml_if(struct aml *a)
{
    static const uint8_t op[] = {OP_IF};
    open_frame(a, F_IF, op, sizeof(op));
}

void aml_while(struct aml *a)
{
    static const uint8_t op[] = {OP_WHILE};
    open_frame(a, F_WHILE, op, sizeof(op));
}

void aml_lequal(struct aml *a)
{
    emit_byte(a, OP_LEQUAL);
}

void aml_lless(struct aml *a)
{
    emit_byte(a, OP_LLESS);
}

void aml_mutex(struct aml *a, const char *name, unsigned sync_level)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_MUTEX};
    if (sync_level > 15) {
        a->err = true;
        return;
    }
    emit(a, op, sizeof(op));
    emit_name(a, name);
    emit_byte(a, (uint8_t)sync_level);
}

void aml_acquire(struct aml *a, const char *mutex, uint16_t timeout_ms)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_ACQUIRE};
    uint8_t t[2];
    emit(a, op, sizeof(op));
    emit_name(a, mutex);
    /* A WordData, not a TermArg: no integer prefix. */
    put_le16(t, timeout_ms);
    emit(a, t, sizeof(t));
}

void aml_release(struct aml *a, const char *mutex)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_RELEASE};
    emit(a, op, sizeof(op));
    emit_name(a, mutex);
}

void aml_store(struct aml *a)
{
    emit_byte(a, OP_STORE);
}

void aml_and(struct aml *a)
{
    emit_byte(a, OP_AND);
}

void aml_notify(struct aml *a)
{
    emit_byte(a, OP_NOTIFY);
}

void aml_null_target(struct aml *a)
{
    emit_byte(a, 0x00); /* NullName */
}

void aml_operation_region(struct aml *a, const char *name, enum aml_region_space space,
                          uint64_t offset, uint64_t len)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_OPREGION};
    /* Only the spaces whose offset/length meaning aml.h documents. */
    if (space != AML_REGION_SYSTEM_MEMORY && space != AML_REGION_SYSTEM_IO) {
        a->err = true;
        return;
    }
    if (len == 0 || offset + (len - 1) < offset ||
        (space == AML_REGION_SYSTEM_IO && offset + (len - 1) > 0xffff)) {
        a->err = true;
        return;
    }
    uint8_t tmp[9];
    emit(a, op, sizeof(op));
    emit_name(a, name);
    emit_byte(a, (uint8_t)space);
    emit(a, tmp, encode_integer(offset, tmp));
    emit(a, tmp, encode_integer(len, tmp));
}

void aml_field(struct aml *a, const char *region, uint8_t flags)
{
    static const uint8_t op[] = {OP_EXT_PREFIX, OP_EXT_FIELD};
    /* AccessType 0-5, UpdateRule 0-2, bit 7 reserved. */
    if ((flags & 0x0f) > AML_FIELD_BUFFER_ACC || ((flags >> 5) & 3) == 3 || (flags & 0x80)) {
        a->err = true;
        return;
    }
    open_frame(a, F_FIELD, op, sizeof(op));
    emit_name(a, region);
    emit_byte(a, flags);
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
    uint8_t seg[4], len[PKGLEN_MAX_BYTES];

    if (a->err)
        return;
    /* A NamedField is one bare NameSeg followed by its width in bits. */
    if (a->depth == 0 || a->frames[a->depth - 1].kind != F_FIELD || bits == 0 ||
        bits >= PKGLEN_LIMIT || encode_name(name, seg, sizeof(seg)) != 4) {
        a->err = true;
        return;
    }
    emit(a, seg, sizeof(seg));
    emit(a, len, encode_pkglen(bits, len));
}

void aml_integer(struct aml *a, uint64_t v)
{
    uint8_t tmp[9];
    note_item(a);
    emit(a, tmp, encode_integer(v, tmp));
}

void aml_string(struct aml *a, const char *s)
{
    if (!s) {
        a->err = true;
        return;
    }
    /* AsciiCharList: 0x01-0x7F, NUL terminated. */
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p > 0x7f)
            a->err = true;
    note_item(a);
    emit_byte(a, OP_STRING_PREFIX);
    emit(a, s, strlen(s) + 1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool aml_eisaid_value(const char *id, uint32_t *out)
{
    if (!id || strlen(id) != 7)
        return false;
    uint32_t v = 0;
    /* Three 5-bit letters ('A' = 1), then four 4-bit hex digits. */
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            return false;
        v = (v << 5) | (uint32_t)(id[i] - 0x40);
    }
    for (int i = 3; i < 7; i++) {
        int h = hexval(id[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (uint32_t)h;
    }
    /* The 32-bit value is stored most significant byte first. */
    if (out)
        *out = ((v >> 24) & 0xffu) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) |
               ((v << 24) & 0xff000000u);
    return true;
}

void aml_eisaid(struct aml *a, const char *id)
{
    uint32_t v;
    uint8_t tmp[5];
    if (!aml_eisaid_value(id, &v)) {
        a->err = true;
        return;
    }
    /* Always a DWord constant, as iasl emits EisaId(). */
    note_item(a);
    tmp[0] = OP_DWORD_PREFIX;
    put_le32(tmp + 1, v);
    emit(a, tmp, sizeof(tmp));
}

void aml_namepath(struct aml *a, const char *path)
{
    note_item(a);
    emit_name(a, path);
}

void aml_arg(struct aml *a, unsigned n)
{
    if (n > 6) {
        a->err = true;
        return;
    }
    note_item(a);
    emit_byte(a, (uint8_t)(OP_ARG0 + n));
}

void aml_local(struct aml *a, unsigned n)
{
    if (n > 7) {
        a->err = true;
        return;
    }
    note_item(a);
    emit_byte(a, (uint8_t)(OP_LOCAL0 + n));
}

void aml_package(struct aml *a)
{
    static const uint8_t op[] = {OP_PACKAGE};
    note_item(a);
    open_frame(a, F_PACKAGE, op, sizeof(op));
    emit_byte(a, 0); /* NumElements, set by aml_end() */
}

void aml_buffer(struct aml *a)
{
    static const uint8_t op[] = {OP_BUFFER};
    note_item(a);
    open_frame(a, F_BUFFER, op, sizeof(op));
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
    if (n && !p) {
        a->err = true;
        return;
    }
    emit(a, p, n);
}

void aml_restemplate(struct aml *a)
{
    static const uint8_t op[] = {OP_BUFFER};
    note_item(a);
    open_frame(a, F_RESTEMPLATE, op, sizeof(op));
}

/* Resource descriptors are only meaningful inside a ResourceTemplate. */
bool aml_in_restemplate(struct aml *a)
{
    if (a->err)
        return false;
    if (a->depth == 0 || a->frames[a->depth - 1].kind != F_RESTEMPLATE) {
        a->err = true;
        return false;
    }
    return true;
}
