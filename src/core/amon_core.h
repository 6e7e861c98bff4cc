/*
 * Copyright (C) AMonitor authors
 *
 * Protocol core: status codes, buffers, allocator hooks and limits shared
 * by the frame codec, the handshake helpers and the envelope codec.
 * Pure C99: no nginx headers, no logging, no errno as API.
 */

#ifndef AMON_CORE_H
#define AMON_CORE_H


#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


/*
 * Status codes.  AMON_OK and AMON_AGAIN are not errors; every error is
 * negative and grouped by kind so that callers can test the group.
 */
#define AMON_OK    0
#define AMON_AGAIN 1 /* more input or space needed */

/* protocol faults (-100 .. -199): peer broke RFC 6455 */
#define AMON_EPROTO      (-100) /* generic framing fault */
#define AMON_ERSV        (-101) /* RSV bit set, no extension */
#define AMON_EOPCODE     (-102) /* reserved opcode */
#define AMON_ECTRL_LEN   (-103) /* control frame payload > 125 */
#define AMON_ECTRL_FRAG  (-104) /* fragmented control frame */
#define AMON_EMASK       (-105) /* masking bit wrong for side */
#define AMON_ECONT       (-106) /* continuation without start */
#define AMON_EFRAG       (-107) /* new data frame inside message */
#define AMON_ELEN        (-108) /* non-minimal or 64-bit MSB len */
#define AMON_ECLOSE_LEN  (-109) /* close payload of 1 byte */
#define AMON_ECLOSE_CODE (-110) /* invalid close status code */
#define AMON_EUTF8       (-111) /* invalid UTF-8 (text, reason) */
#define AMON_EHANDSHAKE  (-120) /* bad HTTP upgrade exchange */

/* argument errors (-200 .. -299): caller's fault */
#define AMON_EINVAL (-200)
#define AMON_ENOSPC (-201) /* output buffer too small */

/* limit errors (-300 .. -399) */
#define AMON_ETOOBIG     (-300) /* message larger than maximum */
#define AMON_EDEPTH      (-301) /* JSON nesting too deep */
#define AMON_EFIELD_LONG (-302) /* field longer than its limit */

/* memory (-400 .. -499) */
#define AMON_ENOMEM (-400)

/* envelope faults (-500 .. -599): well framed, invalid content */
#define AMON_EJSON       (-500) /* not JSON */
#define AMON_ENOTOBJ     (-501) /* JSON but not an object */
#define AMON_ENO_MSG_ID  (-502) /* msg_id missing or empty */
#define AMON_ENO_TYPE    (-503) /* type missing or empty */
#define AMON_EFIELD_TYPE (-504) /* a known field has wrong type */
#define AMON_EPROTOBUF   (-505) /* binary frame not an Envelope */
#define AMON_ENO_PAYLOAD (-506) /* payload required, missing */
#define AMON_EFIELD_NUL  (-507) /* a string field holds \u0000 */
#define AMON_EFIELD_DUP  (-508) /* a known field given twice */

#define amon_is_proto_error(rc)    ((rc) <= -100 && (rc) > -200)
#define amon_is_envelope_error(rc) ((rc) <= -500 && (rc) > -600)


/* Limits.  Exceeding a limit is an error, never a truncation. */
#define AMON_MAX_CONTROL_PAYLOAD 125
#define AMON_MAX_FRAME_HEADER    14
#define AMON_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define AMON_MAX_JSON_DEPTH      32
#define AMON_MAX_ID_LEN          256 /* msg_id, target_id, ... */
#define AMON_MAX_URL_LEN         2048

/* Fixed lengths */
#define AMON_UUID_LEN 36 /* a UUID as text: 8-4-4-4-12 hex digits */


typedef struct {
    const unsigned char *data;
    size_t               len;
} amon_str_t;

#define amon_string(s) \
    { \
        (const unsigned char *) (s), sizeof(s) - 1 \
    }
#define amon_null_string \
    { \
        NULL, 0 \
    }


/*
 * A growable byte buffer.  "data" is owned by the allocator that made it;
 * "len" bytes are used out of "cap".
 */
typedef struct {
    unsigned char *data;
    size_t         len;
    size_t         cap;
} amon_buf_t;


/*
 * Allocator hooks.  A NULL amon_allocator_t * means libc malloc/free.
 * "realloc" may be NULL: the core then allocates and copies.
 */
