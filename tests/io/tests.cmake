# libFuzzer target for the safetensors parser, built with clang++ when it is installed (the project
# itself may build with gcc, so this is a separate clang compile of just the parser's sources), and
# a bounded ctest run of it. The gtest Safetensors.BoundedFuzzNeverCrashes runs in every build.
find_program(RAE_CLANGXX NAMES clang++ clang++-18 clang++-17 clang++-16 clang++-15 clang++-14)
option(RAE_FUZZ "Build the libFuzzer targets when clang++ is found" ON)
if(RAE_CLANGXX AND RAE_FUZZ)
  set(_fuzz_srcs
      ${CMAKE_SOURCE_DIR}/tests/io/fuzz_safetensors.cpp
      ${CMAKE_SOURCE_DIR}/src/io/safetensors.cpp
      ${CMAKE_SOURCE_DIR}/src/tensor/tensor.cpp
      ${CMAKE_SOURCE_DIR}/src/core/atomic_file.cpp
      ${CMAKE_SOURCE_DIR}/src/core/error.cpp
      ${CMAKE_SOURCE_DIR}/src/core/dtype.cpp
      ${CMAKE_SOURCE_DIR}/src/core/device.cpp
      ${CMAKE_SOURCE_DIR}/src/core/log.cpp)
  file(GLOB _fuzz_headers ${CMAKE_SOURCE_DIR}/src/core/*.h ${CMAKE_SOURCE_DIR}/src/tensor/*.h
       ${CMAKE_SOURCE_DIR}/src/io/safetensors.h)
  set(_fuzz_bin ${CMAKE_BINARY_DIR}/fuzz_safetensors)
  add_custom_command(
    OUTPUT ${_fuzz_bin}
    COMMAND ${RAE_CLANGXX} -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined -I${CMAKE_SOURCE_DIR}/src ${_fuzz_srcs} -pthread
            -o ${_fuzz_bin}
    DEPENDS ${_fuzz_srcs} ${_fuzz_headers}
    COMMENT "Building libFuzzer target fuzz_safetensors with ${RAE_CLANGXX}"
    VERBATIM)
  add_custom_target(fuzz_safetensors ALL DEPENDS ${_fuzz_bin})
  # Bounded run: 20 s from the golden seeds; new corpus entries go to the build tree.
  add_test(NAME safetensors_libfuzzer
           COMMAND sh -c "mkdir -p '${CMAKE_BINARY_DIR}/fuzz-corpus' && exec '${_fuzz_bin}' \
-max_total_time=20 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
-dict='${CMAKE_SOURCE_DIR}/tests/io/safetensors.dict' \
'${CMAKE_BINARY_DIR}/fuzz-corpus' '${CMAKE_SOURCE_DIR}/tests/goldens/io'")
  set_tests_properties(safetensors_libfuzzer PROPERTIES TIMEOUT 120 LABELS fuzz)
  message(STATUS "rae: libFuzzer target fuzz_safetensors with ${RAE_CLANGXX}")
endif()

# TensorBoard event files read back by the tensorboard package (tests/python/requirements.txt).
add_executable(tb_write_sample ${CMAKE_CURRENT_LIST_DIR}/tb_write_sample.cpp)
target_link_libraries(tb_write_sample PRIVATE rae_io)
target_compile_options(tb_write_sample PRIVATE ${RAE_WARNINGS})
add_test(NAME io_tensorboard_read_back
         COMMAND sh -c "rm -rf \"$1\" && \"$2\" \"$1\" && \"$3\" \"$4\" \"$1\"" _
                 ${CMAKE_BINARY_DIR}/test_tmp/tensorboard_read_back $<TARGET_FILE:tb_write_sample>
                 ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/check_tensorboard.py)
set_tests_properties(io_tensorboard_read_back PROPERTIES TIMEOUT 120 LABELS "io;tensorboard")
