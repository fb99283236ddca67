# libFuzzer targets for the parsers of untrusted input: the cache manifest, training configs and
# the image decoders (the safetensors one is in the top-level CMakeLists.txt). Each is a separate
# clang++ compile of just the parser's sources with -fsanitize=fuzzer,address,undefined, built
# when clang++ is found (scripts/install-deps.sh installs it), and a bounded ctest run (label
# fuzz) from the committed seed corpus: no crash, no sanitizer report, no input slower than
# -timeout, no allocation above -malloc_limit_mb. Longer runs: tests/fuzz/README.md.
find_program(RAE_CLANGXX NAMES clang++ clang++-18 clang++-17 clang++-16 clang++-15 clang++-14)
if(NOT RAE_CLANGXX OR (DEFINED RAE_FUZZ AND NOT RAE_FUZZ))
  message(STATUS "rae: clang++ not found (or RAE_FUZZ=OFF): fuzz_manifest, fuzz_config, fuzz_image not built")
  return()
endif()
# Bounds of every run (CI and by hand): RSS and single allocations in MB, seconds per input.
set(RAE_FUZZ_LIMITS -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10)
set(RAE_FUZZ_CI_SECONDS 5 CACHE STRING "seconds each fuzz target runs under ctest")

# rae_fuzz_target(NAME SOURCES <files> LIBS <flags> CORPUS <dirs> ARGS <extra libFuzzer flags>)
function(rae_fuzz_target name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS;CORPUS;ARGS" ${ARGN})
  set(srcs ${CMAKE_CURRENT_LIST_DIR}/${name}.cpp)
  foreach(s ${F_SOURCES})
    list(APPEND srcs ${CMAKE_SOURCE_DIR}/src/${s})
  endforeach()
  file(GLOB headers ${CMAKE_SOURCE_DIR}/src/core/*.h ${CMAKE_SOURCE_DIR}/src/data/*.h
       ${CMAKE_SOURCE_DIR}/src/train/config.h)
  set(bin ${CMAKE_BINARY_DIR}/${name})
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${RAE_CLANGXX} -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined -I${CMAKE_SOURCE_DIR}/src ${srcs} ${F_LIBS} -pthread
            -o ${bin}
    DEPENDS ${srcs} ${headers}
    COMMENT "Building libFuzzer target ${name} with ${RAE_CLANGXX}"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${bin})
  # New corpus entries go to the build tree; the committed seeds are read only.
  set(work ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
  add_test(NAME ${name}_libfuzzer
           COMMAND sh -c "mkdir -p '${work}' && exec '${bin}' -max_total_time=${RAE_FUZZ_CI_SECONDS} \
${RAE_FUZZ_LIMITS} ${F_ARGS} -print_final_stats=1 '${work}' ${F_CORPUS}")
  set_tests_properties(${name}_libfuzzer PROPERTIES TIMEOUT 120 LABELS fuzz)
endfunction()

set(_fz ${CMAKE_CURRENT_LIST_DIR})
rae_fuzz_target(fuzz_manifest
  SOURCES data/latent_cache_manifest.cpp core/checksum.cpp core/atomic_file.cpp core/error.cpp
  CORPUS ${_fz}/corpus/manifest ${CMAKE_SOURCE_DIR}/tests/goldens/cache
  ARGS -max_len=4096 -dict=${_fz}/manifest.dict)
rae_fuzz_target(fuzz_config
  SOURCES train/config.cpp core/device.cpp core/error.cpp core/log.cpp
  LIBS -lboost_program_options
  CORPUS ${_fz}/corpus/config
  ARGS -max_len=2048 -dict=${_fz}/config.dict)
rae_fuzz_target(fuzz_image
  SOURCES data/image_decode.cpp core/atomic_file.cpp core/error.cpp
  LIBS -ljpeg -lpng -lz
  CORPUS ${CMAKE_SOURCE_DIR}/tests/goldens/images/cases
  ARGS -max_len=32768)