typedef struct {
    void *(*alloc)(void *data, size_t size);
    void (*free)(void *data, void *p);
    void *data;
} amon_allocator_t;


void *amon_alloc(const amon_allocator_t *a, size_t size);
void  amon_free(const amon_allocator_t *a, void *p);

/*
 * Make room for "need" more bytes in "b", doubling the capacity but never
 * beyond "max" total bytes.  Returns AMON_OK, AMON_ETOOBIG or AMON_ENOMEM.
 */
int amon_buf_reserve(
    amon_buf_t *b, size_t need, size_t max, const amon_allocator_t *a);
void amon_buf_free(amon_buf_t *b, const amon_allocator_t *a);

/* A static, human-readable description of a status code; never NULL. */
const char *amon_strerror(int rc);

/*
 * The RFC 6455 close code for a status: 1002 for framing faults, 1007 for
 * invalid UTF-8, 1009 for a message too big, 1011 otherwise.
 */
uint16_t amon_close_code(int rc);

/*
 * UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF).  The incremental form keeps "*state" between calls:
 * start with 0; after the last chunk the text is valid iff *state == 0.
 * Returns AMON_OK or AMON_EUTF8 as soon as a byte cannot continue a valid
 * sequence.
 */
int amon_utf8_validate(const unsigned char *p, size_t len);

/* amon_escape_text() flags: what is kept as it is */
#define AMON_ESC_KEEP_TAB     1 /* a tab */
#define AMON_ESC_KEEP_LAST_NL 2 /* a newline that ends the text */

/* at most this many output bytes per input byte */
#define AMON_ESC_MAX_PER_BYTE 6

size_t amon_escape_text(
    const unsigned char *p, size_t len, char *out, size_t size, unsigned flags);
int amon_utf8_feed(uint32_t *state, const unsigned char *p, size_t len);

/* Case-insensitive equality of a counted string with a C string. */
int amon_str_eq_ci(amon_str_t s, const char *cstr);

/* "p" without leading and trailing spaces and tabs (HTTP's OWS) */
amon_str_t amon_str_trim(const unsigned char *p, size_t len);

/*
 * A 32-bit hash of "len" bytes for tables in one process or one host's
 * shared memory (names, msg_ids): eight bytes per step, every input bit
 * mixed into every output bit.  Not for anything an attacker must not
 * steer into collisions, nor stable across byte orders.
 */
uint32_t amon_hash(const unsigned char *p, size_t len);

/*
 * A keyed 32-bit hash for tables whose keys others choose (msg_ids,
 * target ids): SipHash-1-3 under a random 128-bit key, so that no one
 * who does not know the key can make keys collide in a table (amon_hash's
 * steps can be undone: collisions for it are made at will).  As fast as
 * amon_hash for ids of up to 64 bytes.  amon_siphash() is the full
 * 64-bit SipHash-c-d, for tests against the published vectors.
 */
typedef struct {
    uint64_t k0;
    uint64_t k1;
} amon_hash_key_t;

/* a random key (getrandom()): 0, or -1 with errno set */
int      amon_hash_key_random(amon_hash_key_t *key);
uint32_t amon_hash_keyed(
    const amon_hash_key_t *key, const unsigned char *p, size_t len);
uint64_t amon_siphash(const amon_hash_key_t *key, const unsigned char *p,
    size_t len, unsigned c, unsigned d);

/*
 * Does the pattern "p" match all of "s"?  "*" matches any run of bytes
 * (none too), every other byte itself.  Linear in plen + slen whatever
 * the pattern.
 */
int amon_glob_match(
    const unsigned char *p, size_t plen, const unsigned char *s, size_t slen);

/*
 * A pattern read once for many matches: where its stars are.  It points
 * into the pattern, which must outlive it.
 */
typedef struct {
    const unsigned char *p;
    uint32_t             len;
    uint32_t             head; /* bytes before the first "*" (len: none) */
    uint32_t             tail; /* bytes after the last "*" */
    uint32_t             middle; /* bytes between the first and last "*" */
} amon_glob_t;

void amon_glob_compile(amon_glob_t *g, const unsigned char *p, size_t len);

/* amon_glob_match() of a compiled pattern: the same answer */
int amon_glob_match_compiled(
    const amon_glob_t *g, const unsigned char *s, size_t slen);


#ifdef __cplusplus
}
#endif

#endif /* AMON_CORE_H */
