# Warnings, sanitizers and fuzzing flags shared by every target of the project.
# Targets opt in with dkim_target_defaults(<target>).

add_library(dkim_compile_options INTERFACE)
target_compile_options(dkim_compile_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual>
  -Wcast-align -Wimplicit-fallthrough -Wformat=2
  $<$<NOT:$<BOOL:$<TARGET_PROPERTY:DKIM_NO_NULL_DEREFERENCE_WARNING>>>:-Wnull-dereference>
  $<$<BOOL:${DKIM_WERROR}>:-Werror>)
target_compile_definitions(dkim_compile_options INTERFACE
  $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
target_compile_options(dkim_compile_options INTERFACE -fstack-protector-strong)

if(DKIM_SANITIZE)
  string(REPLACE ";" "," _dkim_sanitizers "${DKIM_SANITIZE}")
  message(STATUS "Sanitizers: ${_dkim_sanitizers}")
  target_compile_options(dkim_compile_options INTERFACE
    -fsanitize=${_dkim_sanitizers} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(dkim_compile_options INTERFACE -fsanitize=${_dkim_sanitizers})
  # -O1 and line tables only: what sanitizer reports need, at half the compile time of
  # -O2 -g on this project's template-heavy sources (Boost.Beast, CLI11, cereal); they come
  # after the build type's flags and win.
  target_compile_options(dkim_compile_options INTERFACE -O1 -g1)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12's -Wmaybe-uninitialized gives false positives inside libstdc++ (std::regex,
    # std::function) once -fsanitize instruments it; the normal build keeps the warning.
    target_compile_options(dkim_compile_options INTERFACE -Wno-maybe-uninitialized)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # Third-party code with known, harmless undefined behaviour that clang's UBSan reports
    # (sanitizer-ignorelist.txt says which and why); GCC's UBSan does not check it.
    # Named relative to the build folder, where Ninja runs the compiler, and by the option's
    # older spelling (-fsanitize-blacklist, the same option in clang 14): ccache 4.7 hashes the
    # list's contents for that spelling only, and an absolute path made every object of the
    # fuzz build differ between two clones of the repository (issue 19).
    file(RELATIVE_PATH _dkim_ignorelist ${CMAKE_BINARY_DIR}
      ${PROJECT_SOURCE_DIR}/cmake/sanitizer-ignorelist.txt)
    target_compile_options(dkim_compile_options INTERFACE
      -fsanitize-blacklist=${_dkim_ignorelist})
  endif()
endif()

if(DKIM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DKIM_FUZZ needs clang (configure with CXX=clang++-14 CC=clang-14)")
  endif()
  # Everything is built with coverage instrumentation; only the fuzz targets link libFuzzer's main.
  target_compile_options(dkim_compile_options INTERFACE -fsanitize=fuzzer-no-link)
endif()

function(dkim_target_defaults target)
  target_link_libraries(${target} PRIVATE dkim_compile_options)
endfunction()

# GCC 12 reports false "potential null pointer dereference"s inlined from Boost.Asio's scheduler
# and from CLI11's detail::split (std::vector<std::string>::emplace_back). Targets whose sources
# include those headers turn the warning off; it stays on for the rest. Per target, not per
# file: a file with options of its own is left out of the unity batches (CMAKE_UNITY_BUILD),
# and these are the heaviest files to parse.
function(dkim_no_null_dereference_warning target)
  set_property(TARGET ${target} PROPERTY DKIM_NO_NULL_DEREFERENCE_WARNING ON)
endfunction()

# Executables additionally get the sanitizer runtime defaults (see sanitizer_defaults.cpp).
function(dkim_executable_defaults target)
  if(DKIM_SANITIZE AND NOT DKIM_FUZZ)
    target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/sanitizer_defaults.cpp)
  endif()
endfunction()

# Clang 14 cannot emit -fsanitize=function's prologue for a split C++20 coroutine ("Cannot
# represent a difference across sections"): targets with coroutines keep every other UBSan check.
function(dkim_no_function_sanitizer target)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND "undefined" IN_LIST DKIM_SANITIZE)
    # As a source property: it must come after the sanitizer flags the target links in.
    get_target_property(_dkim_sources ${target} SOURCES)
    set_property(SOURCE ${_dkim_sources} APPEND PROPERTY COMPILE_OPTIONS -fno-sanitize=function)
  endif()
endfunction()
