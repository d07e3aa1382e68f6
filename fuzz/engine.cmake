# Fuzzing engine flags for the WHOLE build (core, plugins, harnesses), so the
# code under test is instrumented, not just the harness.  This must run
# before the core and plugins are added: include it from the top-level
# CMakeLists.txt right after the options, or pass
#   -DCMAKE_PROJECT_INCLUDE=<repo>/fuzz/engine.cmake
# (ci/fuzz.sh does the latter).  It does nothing unless NIMBUS_BUILD_FUZZ=ON
# and NIMBUS_FUZZ_ENGINE is libfuzzer or afl.
include_guard(GLOBAL)

set(NIMBUS_FUZZ_ENGINE "replay" CACHE STRING
    "Fuzz engine when NIMBUS_BUILD_FUZZ=ON: libfuzzer, afl or replay")
set_property(CACHE NIMBUS_FUZZ_ENGINE PROPERTY STRINGS libfuzzer afl replay)
option(NIMBUS_FUZZ_SANITIZE "ASan+UBSan in libfuzzer/afl builds" ON)
# Comparison tracing lets libFuzzer solve 4- and 8-byte magic values, but
# its callbacks cost about 3x in exec/s on register-level devices
# (fuzz/README.md, Figures).  OFF keeps only edge counters.
option(NIMBUS_FUZZ_TRACE_CMP "libFuzzer comparison tracing in core and plugins" ON)

if(NIMBUS_BUILD_FUZZ AND NOT NIMBUS_FUZZ_ENGINE STREQUAL "replay")
  if(NIMBUS_FUZZ_ENGINE STREQUAL "libfuzzer")
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
      message(FATAL_ERROR "NIMBUS_FUZZ_ENGINE=libfuzzer needs clang (CC=clang-14)")
    endif()
    # fuzzer-no-link: coverage + comparison tracing without libFuzzer's main;
    # only harness executables link -fsanitize=fuzzer (fuzz/CMakeLists.txt).
    if(NIMBUS_FUZZ_TRACE_CMP)
      add_compile_options(-fsanitize=fuzzer-no-link)
      set(NIMBUS_FUZZ_NO_COVERAGE -fno-sanitize=fuzzer-no-link)
    else()
      set(cov inline-8bit-counters,pc-table,indirect-calls)
      add_compile_options(-fsanitize-coverage=${cov})
      set(NIMBUS_FUZZ_NO_COVERAGE -fno-sanitize-coverage=${cov})
    endif()
  elseif(NIMBUS_FUZZ_ENGINE STREQUAL "afl")
    if(NOT CMAKE_C_COMPILER MATCHES "afl-")
      message(FATAL_ERROR "NIMBUS_FUZZ_ENGINE=afl needs CC=afl-clang-fast")
    endif()
    # afl-cc reads its options from the environment: pass them through a
    # launcher so a plain `ninja` in this tree builds the same way.
    set(CMAKE_C_COMPILER_LAUNCHER env
        AFL_LLVM_DENYLIST=${CMAKE_CURRENT_LIST_DIR}/afl-denylist.txt AFL_QUIET=1)
  else()
    message(FATAL_ERROR "NIMBUS_FUZZ_ENGINE must be libfuzzer, afl or replay")
  endif()
  if(NIMBUS_FUZZ_SANITIZE)
    # Non-recoverable so a UBSan report is a crash the engine records.
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
  endif()
  # Instrumented plugins reference sanitizer/coverage runtime symbols that
  # the harness executable provides, so -z defs must go (plugins/CMakeLists).
  set(NIMBUS_FUZZ_INSTRUMENT_PLUGINS ON)
  set(NIMBUS_FUZZ_ENGINE_CONFIGURED ON)
endif()
