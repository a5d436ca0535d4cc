/*
 * sluice's own TLS record layer after the handshake (see rl.h).
 *
 * RFC 8446 5.2 (TLSInnerPlaintext, AEAD with the record header as
 * additional data), 5.3 (per-record nonce: the IV XOR the sequence
 * number), 7.1-7.3 (HKDF-Expand-Label, traffic keys, KeyUpdate);
 * RFC 5246 6.2.3.3 and RFC 5288 3 (TLS 1.2 AES-GCM: 4-byte implicit salt,
 * 8-byte explicit nonce, additional data seq_num + type + version +
 * length), RFC 7905 2 (TLS 1.2 ChaCha20-Poly1305: the TLS 1.3 nonce, the
 * TLS 1.2 additional data), RFC 5246 6.3 (the key block).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "rl.h"

#define REC_MAX_PLAIN  16384u               /* RFC 8446 5.1, RFC 5246 6.2.1 */
#define REC_MAX_CIPHER (REC_MAX_PLAIN + 2048u) /* RFC 5246 6.2.3 */
#define TAG 16

enum rl_aead { RL_AES128GCM, RL_AES256GCM, RL_CHACHA, RL_AEAD_COUNT };

static const char *const aead_names[RL_AEAD_COUNT] = {
	"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305",
};
static EVP_CIPHER *aead_ciphers[RL_AEAD_COUNT];
static EVP_KDF *kdf_hkdf, *kdf_tls1_prf;
static pthread_once_t aead_once = PTHREAD_ONCE_INIT;

/* Fetched once for the process: an explicit fetch, so that no record and
 * no handshake pays for an implicit one (and its lock). */
static void aead_fetch(void)
{
	for (int i = 0; i < RL_AEAD_COUNT; i++)
		aead_ciphers[i] = EVP_CIPHER_fetch(NULL, aead_names[i], NULL);
	kdf_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kdf_tls1_prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
}

struct rl_dir {
	uint8_t key[32];
	uint8_t iv[12];          /* TLS 1.3 and ChaCha: 12; TLS 1.2 GCM: 4 (salt) */
	uint8_t secret[48];      /* TLS 1.3: the traffic secret, for KeyUpdate */
	uint64_t seq;
	EVP_CIPHER_CTX *ctx;     /* made on first use, dropped when idle */
};

struct tls_rl {
	uint16_t version;        /* TLS1_2_VERSION or TLS1_3_VERSION */
	uint8_t aead;            /* enum rl_aead */
	uint8_t key_len, iv_len, sec_len;
	bool ku_owed;            /* TLS 1.3: the peer asked for our KeyUpdate */
	struct rl_dir rd, wr;
};

/* ---- key material ------------------------------------------------------ */

/* The bytes of the hex word at s (up to a space or the end), at most max;
 * -1 if it is not hex. Once per secret per handshake: no sscanf. */
static int unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (s[0] && s[1] && s[0] != ' ' && s[0] != '\n' && n < max) {
		int hi = OPENSSL_hexchar2int((unsigned char)s[0]);
		int lo = OPENSSL_hexchar2int((unsigned char)s[1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return (int)n;
}

/* OpenSSL's key log: "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>". */
static void rl_keylog(const SSL *ssl, const char *line)
{
	struct tls_rl_keys *k = SSL_get_app_data(ssl);
	const char *sec;
	uint8_t *dst;
	int n, bit;

	if (!k)
		return;
	if (!strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24)) {
		dst = k->csec;
		bit = 1;
	} else if (!strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24)) {
		dst = k->ssec;
		bit = 2;
	} else {
		return;
	}
	sec = strchr(line + 24, ' ');
	if (!sec || ((n = unhex(sec + 1, dst, 48)) != 32 && n != 48))
		return;
	k->sec_len = (uint8_t)n;
	k->got |= (uint8_t)bit;
}

/* Records the server seals with its TLS 1.3 application keys before the
 * core takes over: the NewSessionTickets of the handshake's last step. */
static void rl_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	struct tls_rl_keys *k;

	(void)arg;
	if (!write_p || content_type != SSL3_RT_HANDSHAKE || version != TLS1_3_VERSION ||
	    len < 1 || ((const uint8_t *)buf)[0] != SSL3_MT_NEWSESSION_TICKET)
		return;
	if ((k = SSL_get_app_data(ssl)))
		k->tickets13++;
}

