// Linked into the project's executables in sanitizer builds only (DKIM_SANITIZE): defaults
// that the sanitizer runtimes read at start-up, so ctest and a developer running a binary by
// hand get the same behaviour. Environment variables still override them.

extern "C" {

// Leak checking on; allocation stacks by the fast (frame-pointer) unwinder. Full unwinding on
// every malloc (fast_unwind_on_malloc=0, as before issue 19) made allocation-heavy tests eight
// times slower (LockoutPropertyTest: 43 s against 5.6 s); it was there only so that the
// suppression of SoftHSM2's own leak could match a frame inside libsofthsm2.so, and that leak
// is now left out where it happens (hsm/src/signing_pool.cpp, around C_SignInit). A leak report
// whose stack stops inside an uninstrumented library can be rerun with
// ASAN_OPTIONS=fast_unwind_on_malloc=0 for the whole stack.
const char* __asan_default_options() {
    return "detect_leaks=1";
}
// print_suppressions=0: the "Suppressions used" table would land in the output of CLI runs
// that tests compare byte for byte (a signed message on stdout).
const char* __lsan_default_options() {
    return "print_suppressions=0";
}
const char* __ubsan_default_options() {
    return "print_stacktrace=1:halt_on_error=1";
}
}
