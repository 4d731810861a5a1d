// Linked into the project's executables in sanitizer builds only (DKIM_SANITIZE): defaults
// that the sanitizer runtimes read at start-up, so ctest and a developer running a binary by
// hand get the same behaviour. Environment variables still override them.

extern "C" {

// Full unwinding through uninstrumented libraries (libcrypto, libsofthsm2), so that leak
// reports show who called in and the suppression below can match.
const char* __asan_default_options() {
    return "fast_unwind_on_malloc=0:detect_leaks=1";
}
// print_suppressions=0: the "Suppressions used" table would land in the output of CLI runs
// that tests compare byte for byte (a signed message on stdout).
const char* __lsan_default_options() {
    return "fast_unwind_on_malloc=0:print_suppressions=0";
}
const char* __ubsan_default_options() {
    return "print_stacktrace=1:halt_on_error=1";
}

// Third-party code only, never ours.
// SoftHSM2 2.6.1 leaks an ASN1_STRING (24 + 13 bytes) in every C_SignInit with an Ed25519
// key, inside its own OpenSSL key decoding (ASN1_item_d2i_ex called from libsofthsm2.so),
// as dkim_hsm_test shows under ASan. A production HSM runs outside our process.
const char* __lsan_default_suppressions() {
    return "leak:libsofthsm2.so\n";
}
}