void tls_rl_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_keylog_callback(ctx, rl_keylog);
	SSL_CTX_set_msg_callback(ctx, rl_msg);
}

/* HKDF-Expand-Label(secret, label, "", len) (RFC 8446 7.1). */
static int hkdf_label(const char *md, const uint8_t *secret, size_t slen, const char *label,
		      uint8_t *out, size_t len)
{
	uint8_t info[2 + 1 + 255 + 1];
	size_t ll = 6 + strlen(label), il = 0;
	EVP_KDF_CTX *kc = kdf_hkdf ? EVP_KDF_CTX_new(kdf_hkdf) : NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = -1;
	OSSL_PARAM p[5];

	info[il++] = (uint8_t)(len >> 8);
	info[il++] = (uint8_t)len;
	info[il++] = (uint8_t)ll;
	memcpy(info + il, "tls13 ", 6);
	memcpy(info + il + 6, label, ll - 6);
	il += ll;
	info[il++] = 0; /* empty context */
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, il);
	p[4] = OSSL_PARAM_construct_end();
	if (kc && EVP_KDF_derive(kc, out, len, p) == 1)
		rc = 0;
	EVP_KDF_CTX_free(kc);
	return rc;
}

/* A TLS 1.3 direction's key and IV from its traffic secret (RFC 8446 7.3). */
static int dir_from_secret(struct tls_rl *rl, struct rl_dir *d, const char *md)
{
	EVP_CIPHER_CTX_free(d->ctx);
	d->ctx = NULL;
	d->seq = 0;
	return hkdf_label(md, d->secret, rl->sec_len, "key", d->key, rl->key_len) ||
	       hkdf_label(md, d->secret, rl->sec_len, "iv", d->iv, 12) ? -1 : 0;
}

static const char *rl_md(const struct tls_rl *rl)
{
	return rl->aead == RL_AES256GCM ? "SHA384" : "SHA256";
}

/* TLS 1.2's key block (RFC 5246 6.3): PRF(master, "key expansion",
 * server_random + client_random), no MAC keys for an AEAD suite. */
static int tls12_keys(struct tls_rl *rl, SSL *ssl)
{
	uint8_t master[48], cr[32], sr[32], block[2 * 32 + 2 * 12];
	size_t ml = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof(master));
	size_t need = 2u * rl->key_len + 2u * rl->iv_len;
	EVP_KDF_CTX *kc = kdf_tls1_prf ? EVP_KDF_CTX_new(kdf_tls1_prf) : NULL;
	OSSL_PARAM p[6];
	int rc = -1;

	if (ml != 48 || SSL_get_client_random(ssl, cr, 32) != 32 ||
	    SSL_get_server_random(ssl, sr, 32) != 32)
		goto out;
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)rl_md(rl), 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, ml);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, "key expansion", 13);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, sr, 32);
	p[4] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, cr, 32);
	p[5] = OSSL_PARAM_construct_end();
	if (!kc || EVP_KDF_derive(kc, block, need, p) != 1)
		goto out;
	/* client_write_key, server_write_key, client_write_IV, server_write_IV;
	 * the client writes what we read. */
	memcpy(rl->rd.key, block, rl->key_len);
	memcpy(rl->wr.key, block + rl->key_len, rl->key_len);
	memcpy(rl->rd.iv, block + 2 * rl->key_len, rl->iv_len);
	memcpy(rl->wr.iv, block + 2 * rl->key_len + rl->iv_len, rl->iv_len);
	rc = 0;
out:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(block, sizeof(block));
	EVP_KDF_CTX_free(kc);
	return rc;
}

/* A record layer for version and suite id, keys still to set; NULL if
 * tls/rl does not do that suite. */
static struct tls_rl *rl_alloc(int version, uint16_t id)
{
	struct tls_rl *rl;

