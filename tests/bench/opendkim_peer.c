#include "opendkim_peer.h"

#include <opendkim/dkim.h>

void* opendkim_peer_init(void) {
    return dkim_init(NULL, NULL);
}

void opendkim_peer_close(void* lib) {
    dkim_close((DKIM_LIB*)lib);
}

size_t opendkim_peer_sign(void* lib, const char* pem, const char* selector, const char* domain,
                          const char* const* fields, const size_t* field_sizes, size_t nfields,
                          const char* body, size_t body_size) {
    DKIM_STAT status = DKIM_STAT_OK;
    DKIM* dkim =
        dkim_sign((DKIM_LIB*)lib, (const unsigned char*)"bench", NULL, (dkim_sigkey_t)pem,
                  (const unsigned char*)selector, (const unsigned char*)domain, DKIM_CANON_RELAXED,
                  DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &status);
    if (dkim == NULL) {
        return 0;
    }
    size_t len = 0;
    for (size_t i = 0; i < nfields; ++i) {
        if (dkim_header(dkim, (u_char*)fields[i], field_sizes[i]) != DKIM_STAT_OK) {
            goto done;
        }
    }
    if (dkim_eoh(dkim) != DKIM_STAT_OK) {
        goto done;
    }
    for (size_t pos = 0; pos < body_size; pos += 65536) {
        size_t n = body_size - pos < 65536 ? body_size - pos : 65536;
        if (dkim_body(dkim, (u_char*)body + pos, n) != DKIM_STAT_OK) {
            goto done;
        }
    }
    u_char* sig = NULL;
    if (dkim_eom(dkim, NULL) != DKIM_STAT_OK ||
        dkim_getsighdr_d(dkim, 16, &sig, &len) != DKIM_STAT_OK) {
        len = 0;
    }
done:
    dkim_free(dkim);
    return len;
}
