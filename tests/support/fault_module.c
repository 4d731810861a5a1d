/* A PKCS#11 module for tests that forwards every call to a real module (the path in
 * $DKIM_FAULT_MODULE_TARGET) and adds two things the real module cannot give a test:
 *  - a count of C_Login calls, to prove that a wrong PIN is never retried;
 *  - one-shot failures: the next C_SignInit returns a chosen CK_RV (CKR_DEVICE_REMOVED),
 *    to drive the session pool's recovery path.
 * Tests reach the controls through dlsym on the same handle. */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdatomic.h>
#include <stdlib.h>

static CK_FUNCTION_LIST forwarded;
static CK_FUNCTION_LIST_PTR target;
static atomic_ulong login_calls;
static atomic_ulong sign_init_fail_rv;
static atomic_int sign_init_fail_pending;

unsigned long dkim_fault_login_calls(void) { return atomic_load(&login_calls); }

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

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (target == NULL) {
        const char* path = getenv("DKIM_FAULT_MODULE_TARGET");
        void* handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_C_GetFunctionList get = handle ? (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&target) != CKR_OK) {
            return CKR_GENERAL_ERROR;
        }
        forwarded = *target;
        forwarded.C_Login = counting_login;
        forwarded.C_SignInit = failing_sign_init;
    }
    *list = &forwarded;
    return CKR_OK;
}