	pthread_once(&aead_once, aead_fetch);
	if (version != TLS1_2_VERSION && version != TLS1_3_VERSION)
		return NULL;
	if (!(rl = calloc(1, sizeof(*rl))))
		return NULL;
	rl->version = (uint16_t)version;
	switch (id) {
	case 0x1301: case 0xc02b: case 0xc02f: case 0x009c: case 0x009e:
		rl->aead = RL_AES128GCM;
		rl->key_len = 16;
		break;
	case 0x1302: case 0xc02c: case 0xc030: case 0x009d: case 0x009f:
		rl->aead = RL_AES256GCM;
		rl->key_len = 32;
		break;
	case 0x1303: case 0xcca8: case 0xcca9: case 0xccaa:
		rl->aead = RL_CHACHA;
		rl->key_len = 32;
		break;
	default:
		goto no; /* CBC, CCM: OpenSSL keeps them */
	}
	if (!aead_ciphers[rl->aead])
		goto no;
	if (version == TLS1_2_VERSION)
		rl->iv_len = rl->aead == RL_CHACHA ? 12 : 4;
	return rl;
no:
	tls_rl_free(rl);
	return NULL;
}

struct tls_rl *tls_rl_from_keys(int version, uint16_t suite, const uint8_t *csec,
				const uint8_t *ssec, unsigned sec_len, const uint8_t *key_block,
				bool server)
{
	struct tls_rl *rl = rl_alloc(version, suite);
	struct rl_dir *c, *s;

	if (!rl)
		return NULL;
	c = server ? &rl->rd : &rl->wr; /* what the client writes */
	s = server ? &rl->wr : &rl->rd;
	if (version == TLS1_3_VERSION) {
		if (sec_len != 32 && sec_len != 48)
			goto no;
		rl->sec_len = (uint8_t)sec_len;
		memcpy(c->secret, csec, sec_len);
		memcpy(s->secret, ssec, sec_len);
		if (dir_from_secret(rl, c, rl_md(rl)) || dir_from_secret(rl, s, rl_md(rl)))
			goto no;
	} else {
		memcpy(c->key, key_block, rl->key_len);
		memcpy(s->key, key_block + rl->key_len, rl->key_len);
		memcpy(c->iv, key_block + 2 * rl->key_len, rl->iv_len);
		memcpy(s->iv, key_block + 2 * rl->key_len + rl->iv_len, rl->iv_len);
	}
	return rl;
no:
	tls_rl_free(rl);
	return NULL;
}

struct tls_rl *tls_rl_new(SSL *ssl, const struct tls_rl_keys *k)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int version = SSL_version(ssl);
	struct tls_rl *rl;

	if (!c || SSL_has_pending(ssl) ||
	    !(rl = rl_alloc(version, (uint16_t)SSL_CIPHER_get_protocol_id(c))))
		return NULL;
	if (version == TLS1_3_VERSION) {
		if (k->got != 3)
			goto no;
		rl->sec_len = k->sec_len;
		memcpy(rl->rd.secret, k->csec, k->sec_len);
		memcpy(rl->wr.secret, k->ssec, k->sec_len);
		if (dir_from_secret(rl, &rl->rd, rl_md(rl)) || dir_from_secret(rl, &rl->wr, rl_md(rl)))
			goto no;
		rl->rd.seq = 0;            /* the client's Finished had handshake keys */
		rl->wr.seq = k->tickets13; /* what OpenSSL sealed after its Finished */
	} else {
		if (tls12_keys(rl, ssl))
			goto no;
		rl->rd.seq = 1;            /* each side's Finished was record 0 */
		rl->wr.seq = 1;
	}
	return rl;
no:
	tls_rl_free(rl);
	return NULL;
}

void tls_rl_free(struct tls_rl *rl)
{
	if (!rl)
		return;
	EVP_CIPHER_CTX_free(rl->rd.ctx);
	EVP_CIPHER_CTX_free(rl->wr.ctx);
	OPENSSL_clear_free(rl, sizeof(*rl));
}

void tls_rl_idle(struct tls_rl *rl)
{
	EVP_CIPHER_CTX_free(rl->rd.ctx);
	EVP_CIPHER_CTX_free(rl->wr.ctx);
	rl->rd.ctx = rl->wr.ctx = NULL;
}

