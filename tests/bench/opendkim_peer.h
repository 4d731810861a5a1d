/* OpenDKIM's libopendkim as a benchmark peer, behind a C interface: its dkim.h declares a
   `struct dkim` that collides with our namespace, and uses C's _Bool. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void* opendkim_peer_init(void);
void opendkim_peer_close(void* lib);
/* Signs one message (relaxed/relaxed, rsa-sha256) with a PEM key; `fields` are the header
   fields without their CRLF. Returns the signature field's length, 0 on failure. */
size_t opendkim_peer_sign(void* lib, const char* pem, const char* selector, const char* domain,
                          const char* const* fields, const size_t* field_sizes, size_t nfields,
                          const char* body, size_t body_size);

#ifdef __cplusplus
}
#endif
