#include "es_uuid.h"
#include <ctype.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <uuid/uuid.h>

void es_uuid_random(char out[ES_UUID_LEN])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* SHA-1, fetched from OpenSSL's provider once: an implicit fetch at every digest (EVP_sha1 with
 * EVP_DigestInit_ex) cost more than the digest of a short name */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void sha1_fetch(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

void es_uuid_derive(const char *ns, const char *name, char out[ES_UUID_LEN])
{
    /* RFC 4122 version 5 over "ns\0name": the NUL keeps ("ab","c") apart from ("a","bc") */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    pthread_once(&sha1_once, sha1_fetch);
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex2(sha, sha1_md ? sha1_md : EVP_sha1(), NULL);
    EVP_DigestUpdate(sha, ns, strlen(ns) + 1);
    EVP_DigestUpdate(sha, name, strlen(name));
    EVP_DigestFinal_ex(sha, md, &mdlen);
    EVP_MD_CTX_free(sha);
    uuid_t u;
    memcpy(u, md, sizeof u);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    uuid_unparse_lower(u, out);
}

int es_uuid_valid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}