/* ---- sealing and opening ----------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* The 12-byte nonce of record seq (explicit: TLS 1.2 GCM's 8 bytes). */
static void nonce_of(const struct tls_rl *rl, const struct rl_dir *d, const uint8_t *explicit,
		     uint8_t n[12])
{
	if (rl->version == TLS1_2_VERSION && rl->aead != RL_CHACHA) {
		memcpy(n, d->iv, 4);
		memcpy(n + 4, explicit, 8);
		return;
	}
	memcpy(n, d->iv, 12);
	for (int i = 0; i < 8; i++)
		n[4 + i] ^= (uint8_t)(d->seq >> (56 - 8 * i));
}

/* Seal (enc) or open data[0, len) into out (data itself, or elsewhere)
 * with the AEAD; tag is written (enc) or checked. 0, or -1 (a bad tag when
 * opening). */
static int aead(const struct tls_rl *rl, struct rl_dir *d, int enc, const uint8_t nonce[12],
		const uint8_t *ad, size_t adlen, const uint8_t *data, size_t len, uint8_t *out,
		uint8_t *tag)
{
	int outl;

	if (!d->ctx) {
		if (!(d->ctx = EVP_CIPHER_CTX_new()) ||
		    !EVP_CipherInit_ex2(d->ctx, aead_ciphers[rl->aead], d->key, NULL, enc, NULL)) {
			EVP_CIPHER_CTX_free(d->ctx);
			d->ctx = NULL;
			return -1;
		}
	}
	if (!EVP_CipherInit_ex2(d->ctx, NULL, NULL, nonce, enc, NULL) ||
	    (!enc && !EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag)) ||
	    !EVP_CipherUpdate(d->ctx, NULL, &outl, ad, (int)adlen) ||
	    (len && !EVP_CipherUpdate(d->ctx, out, &outl, data, (int)len)) ||
	    !EVP_CipherFinal_ex(d->ctx, out + len, &outl) ||
	    (enc && !EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, TAG, tag)))
		return -1;
	return 0;
}

/* The bytes a record adds to len bytes of content. */
static size_t overhead(const struct tls_rl *rl)
{
	if (rl->version == TLS1_3_VERSION)
		return 5 + 1 + TAG;
	return 5 + TAG + (rl->aead == RL_CHACHA ? 0 : 8);
}

/* Seal one record of type with content p[0, len) at the tail of out (the
 * room was checked). */
static int seal(struct tls_rl *rl, uint8_t type, const uint8_t *p, size_t len, struct buf *out)
{
	uint8_t *r, nonce[12], ad[13];
	uint32_t room;
	size_t clen, hdr = 5;
	uint8_t *body;

	if (buf_space(out, &r, &room) < 0 || room < len + overhead(rl))
		return -1;
	if (rl->version == TLS1_3_VERSION) {
		clen = len + 1 + TAG;
		r[0] = 23; /* opaque_type: application_data */
		body = r + hdr;
		memmove(body, p, len);
		body[len] = type;
		len++;
	} else {
		size_t explicit = rl->aead == RL_CHACHA ? 0 : 8;

		clen = explicit + len + TAG;
		r[0] = type;
		body = r + hdr + explicit;
		if (explicit)
			put_be64(r + hdr, rl->wr.seq);
		memmove(body, p, len);
	}
	r[1] = 3;
	r[2] = 3;
	r[3] = (uint8_t)(clen >> 8);
	r[4] = (uint8_t)clen;
	if (rl->version == TLS1_3_VERSION) {
		memcpy(ad, r, 5);
		nonce_of(rl, &rl->wr, NULL, nonce);
		if (aead(rl, &rl->wr, 1, nonce, ad, 5, body, len, body, body + len))
			return -1;
	} else {
		put_be64(ad, rl->wr.seq);
		ad[8] = type;
		ad[9] = 3;
		ad[10] = 3;
		ad[11] = (uint8_t)(len >> 8);
		ad[12] = (uint8_t)len;
		nonce_of(rl, &rl->wr, r + hdr, nonce);
		if (aead(rl, &rl->wr, 1, nonce, ad, 13, body, len, body, body + len))
			return -1;
	}
	rl->wr.seq++;
	out->tail += (uint32_t)(hdr + clen);
	return 0;
}

static void compact(struct buf *b);

/* Contiguous room at the tail of out, moving its live bytes to the
 * start when that leaves less than need (buf_room() counts both ends). */
