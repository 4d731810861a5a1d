/* The inbound checks done by the peers users would otherwise deploy, for bench_inbound:
   libspf2 (SPF, its zone DNS layer holding the records in memory), OpenDKIM (verification,
   keys from memory through its key-lookup callback) and OpenDMARC (policy from the record).
   Behind a C interface: their headers use C-only constructs. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* `zone`: NULL-terminated triples of name, type ("TXT", "A") and data; `key_record` is the
   DKIM key every signature is verified with. NULL on failure. */
void* inbound_peer_new(const char* const* zone, const char* key_record, const char* psl_file);
void inbound_peer_free(void* peer);
/* SPF for MAIL FROM and HELO, DKIM over the message (header fields without CRLF, then the
   body), DMARC for `from_domain`. Returns OpenDMARC's policy code (DMARC_POLICY_PASS, ...),
   or -1 when a library failed. */
int inbound_peer_check(void* peer, const char* ip, const char* helo, const char* mail_from,
                       const char* from_domain, const char* const* fields,
                       const size_t* field_sizes, size_t nfields, const char* body,
                       size_t body_size);
/* The last check's SPF and DKIM outcomes, for the benchmark's sanity check. */
int inbound_peer_spf_passed(void* peer);
int inbound_peer_dkim_passed(void* peer);

#ifdef __cplusplus
}
#endif
