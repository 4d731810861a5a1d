/* A PKCS#11 module for tests that forwards every call to a real module (the path in
 * $DKIM_FAULT_MODULE_TARGET) and adds two things the real module cannot give a test:
 *  - a count of C_Login calls, to prove that a wrong PIN is never retried;
 *  - one-shot failures: the next C_SignInit returns a chosen CK_RV (CKR_DEVICE_REMOVED),
 *    to drive the session pool's recovery path; the n-th next C_CreateObject and the next
 *    C_DestroyObject fail without creating or destroying anything, to leave a key half
 *    imported and its cleanup failing;
 *  - CKA_EC_POINT in the raw 32-byte form (PKCS#11 v3.0's reading) instead of SoftHSM2's
 *    DER-wrapped OCTET STRING, for single-attribute C_GetAttributeValue calls;
 *  - with $DKIM_FAULT_CORRUPT_SIGNATURES set, every signature C_Sign returns has one bit
 *    flipped: a faulty token, for the relay's check of each signature before it leaves;
 *  - with $DKIM_FAULT_SIGN_LATENCY_US set (microseconds), every C_Sign takes that long more,
 *    one at a time (a token with one signing engine: 2000 us is 500 signatures a second
 *    whatever the number of sessions), for the cluster's scale-out benchmark, where the token
 *    and not the CPU is the limit;
 *  - counts of C_Initialize and C_Finalize. The shim behaves as a module of its own: it
 *    answers C_Initialize with CKR_OK even when the real module was already initialised by
 *    the test binary, and only forwards C_Finalize when its own C_Initialize initialised the
 *    real module, so tests can see when hsm/ finalises without pulling SoftHSM2 from under
 *    the rest of the test binary.
 * Tests reach the controls through dlsym on the same handle. */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static CK_FUNCTION_LIST forwarded;
static CK_FUNCTION_LIST_PTR target;
static atomic_ulong login_calls;
static atomic_ulong sign_init_fail_rv;
static atomic_int sign_init_fail_pending;
static atomic_ulong create_object_fail_rv;
static atomic_ulong create_object_fail_countdown; /* 1: the next call fails; 0: none */
static atomic_ulong destroy_object_fail_rv;
static atomic_int destroy_object_fail_pending;
static atomic_int raw_ec_point;
static atomic_ulong initialize_calls;
static atomic_ulong finalize_calls;
static atomic_int owns_target;

void dkim_fault_raw_ec_point(int on) {
    atomic_store(&raw_ec_point, on);
}