static uint32_t tail_room(struct buf *out, size_t need)
{
	uint8_t *p;
	uint32_t room;

	if (buf_space(out, &p, &room) < 0)
		return 0;
	if (room < need && out->head > 0) {
		compact(out);
		room = BUF_CAP - out->tail;
	}
	return room;
}

/* The KeyUpdate the peer asked for, then our new write keys (RFC 8446
 * 4.6.3). 0, TLS_RL_WANT (no room yet: still owed) or TLS_RL_ERROR. */
static int send_key_update(struct tls_rl *rl, struct buf *out)
{
	static const uint8_t ku[5] = { 24, 0, 0, 1, 0 }; /* update_not_requested */

	if (tail_room(out, sizeof(ku) + overhead(rl)) < sizeof(ku) + overhead(rl))
		return TLS_RL_WANT;
	if (seal(rl, 22, ku, sizeof(ku), out) ||
	    hkdf_label(rl_md(rl), rl->wr.secret, rl->sec_len, "traffic upd",
		       rl->wr.secret, rl->sec_len) ||
	    dir_from_secret(rl, &rl->wr, rl_md(rl)))
		return TLS_RL_ERROR;
	rl->ku_owed = false;
	return 0;
}

int tls_rl_write(struct tls_rl *rl, const uint8_t *p, size_t len, struct buf *out)
{
	size_t done = 0;
	int rc;

	if (rl->ku_owed && (rc = send_key_update(rl, out)) != 0)
		return rc;
	while (done < len) {
		uint32_t room = tail_room(out, (len - done < REC_MAX_PLAIN ? len - done : REC_MAX_PLAIN) +
						   overhead(rl));
		size_t n = len - done;

		if (n > REC_MAX_PLAIN)
			n = REC_MAX_PLAIN;
		if (room < overhead(rl) + 1)
			break;
		if (n > room - overhead(rl))
			n = room - overhead(rl);
		if (seal(rl, 23, p + done, n, out))
			return TLS_RL_ERROR;
		done += n;
	}
	return done ? (int)done : TLS_RL_WANT;
}

int tls_rl_seal(struct tls_rl *rl, uint8_t type, const uint8_t *p, size_t len, struct buf *out)
{
	if (len > REC_MAX_PLAIN || tail_room(out, len + overhead(rl)) < len + overhead(rl))
		return TLS_RL_WANT;
	return seal(rl, type, p, len, out) ? TLS_RL_ERROR : 0;
}

int tls_rl_close_notify(struct tls_rl *rl, struct buf *out)
{
	static const uint8_t alert[2] = { 1, 0 }; /* warning, close_notify */

	if (tail_room(out, sizeof(alert) + overhead(rl)) < sizeof(alert) + overhead(rl))
		return TLS_RL_WANT;
	return seal(rl, 21, alert, sizeof(alert), out) ? TLS_RL_ERROR : 0;
}

/* Move the live bytes of b to its start. */
static void compact(struct buf *b)
{
	uint32_t n = buf_len(b);

	memmove(b->data, b->data + b->head, n);
	b->head = 0;
	b->tail = n;
}

/* A TLS 1.3 handshake message after the handshake: only KeyUpdate
 * (RFC 8446 4.6.3). 0 or -1. */
static int post_handshake(struct tls_rl *rl, const uint8_t *m, size_t len, char *err,
			  size_t errlen)
{
	while (len) {
		size_t ml;

		if (len < 4 || (ml = ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3])) > len - 4) {
			snprintf(err, errlen, "a broken handshake message after the handshake");
			return -1;
		}
		if (m[0] != 24 || ml != 1 || m[4] > 1) {
			snprintf(err, errlen, "handshake message %u after the handshake", m[0]);
			return -1;
		}
		if (hkdf_label(rl_md(rl), rl->rd.secret, rl->sec_len, "traffic upd",
			       rl->rd.secret, rl->sec_len) ||
		    dir_from_secret(rl, &rl->rd, rl_md(rl))) {
			snprintf(err, errlen, "KeyUpdate: cannot derive the new keys");
			return -1;
		}
		if (m[4] == 1)
			rl->ku_owed = true;
		m += 4 + ml;
		len -= 4 + ml;
	}
	return 0;
}

