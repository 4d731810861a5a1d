#include "inbound_peers.h"

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <opendkim/dkim.h>
#include <opendmarc/dmarc.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>
#include <stdlib.h>
#include <string.h>

struct peer {
    SPF_server_t* spf;
    DKIM_LIB* dkim;
    OPENDMARC_LIB_T dmarc;
    const char* dmarc_record;
    int spf_passed;
    int dkim_passed;
};

/* OpenDKIM asks for keys through this callback; the benchmark has one key. */
static const char* key_record;

static DKIM_CBSTAT lookup_key(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
    (void)dkim;
    (void)sig;
    size_t n = strlen(key_record);
    if (n + 1 > buflen) {
        return DKIM_CBSTAT_ERROR;
    }
    memcpy(buf, key_record, n + 1);
    return DKIM_CBSTAT_CONTINUE;
}

void* inbound_peer_new(const char* const* zone, const char* key, const char* psl_file) {
    struct peer* p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    key_record = key;
    SPF_dns_server_t* dns = SPF_dns_zone_new(NULL, "bench", 0);
    for (size_t i = 0; dns != NULL && zone[i] != NULL; i += 3) {
        if (strncmp(zone[i], "_dmarc.", 7) == 0) {
            p->dmarc_record = zone[i + 2];
        }
        ns_type type = strcmp(zone[i + 1], "A") == 0 ? ns_t_a : ns_t_txt;
        if (SPF_dns_zone_add_str(dns, zone[i], type, NETDB_SUCCESS, zone[i + 2]) != SPF_E_SUCCESS) {
            inbound_peer_free(p);
            return NULL;
        }
    }
    p->spf = dns != NULL ? SPF_server_new_dns(dns, 0) : NULL;
    p->dkim = dkim_init(NULL, NULL);
    if (p->spf == NULL || p->dkim == NULL ||
        dkim_set_key_lookup(p->dkim, lookup_key) != DKIM_STAT_OK) {
        inbound_peer_free(p);
        return NULL;
    }
    p->dmarc.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
    strncpy((char*)p->dmarc.tld_source_file, psl_file, sizeof p->dmarc.tld_source_file - 1);
    if (opendmarc_policy_library_init(&p->dmarc) != DMARC_PARSE_OKAY) {
        inbound_peer_free(p);
        return NULL;
    }
    return p;
}

void inbound_peer_free(void* peer) {
    struct peer* p = peer;
    if (p->spf != NULL) {
        SPF_server_free(p->spf);
    }
    if (p->dkim != NULL) {
        dkim_close(p->dkim);
    }
    opendmarc_policy_library_shutdown(&p->dmarc);
    free(p);
}

static SPF_result_t spf_check(struct peer* p, const char* ip, const char* helo, const char* sender,
                              int helo_only) {
    SPF_request_t* req = SPF_request_new(p->spf);
    SPF_response_t* res = NULL;
    SPF_result_t result = SPF_RESULT_INVALID;
    if (SPF_request_set_ipv4_str(req, ip) == SPF_E_SUCCESS &&
        SPF_request_set_helo_dom(req, helo) == SPF_E_SUCCESS &&
        (helo_only || SPF_request_set_env_from(req, sender) == 0)) {
        /* Without an envelope sender libspf2 checks the HELO identity. */
        SPF_request_query_mailfrom(req, &res);
        if (res != NULL) {
            result = SPF_response_result(res);
            SPF_response_free(res);
        }
    }
    SPF_request_free(req);
    return result;
}

int inbound_peer_check(void* peer, const char* ip, const char* helo, const char* mail_from,
                       const char* from_domain, const char* const* fields,
                       const size_t* field_sizes, size_t nfields, const char* body,
                       size_t body_size) {
    struct peer* p = peer;
    const SPF_result_t spf = spf_check(p, ip, helo, mail_from, 0);
    (void)spf_check(p, ip, helo, NULL, 1);
    p->spf_passed = spf == SPF_RESULT_PASS;

    DKIM_STAT status = DKIM_STAT_OK;
    DKIM* dkim = dkim_verify(p->dkim, (const unsigned char*)"bench", NULL, &status);
    if (dkim == NULL) {
        return -1;
    }
    int ok = 1;
    for (size_t i = 0; ok && i < nfields; ++i) {
        ok = dkim_header(dkim, (u_char*)fields[i], field_sizes[i]) == DKIM_STAT_OK;
    }
    ok = ok && dkim_eoh(dkim) == DKIM_STAT_OK;
    ok = ok && dkim_body(dkim, (u_char*)body, body_size) == DKIM_STAT_OK;
    p->dkim_passed = ok && dkim_eom(dkim, NULL) == DKIM_STAT_OK;
    const char* signer = "";
    DKIM_SIGINFO* sig = dkim_getsignature(dkim);
    if (sig != NULL) {
        signer = (const char*)dkim_sig_getdomain(sig);
    }

    const char* at = strrchr(mail_from, '@');
    DMARC_POLICY_T* pctx = opendmarc_policy_connect_init((u_char*)ip, DMARC_POLICY_IP_TYPE_IPV4);
    int policy = -1;
    if (pctx != NULL &&
        opendmarc_policy_store_from_domain(pctx, (u_char*)from_domain) == DMARC_PARSE_OKAY &&
        opendmarc_policy_store_spf(
            pctx, (u_char*)(at != NULL ? at + 1 : mail_from),
            p->spf_passed ? DMARC_POLICY_SPF_OUTCOME_PASS : DMARC_POLICY_SPF_OUTCOME_FAIL,
            DMARC_POLICY_SPF_ORIGIN_MAILFROM, NULL) == DMARC_PARSE_OKAY &&
        opendmarc_policy_store_dkim(
            pctx, (u_char*)signer, (u_char*)"peer",
            p->dkim_passed ? DMARC_POLICY_DKIM_OUTCOME_PASS : DMARC_POLICY_DKIM_OUTCOME_FAIL,
            NULL) == DMARC_PARSE_OKAY) {
        /* The record as the zone holds it (OpenDMARC's own lookup would ask the system's
           resolver, outside this benchmark's loopback-only rule). */
        policy = opendmarc_policy_store_dmarc(pctx, (u_char*)p->dmarc_record, (u_char*)from_domain,
                                              NULL) == DMARC_PARSE_OKAY
                     ? opendmarc_get_policy_to_enforce(pctx)
                     : -1;
    }
    dkim_free(dkim);
    if (pctx != NULL) {
        opendmarc_policy_connect_shutdown(pctx);
    }
    return policy;
}

int inbound_peer_spf_passed(void* peer) {
    return ((struct peer*)peer)->spf_passed;
}

int inbound_peer_dkim_passed(void* peer) {
    return ((struct peer*)peer)->dkim_passed;
}