static CK_RV unwrapping_get_attribute_value(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                            CK_ATTRIBUTE_PTR template_, CK_ULONG count) {
    if (!atomic_load(&raw_ec_point) || count != 1 || template_[0].type != CKA_EC_POINT) {
        return target->C_GetAttributeValue(session, object, template_, count);
    }
    unsigned char wrapped[64];
    CK_ATTRIBUTE query = {CKA_EC_POINT, wrapped, sizeof wrapped};
    CK_RV rv = target->C_GetAttributeValue(session, object, &query, 1);
    if (rv != CKR_OK || query.ulValueLen != 34 || wrapped[0] != 0x04 || wrapped[1] != 0x20) {
        return target->C_GetAttributeValue(session, object, template_, count);
    }
    if (template_[0].pValue == NULL) {
        template_[0].ulValueLen = 32;
        return CKR_OK;
    }
    if (template_[0].ulValueLen < 32) {
        template_[0].ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(template_[0].pValue, wrapped + 2, 32);
    template_[0].ulValueLen = 32;
    return CKR_OK;
}

unsigned long dkim_fault_initialize_calls(void) {
    return atomic_load(&initialize_calls);
}
unsigned long dkim_fault_finalize_calls(void) {
    return atomic_load(&finalize_calls);
}

static CK_RV counting_initialize(void* args) {
    atomic_fetch_add(&initialize_calls, 1);
    CK_RV rv = target->C_Initialize(args);
    if (rv == CKR_OK) {
        atomic_store(&owns_target, 1);
    }
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

static CK_RV counting_finalize(void* reserved) {
    atomic_fetch_add(&finalize_calls, 1);
    if (atomic_exchange(&owns_target, 0)) {
        return target->C_Finalize(reserved);
    }
    return CKR_OK;
}

unsigned long dkim_fault_login_calls(void) {
    return atomic_load(&login_calls);
}

void dkim_fault_fail_next_sign_init(unsigned long rv) {
    atomic_store(&sign_init_fail_rv, rv);
    atomic_store(&sign_init_fail_pending, 1);
}

static CK_RV counting_login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                            CK_ULONG pin_len) {
    atomic_fetch_add(&login_calls, 1);
    return target->C_Login(session, user, pin, pin_len);
}

static CK_RV failing_sign_init(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                               CK_OBJECT_HANDLE key) {
    if (atomic_exchange(&sign_init_fail_pending, 0)) {
        return atomic_load(&sign_init_fail_rv);
    }
    return target->C_SignInit(session, mechanism, key);
}

void dkim_fault_fail_create_object(unsigned long nth, unsigned long rv) {
    atomic_store(&create_object_fail_rv, rv);
    atomic_store(&create_object_fail_countdown, nth);
}

void dkim_fault_fail_next_destroy_object(unsigned long rv) {
    atomic_store(&destroy_object_fail_rv, rv);
    atomic_store(&destroy_object_fail_pending, 1);
}

static CK_RV failing_create_object(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR template_,
                                   CK_ULONG count, CK_OBJECT_HANDLE_PTR object) {
    unsigned long countdown = atomic_load(&create_object_fail_countdown);
    while (countdown > 0 && !atomic_compare_exchange_weak(&create_object_fail_countdown, &countdown,
                                                          countdown - 1)) {
    }
    if (countdown == 1) {
        return atomic_load(&create_object_fail_rv);
    }
    return target->C_CreateObject(session, template_, count, object);
}

static CK_RV failing_destroy_object(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object) {
    if (atomic_exchange(&destroy_object_fail_pending, 0)) {
        return atomic_load(&destroy_object_fail_rv);
    }
    return target->C_DestroyObject(session, object);
}

static CK_RV corrupting_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length,
                             CK_BYTE_PTR signature, CK_ULONG_PTR signature_length) {
    CK_RV rv = target->C_Sign(session, data, length, signature, signature_length);
    if (rv == CKR_OK && signature != NULL && *signature_length > 0) {
        signature[*signature_length / 2] ^= 0x10;
    }
    return rv;
}

static struct timespec sign_latency;
static pthread_mutex_t sign_engine = PTHREAD_MUTEX_INITIALIZER;

static CK_RV slow_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length,
                       CK_BYTE_PTR signature, CK_ULONG_PTR signature_length) {
    /* Only the call that makes the signature waits (not the length query), one at a time. */
    if (signature == NULL) {
        return target->C_Sign(session, data, length, signature, signature_length);
    }
    pthread_mutex_lock(&sign_engine);
    struct timespec left = sign_latency;
    while (nanosleep(&left, &left) != 0) {
    }
    CK_RV rv = target->C_Sign(session, data, length, signature, signature_length);
    pthread_mutex_unlock(&sign_engine);
    return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (target == NULL) {
        const char* path = getenv("DKIM_FAULT_MODULE_TARGET");
        void* handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_C_GetFunctionList get =
            handle ? (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&target) != CKR_OK) {
            return CKR_GENERAL_ERROR;
        }
        forwarded = *target;
        forwarded.C_Initialize = counting_initialize;
        forwarded.C_Finalize = counting_finalize;
        forwarded.C_Login = counting_login;
        forwarded.C_GetAttributeValue = unwrapping_get_attribute_value;
        forwarded.C_SignInit = failing_sign_init;
        forwarded.C_CreateObject = failing_create_object;
        forwarded.C_DestroyObject = failing_destroy_object;
        if (getenv("DKIM_FAULT_CORRUPT_SIGNATURES") != NULL) {
            forwarded.C_Sign = corrupting_sign;
        } else if (getenv("DKIM_FAULT_SIGN_LATENCY_US") != NULL) {
            const long us = strtol(getenv("DKIM_FAULT_SIGN_LATENCY_US"), NULL, 10);
            sign_latency.tv_sec = us / 1000000;
            sign_latency.tv_nsec = (us % 1000000) * 1000;
            forwarded.C_Sign = slow_sign;
        }
    }
    *list = &forwarded;
    return CKR_OK;
}