int tls_rl_read(struct tls_rl *rl, struct buf *in, uint8_t *out, size_t cap,
		struct buf *wire, char *err, size_t errlen)
{
	size_t got = 0;

	for (;;) {
		uint32_t n = buf_len(in);
		uint8_t *r, nonce[12], ad[13], type;
		size_t len, clen, plen;
		uint8_t *body, *pt;

		if (n < 5)
			break;
		r = buf_head(in);
		len = (size_t)r[3] << 8 | r[4];
		if (len > REC_MAX_CIPHER || len < overhead(rl) - 5) {
			snprintf(err, errlen, "record of %zu bytes", len);
			return TLS_RL_ERROR;
		}
		if (n < 5 + len) {
			if (BUF_CAP - in->head < 5 + len)
				compact(in);
			break;
		}
		if (cap - got < len - (overhead(rl) - 5))
			break; /* its plaintext might not fit: later */
		/* Opened straight into out when its whole content (TLS 1.3: the
		 * content type and padding too) fits there; else in place, and
		 * the plaintext copied. */
		clen = len - (overhead(rl) - 5) + (rl->version == TLS1_3_VERSION);
		type = r[0];
		if (rl->version == TLS1_3_VERSION) {
			if (type != 23) {
				snprintf(err, errlen, "record type %u after the handshake", type);
				return TLS_RL_ERROR;
			}
			body = r + 5;
			pt = cap - got >= clen ? out + got : body;
			memcpy(ad, r, 5);
			nonce_of(rl, &rl->rd, NULL, nonce);
			if (aead(rl, &rl->rd, 0, nonce, ad, 5, body, clen, pt, body + clen)) {
				snprintf(err, errlen, "bad record MAC");
				return TLS_RL_ERROR;
			}
			for (plen = clen; plen && !pt[plen - 1]; plen--)
				;
			if (!plen) {
				snprintf(err, errlen, "a record with no content type");
				return TLS_RL_ERROR;
			}
			type = pt[--plen];
		} else {
			size_t explicit = rl->aead == RL_CHACHA ? 0 : 8;

			if (type != 23 && type != 21) {
				snprintf(err, errlen, type == 22 ? "renegotiation refused"
								 : "record type %u after the handshake",
					 type);
				return TLS_RL_ERROR;
			}
			if (len < explicit + TAG) {
				snprintf(err, errlen, "record of %zu bytes", len);
				return TLS_RL_ERROR;
			}
			body = r + 5 + explicit;
			plen = clen;
			pt = out + got; /* the plaintext is clen bytes: it fits */
			put_be64(ad, rl->rd.seq);
			ad[8] = type;
			ad[9] = r[1];
			ad[10] = r[2];
			ad[11] = (uint8_t)(clen >> 8);
			ad[12] = (uint8_t)clen;
			nonce_of(rl, &rl->rd, r + 5, nonce);
			if (aead(rl, &rl->rd, 0, nonce, ad, 13, body, clen, pt, body + clen)) {
				snprintf(err, errlen, "bad record MAC");
				return TLS_RL_ERROR;
			}
		}
		rl->rd.seq++;
		if (type == 23) {
			if (pt != out + got)
				memcpy(out + got, pt, plen);
			got += plen;
		} else if (type == 21) {
			if (plen == 2 && pt[1] == 0) {
				buf_consume(in, (uint32_t)(5 + len));
				return got ? (int)got : TLS_RL_EOF;
			}
			snprintf(err, errlen, "alert %u from the client", plen == 2 ? pt[1] : 255u);
			return TLS_RL_ERROR;
		} else if (type == 22 && rl->version == TLS1_3_VERSION) {
			if (post_handshake(rl, pt, plen, err, errlen))
				return TLS_RL_ERROR;
			if (rl->ku_owed && send_key_update(rl, wire) == TLS_RL_ERROR)
				return TLS_RL_ERROR;
		} else {
			snprintf(err, errlen, "content type %u after the handshake", type);
			return TLS_RL_ERROR;
		}
		buf_consume(in, (uint32_t)(5 + len));
	}
	return got ? (int)got : TLS_RL_WANT;
}
